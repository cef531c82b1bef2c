"""Judges of notebook 03's module checks: plain data from attention_probes.py -> None, or the mistake.

The judge reads the student's matrices every plausible way (attention_readings.py) and recomputes the output
from the reference (coursekit.judging.attention, imported inside the judge: it is never in a sandbox). When no
reading reproduces the student's output, it replays the usual mistakes (no scaling, softmax over the wrong axis,
queries and keys swapped, a transpose left out, a finite mask value, ...) and names the one that matches. Before
that it reads what forward returned (a tensor, float32 for a float32 x), whether x was changed in place, and the
mask's size against block_size (head_size and block_size swapped among others), and the output for a batch of one.
Black-box judges catch a mask that leaks the future (also at scores of +-1e6), overflow on large scores, dropout in
the wrong place (from the recorded dropout calls: what each was applied to, judged by its content, and with which
p; a run with dropout keeping every entry tells values from queries and shows weights renormalised after it). The
backward pass and what the spec fixes beyond the outputs: attention_spec.py.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import torch

from coursekit.checks.attention_probes import B, dropout_probability, probe_input, seeded_matrices
from coursekit.checks.attention_readings import assignments
from coursekit.checks.core import describe
from coursekit.checks.probing import dropout_summary, eval_mode_problem, one_thread

VARIANTS = {
    "queries and keys swapped": ("queries and keys are swapped: the scores are k @ q.transpose(-2, -1), so row t "
                                 "holds every query's score for key t. Row t must be query t's scores for every "
                                 "key: q @ k.transpose(-2, -1), q the queries and k the keys (check the order "
                                 "in which you compute, unpack or split them)"),
    "no scaling": "the scores are not scaled: divide q @ k.transpose(-2, -1) by sqrt(head_size) before the softmax",
    "1/head_size": "the scores are divided by head_size; divide by sqrt(head_size) (math.sqrt or ** 0.5)",
    "times sqrt": "the scores are multiplied by sqrt(head_size); divide by it instead",
    "1/sqrt(n_embd)": ("the scores are divided by sqrt(n_embd); each head's dot products have head_size terms, so "
                       "divide by sqrt(head_size) = sqrt(n_embd // n_head)"),
    "softmax over the queries": ("the softmax runs over the wrong axis: each row (one query) should sum to 1 over the "
                                 "keys, so use softmax(dim=-1), not dim=-2 or dim=1"),
    "mask after softmax": ("the mask is applied after the softmax, so each row's weights no longer sum to 1 and the "
                           "future still takes part in the normalisation: fill -inf into the scores, then softmax"),
    "mask with 0": ("future positions get score 0 instead of -inf: exp(0) = 1, so they still receive weight; use "
                    "masked_fill(mask == 0, float('-inf'))"),
    "no mask": "there is no causal mask: every position sees the future; fill -inf above the diagonal of the scores",
    "sees the next token": ("the mask is off by one: each position also sees the next one; use torch.tril(ones) "
                            "(diagonal=0): position t sees positions 0..t"),
    "mask the wrong way round": ("the mask hides the past instead of the future: keep the lower triangle "
                                 "(torch.tril), where key position <= query position"),
}

FINITE_FILLS = (-1, -2, -5, -10, -15, -20, -30)  # masked_fill with a finite number: the future keeps some weight

MULTI_MISTAKES = {  # MultiHeadAttention: a loop over AttentionHeads, concatenated, projected
    "no output projection": "the heads' concatenation is returned as is: apply the output projection",
    "no transpose before merging": (
        "the heads' outputs are joined along the time axis and reshaped (e.g. torch.cat(..., dim=1) then "
        ".reshape(B, T, C)), which mixes positions and heads: concatenate them along the last dimension, "
        "torch.cat([h(x) for h in self.heads], dim=-1)"),
    "heads interleaved": (
        "the heads' outputs are interleaved channel by channel (torch.stack(..., dim=-1) then a reshape): "
        "concatenate them in order along the last dimension, torch.cat([h(x) for h in self.heads], dim=-1), so head "
        "h owns channels h * head_size to (h + 1) * head_size - 1"),
}

FUSED_MISTAKES = {  # CausalSelfAttention: one c_attn, heads as a batch dimension
    "no output projection": "the merged heads are returned as is: apply the output projection (c_proj)",
    "no transpose before merging": (
        "the heads were merged with .view(B, T, C) straight from (B, n_head, T, head_size), which mixes "
        "positions and heads: .transpose(1, 2) first, then .contiguous().view(B, T, C)"),
    "no transpose when splitting": (
        "q, k and v were reshaped to (B, n_head, T, head_size) straight from (B, T, C) without the transpose, "
        "which mixes positions and heads: .view(B, T, n_head, head_size).transpose(1, 2)"),
    "heads interleaved": (
        "the heads' outputs are merged channel by channel (the head axis moved last, e.g. .permute(0, 2, 3, 1), "
        "before the reshape): merge with y.transpose(1, 2).contiguous().view(B, T, C), so head h owns channels "
        "h * head_size to (h + 1) * head_size - 1"),
    "no transpose at all": (
        "the heads are split and merged with .view alone, without the transposes, which mixes positions and "
        "heads: split with .view(B, T, n_head, head_size).transpose(1, 2), merge with .transpose(1, 2)"
        ".contiguous().view(B, T, C)"),
}

SIZE_ADVICE = ("build it from the block_size argument (torch.ones(block_size, block_size)), never from a fixed "
               "number: the module must work for any block_size and any T <= block_size")


def _hard_coded_mask(masks, sizes: dict, with_output: bool, what: str) -> str | None:
    """A mask-like tensor whose size is not block_size (e.g. torch.ones(8, 8) for any block_size), or is a single
    head's head_size (head_size and block_size swapped)."""
    block, head_size = sizes["block_size"], sizes["head_size"]
    for name, shape, _ in masks or ():
        if shape[-1] == head_size != block and not with_output:
            return (f"{what}: {name} has shape {tuple(shape)}, head_size = {head_size}, where block_size = {block} "
                    f"belongs: head_size and block_size are swapped. The arguments come in the order "
                    f"AttentionHead(n_embd, head_size, block_size, dropout): the projections are "
                    f"nn.Linear(n_embd, head_size), the mask torch.ones(block_size, block_size)")
        if shape[-1] != block:
            return (f"{what}: {name} has shape {tuple(shape)}, expected its last two sizes to be block_size = {block} "
                    f"(got {shape[-1]}): the mask's size is hard-coded; {SIZE_ADVICE}")
    return None


def _error_advice(error: str, sizes: dict, with_output: bool, what: str, gpt2_layout: bool) -> str:
    """What an error raised on x (B, T, n_embd) most likely means, from its text."""
    n_embd, n_head, T, block = sizes["n_embd"], sizes["n_head"], sizes["T"], sizes["block_size"]
    width = n_embd if with_output else sizes["head_size"]
    where = f"{what} raised {error} on x of shape {(B, T, n_embd)}"
    sizes_met = re.search(r"size of tensor a \((\d+)\) must match the size of tensor b \((\d+)\)", error)
    if sizes_met and sorted(map(int, sizes_met.groups())) == sorted((T, block)):
        return f"{where} (T = {T} < block_size = {block}): cut the mask to the sequence length, mask[:T, :T]"
    if sizes_met and T in map(int, sizes_met.groups()):
        fixed = [int(size) for size in sizes_met.groups() if int(size) != T][0]
        return (f"{where}: a tensor of size {fixed} meets the sequence length T = {T} (block_size = {block}): "
                f"a size is hard-coded to {fixed}. If it is the mask, {SIZE_ADVICE}")
    if "got tuple" in error or "'tuple' object" in error:
        return (f"{where}: a tuple appears where a tensor is expected; does a head return a tuple (e.g. (out, "
                f"weights))? AttentionHead.forward must return one tensor, weights @ v, of shape (B, T, head_size)")
    if with_output and n_head > 1 and f"x{n_head * n_embd} and" in error:
        return (f"{where}: the heads' outputs add up to {n_head} x {n_embd} channels, so every head has size n_embd; "
                f"each head must have head_size = n_embd // n_head = {n_embd // n_head}")
    multiplied = re.search(r"\((\d+)x(\d+) and (\d+)x(\d+)\)", error)
    if with_output and not gpt2_layout and multiplied and int(multiplied[2]) != n_embd and int(multiplied[3]) == n_embd:
        return (f"{where}: the heads' outputs side by side have {multiplied[2]} channels, not n_embd = {n_embd}: "
                f"the head count or the head size is hard-coded; build n_head = {n_head} heads of size n_embd // "
                f"n_head = {n_embd // n_head}")
    viewed = re.search(r"shape '\[(\d+), (\d+), (\d+), (-?\d+)\]' is invalid", error)
    if with_output and viewed and int(viewed[2]) == T and int(viewed[3]) != n_head:
        return (f"{where}: the view splits the channels into {viewed[3]} heads, but this module has n_head = "
                f"{n_head}: use config.n_head heads of size config.n_embd // config.n_head, not fixed numbers")
    hs = width // n_head
    if not with_output:
        return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {hs}) -> scores "
                f"(B, T, T) -> weights @ v (B, T, {hs}). Nothing may be fixed to the notebook's sizes")
    if not gpt2_layout:
        return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> each of the {n_head} heads (B, T, "
                f"{hs}) -> torch.cat([...], dim=-1) (B, T, {n_embd}) -> projection (B, T, {n_embd}). Nothing may be "
                f"fixed to the notebook's sizes")
    return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {width}) -> each "
            f".view(B, T, {n_head}, {hs}).transpose(1, 2) = (B, {n_head}, T, {hs}) -> scores (B, {n_head}, T, T) -> "
            f"weights @ v (B, {n_head}, T, {hs}) -> .transpose(1, 2).contiguous().view(B, T, {width}) -> "
            f"projection (B, T, {n_embd}). Nothing may be fixed to the notebook's sizes")


def _missing_weights_advice(matrices, sizes: dict, with_output: bool) -> str | None:
    """Why no reading of the weights fits, when the cause is a common one; else None."""
    n_embd, n_head, block = sizes["n_embd"], sizes["n_head"], sizes["block_size"]
    shapes = [tuple(m.shape) for m in matrices]
    if any(shape == (block, block) and bool(((m == 0) | (m == 1)).all()) for m, shape in zip(matrices, shapes)):
        return ("the causal mask is an nn.Parameter, so the optimiser would train it: keep it as a buffer, "
                "self.register_buffer('mask', torch.tril(torch.ones(block_size, block_size)))")
    if not with_output or n_head == 1:
        return None
    if shapes.count((n_embd, n_embd)) > 3 and shapes.count((n_embd, n_embd // n_head)) == 0:
        return (f"every head has size n_embd = {n_embd} (the heads' weights are all ({n_embd}, {n_embd})): each head "
                f"must have head_size = n_embd // n_head = {n_embd // n_head}, so that the {n_head} heads "
                f"side by side have n_embd channels")
    head_matrices = shapes.count((n_embd, n_embd // n_head))
    if head_matrices == 0 and shapes == [(n_embd, n_embd)]:
        return ("only the output projection has weights: the heads are not registered as submodules. Keep them in "
                "an nn.ModuleList (a plain Python list hides them from PyTorch: no parameters, no .eval(), no .to())")
    for count in range(1, 13):
        if n_embd % count == 0 and n_embd // count != n_embd // n_head and \
                shapes.count((n_embd, n_embd // count)) == 3 * count:
            return (f"the module has {count} heads of size {n_embd // count} (the weights of {count} query, key and "
                    f"value layers), but n_head = {n_head}: the head count is hard-coded; build n_head heads of size "
                    f"n_embd // n_head = {n_embd // n_head}")
    if 0 < head_matrices < 3 * n_head and head_matrices % 3 == 0:
        return (f"found the weights of only {head_matrices // 3} head(s), not {n_head}: create a new head for each "
                f"([AttentionHead(...) for _ in range(n_head)]); [head] * n_head repeats one and the same head")
    return None


def diagnose(got, sizes: dict, with_output: bool, what: str, gpt2_layout: bool = False) -> str | None:
    """None when some reading of the student's matrices reproduces their output, else the mistake. gpt2_layout: a
    fused projection must be GPT-2's [queries | keys | values] (attention_readings.assignments)."""
    with one_thread():
        return _find_mistake(got, sizes, with_output, what, gpt2_layout)


def _find_mistake(got, sizes: dict, with_output: bool, what: str, gpt2_layout: bool) -> str | None:
    n_embd, n_head = sizes["n_embd"], sizes["n_head"]
    width = n_embd if with_output else sizes["head_size"]
    x = probe_input(sizes).double()
    result = got["result"]
    expected_shape = (B, sizes["T"], width if not with_output else n_embd)
    hard_coded = _hard_coded_mask(got.get("masks"), sizes, with_output, what)
    if hard_coded:
        return hard_coded
    if result["error"]:
        return _error_advice(result["error"], sizes, with_output, what, gpt2_layout)
    out = result["output"]
    if result.get("type") not in (None, "Tensor"):
        return (f"{what}.forward should return one tensor of shape {expected_shape}, got a {result['type']}: return "
                f"the output alone" + ("" if with_output else " (weights @ v), not (output, weights)"))
    if not isinstance(out, np.ndarray) or out.shape != expected_shape:
        got_text = (f"a tensor of shape {tuple(out.shape)}" if isinstance(out, np.ndarray) else describe(out))
        return f"{what} should return shape {expected_shape} for x of shape {tuple(x.shape)}, got {got_text}"
    if out.dtype != np.float32:
        return (f"{what} returns {out.dtype} for a float32 x: expected float32. Compute in the input's dtype (no "
                f".double() or .half()), so the output has the dtype of x")
    if got.get("input_changed"):
        return (f"{what}.forward changes the x it is given in place (e.g. x.mul_(...), x += ..., x[...] = ...): the "
                f"caller's tensor must stay as it was; use out-of-place operations (y = x * ...)")
    if np.isnan(out).any():
        return ("the output contains NaN: some query has every score set to -inf (a row with nothing visible); "
                "each position must at least see itself: mask with torch.tril (keep the diagonal)")
    single = _batch_of_one_problem(got["single"], (1, *expected_shape[1:]), out, what)
    if single:
        return single
    out = torch.from_numpy(out).double()
    try:
        matrices = seeded_matrices(got["layout"])  # redrawn from the seed, never read back from the sandbox
        names = [str(name) for name, _, _ in got["layout"]]
    except (TypeError, ValueError) as error:
        return f"could not read the module's weights: {error}"
    readings = list(assignments(matrices, names, n_embd, width, n_head, with_output, gpt2_layout=gpt2_layout))
    if not readings:
        advice = _missing_weights_advice(matrices, sizes, with_output)
        if advice:
            return advice
        shapes = [tuple(m.shape) for m in matrices]
        layers = ("three nn.Linear(n_embd, head_size, bias=False) layers for the query, key and value (any names), "
                  "or one nn.Linear(n_embd, 3 * head_size)" if not with_output else
                  "query, key and value layers for every head plus an nn.Linear(n_embd, n_embd) output projection "
                  "(or one fused nn.Linear(n_embd, 3 * n_embd) and the projection)")
        return (f"could not find the projections: expected {layers}; found weight matrices of shapes (as x @ W) "
                f"{shapes}")

    from coursekit.judging.attention import heads_out, multi_out  # the reference's replays: judge side only

    def compute(reading, variant="", order=None):
        Wq, Wk, Wv, Wo = reading
        if with_output:
            return multi_out(x, Wq, Wk, Wv, Wo, n_head, variant, order)
        return heads_out(x, Wq, Wk, Wv, 1, variant)[:, 0]

    def matches(candidate):
        return torch.allclose(candidate, out, atol=1e-4, rtol=1e-4)

    if any(matches(compute(reading)) for reading in readings):
        return _large_scores_problem(got)
    mistakes = {**VARIANTS, **(FUSED_MISTAKES if gpt2_layout else MULTI_MISTAKES)} if with_output else VARIANTS
    for variant, message in mistakes.items():
        if any(matches(compute(reading, variant)) for reading in readings):
            return message
    for fill in FINITE_FILLS:
        if any(matches(compute(reading, f"mask with {fill}")) for reading in readings):
            return (f"future positions get the score {fill} instead of -inf: their weight is small (about e^{fill} "
                    f"times a visible one's) but not zero, so every position still sees the future a little. Use "
                    f"masked_fill(mask == 0, float('-inf'))")
    if with_output and n_head <= 6:  # 720 orders at most: 12 heads would be 479 million replays
        for order in itertools.permutations(range(n_head)):
            if order != tuple(range(n_head)) and any(matches(compute(reading, "", order)) for reading in readings):
                return (f"the heads are concatenated in the order {list(order)}; concatenate them in order "
                        f"0, 1, ..., {n_head - 1} along the last dimension (torch.cat([...], dim=-1))")
    if any(matches(compute(reading)) for reading in assignments(matrices, names, n_embd, width, n_head, with_output,
                                                                  fused_any_order=True)):
        return ("the fused projection's output is read in another layout than [all queries | all keys | all "
                "values] (head by head, or in another order): split it as q, k, v = self.c_attn(x).split(n_embd, "
                "dim=2), then give each its heads; that is the layout of GPT-2's c_attn (notebook 06 loads GPT-2's "
                "weights into exactly this layout)")
    expected = compute(readings[0])
    worst = tuple(int(i) for i in np.unravel_index(int((expected - out).abs().argmax()), tuple(out.shape)))
    difference = float((expected - out).abs().max())
    small = difference < 5e-3 * max(1.0, float(expected.abs().max()))
    return (f"{what} does not compute causal self-attention with its own weights: on a random x of shape "
            f"{tuple(x.shape)}, output[{', '.join(map(str, worst))}] should be {float(expected[worst]):.6g} (reading "
            f"your weights as query, key, value{', output' if with_output else ''}), got {float(out[worst]):.6g}, a "
            f"difference of {difference:.2g}" + (
                " (small, but far above float32 rounding: is part of the computation done in half precision, "
                ".half() or float16, or rounded?)" if small else "") +
            ". Check: scores = q @ k.transpose(-2, -1) / sqrt(head_size), masked_fill with -inf above the diagonal, "
            "softmax(dim=-1), then @ v")


def _batch_of_one_problem(single, expected_shape: tuple, out: np.ndarray, what: str) -> str | None:
    """On x's first row alone (B = 1) the output must keep its batch axis, and equal the first row of out."""
    x_shape = f"(1, {expected_shape[1]}, n_embd)"
    if single["error"]:
        return (f"{what} raised {single['error'][:200]} on x of shape {x_shape}, a batch of one, though it ran on "
                f"B = {B}: does a .squeeze() drop the batch axis? Keep x as (B, T, C) throughout")
    got = single["output"]
    if not isinstance(got, np.ndarray) or got.shape != expected_shape:
        got_text = f"shape {tuple(got.shape)}" if isinstance(got, np.ndarray) else describe(got)
        return (f"{what} returns {got_text} for x of shape {x_shape}, a batch of one, expected {expected_shape}: "
                f"the batch axis was dropped (x.squeeze() or .squeeze() on the output removes every size-1 axis, "
                f"so B = 1 loses it); leave the .squeeze() out, or squeeze only a named axis you added")
    if not np.allclose(got, out[:1], atol=1e-5, rtol=1e-4):
        return (f"{what} gives another output for x[:1] (a batch of one) than for the first row of x (B = {B}): "
                f"each sequence of the batch must be computed on its own, whatever B is")
    return None


def _large_scores_problem(got) -> str | None:
    """On inputs of size ~100 and ~-120 (scores in the thousands) the output must stay finite."""
    for out in got["large"]:
        if not isinstance(out, np.ndarray) or not np.isfinite(out).all():
            return ("on inputs of size about 100 the output is not finite (inf or NaN): exp of large scores "
                    "overflows, or, when the maximum subtracted before exp is taken over the whole row, future "
                    "positions included, every visible score's exp underflows to 0 and 0 / 0 = NaN. Use "
                    "torch.softmax (or F.softmax) on the masked scores, or subtract the maximum of the masked "
                    "scores (after filling -inf)")
    return None


def future_judge(got):
    before, after, first = (got[key]["output"] for key in ("before", "after", "first"))
    cut = got["cut"]
    if not all(isinstance(o, np.ndarray) and o.ndim == 3 for o in (before, after, first)) or \
            not before.shape == after.shape == first.shape:
        return "fix the output shape first (see the other tests)"
    if not all(np.isfinite(o).all() for o in (before, after, first)):  # NaN would pass every comparison below
        return "the output is not finite (inf or NaN), so whether the past sees the future cannot be told"
    past = float(np.abs(before[:, :cut] - after[:, :cut]).max())
    if past > 1e-5:
        return (f"changing the tokens at positions {cut}..{before.shape[1] - 1} changed the outputs at positions "
                f"0..{cut - 1} (by up to {past:.3g}): the past can see the future. Mask the scores with -inf where "
                f"key position > query position, before the softmax")
    huge_before, huge_after = got["huge_before"], got["huge_after"]
    if not all(isinstance(o, np.ndarray) and o.shape[1:] == before.shape[1:]
               and np.isfinite(o).all() for o in (huge_before, huge_after)):
        return ("on inputs scaled by 1000 (scores of about +-1e6) the output is not finite (inf or NaN) or has "
                "another shape: use torch.softmax (or F.softmax) on the scores masked with -inf")
    huge_past = float(np.abs(huge_before[:, :cut] - huge_after[:, :cut]).max())
    if huge_past > 1e-5 * max(1.0, float(np.abs(huge_before[:, :cut]).max())):
        return (f"on inputs scaled by 1000 (scores of about +-1e6) changing the tokens at positions "
                f"{cut}..{before.shape[1] - 1} changed the outputs at positions 0..{cut - 1}: the future is "
                f"masked with a finite number (such as -1e4), and where every visible score is below it the "
                f"future takes the weight. Use masked_fill(mask == 0, float('-inf'))")
    if float(np.abs(before[:, cut:] - after[:, cut:]).max()) < 1e-7:
        return "changing the last tokens did not change the outputs there: does the output use x at all?"
    if float(np.abs(before[:, 1:] - first[:, 1:]).max()) < 1e-7:
        return ("changing the first token changed no later output: each position only looks at itself. Position t "
                "must attend to positions 0..t (weights @ v over the keys)")
    return None




def dropout_judge(sizes_of, argument: str, on_weights: bool, on_output: bool):
    """The dropout calls must sit on the attention weights (on_weights) and on the output (on_output), with p."""
    def judge(got):
        problem = eval_mode_problem(got)
        if problem:
            return problem
        sizes, p = sizes_of(), dropout_probability()
        calls = dropout_summary(got["calls"], sizes)
        sites = [call["site"] for call in calls]
        train, first = got["train"], got["eval"][0]
        if "scores" in sites:
            return ("dropout is applied to the scores before the softmax (a dropped -inf becomes -inf * 0 = NaN, "
                    "and the kept scores are scaled by 1/(1-p) inside the exponential). Apply it to the attention "
                    "weights, after the mask and the softmax")
        wrong_p = [call["p"] for call in calls if abs(call["p"] - p) > 1e-9]
        if wrong_p:
            return (f"a dropout uses p = {round(wrong_p[0], 4)} though {argument} = {p} was given: pass the argument "
                    f"on (nn.Dropout({argument})), never a fixed probability")
        if np.allclose(train, first, atol=1e-7):
            return (f"with {argument} = {p}, training mode gives the same output as eval mode: apply an "
                    f"nn.Dropout({argument}) to " + ("the attention weights" if on_weights else "the output"))
        if not calls:
            return None  # dropout inside a fused kernel (F.scaled_dot_product_attention(dropout_p=...)): not visible
        if on_weights and "weights" not in sites and not (got.get("hidden_dropout") is True and "heads" not in sites):
            if "heads" in sites:
                return _head_width_dropout(got["kept_everything"], p)
            if "stream" in sites and not on_output:
                return (f"with only {argument} = {p} given, the output gets dropout and the attention weights none: "
                        f"the two dropouts are swapped; {argument} belongs to the attention weights")
            return f"the attention weights get no dropout: apply nn.Dropout({argument}) to them after the softmax"
        if not on_weights and "weights" in sites:
            return (f"the attention weights get dropout with {argument}; they use attn_pdrop, and {argument} "
                    f"belongs to the output")
        if on_output and "stream" not in sites:
            return (f"the output gets no dropout: end with nn.Dropout({argument}) applied to the output projection "
                    f"(self.dropout(self.proj(out)))")
        if not on_output and "stream" in sites:
            return f"the output gets dropout with {argument}; {argument} belongs to the attention weights"
        if on_output and float((train == 0).mean()) < p / 2:
            return (f"with {argument} = {p} about {p:.0%} of the output entries should be exactly 0 in training mode, "
                    f"got {float((train == 0).mean()):.0%}: apply the dropout after the output projection, as the "
                    f"last step")
        if got.get("hidden_dropout") is not True:
            return _kept_everything_problem(got["kept_everything"], p, on_weights + on_output)
        return None
    return judge


def _scaled_by(kept: dict, factor: float) -> bool | None:
    """Whether the training output (dropout keeping everything) is `factor` times the eval output; None unknown."""
    if not all(isinstance(kept[key], np.ndarray) for key in ("eval", "train")) or \
            kept["eval"].shape != kept["train"].shape:
        return None
    return bool(np.allclose(kept["train"], factor * kept["eval"], atol=1e-5, rtol=1e-4))


def _head_width_dropout(kept: dict, p: float) -> str:
    """Dropout on a head_size-wide tensor: the head's output, the values, or the queries or keys."""
    if kept["dropout_last"]:
        return ("dropout is applied to the head's output (weights @ v) instead of the attention weights: "
                "self.dropout(weights) @ v")
    if any(_scaled_by(kept, (1 - p) ** -k) for k in (1, 2)):  # linear in what was dropped
        return ("dropout is applied to the values v (or to weights @ v) instead of the attention weights: "
                "self.dropout(weights) @ v, with v as the value projection gives it")
    return ("dropout is applied to the queries or keys (before the scores) instead of the attention weights: compute "
            "the scores from q and k as they are, and drop the weights after the softmax: self.dropout(weights) @ v")


def _kept_everything_problem(kept: dict, p: float, sites: int) -> str | None:
    """With dropout keeping every entry (each scaled by 1/(1-p)), biases zeroed, the output is 1/(1-p) times the
    eval output for each dropout on its path (sites)."""
    factor = (1 - p) ** -sites
    if _scaled_by(kept, factor) is not False:
        return None
    undone = " (the weights are renormalised after the dropout?)" if _scaled_by(kept, factor * (1 - p)) else ""
    return (f"when dropout happens to keep every entry (each scaled by 1/(1-p), p = {p}), the output in training mode "
            f"should be {factor:.4g} times the eval output (biases zeroed), but it is not{undone}: nn.Dropout already "
            f"rescales what it keeps; use its output as it is (self.dropout(weights) @ v), without dividing by the "
            f"rows' sums again or changing it afterwards")
