"""Checks for notebook 03 (attention).

The student may name and arrange parameters as they like: three nn.Linear(n_embd, head_size) per head, one fused
nn.Linear(n_embd, 3 * n_embd), a ModuleList of heads, raw nn.Parameter matrices (used as x @ W). A probe hands the
judge every projection matrix in registration order (as "x @ M" matrices, biases zeroed first), with its name, plus
the module's output on a random input. The judge tries each way those matrices can be the queries, keys, values and
output projection (names such as query/key/value or W_Q fix the roles); the module passes when one of them
reproduces its output. When none does, the judge replays the usual mistakes (no scaling, softmax over the wrong
axis, queries and keys swapped, ...) and names the one that matches. Black-box tests catch a mask that leaks the
future, overflow on large scores, and dropout in the wrong place (every dropout call is recorded: what it was
applied to and with which p).

In a grading run the sizes (head size, head count, block_size, T < block_size), the inputs and the dropout
probabilities are drawn from the test's seed; the judge recomputes them under the same seed.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn

from coursekit.checks.core import Check, Test, describe, is_module_class, is_public, probe_rng
from coursekit.checks.probing import (attention_sizes, dropout_summary, eval_mode_problem, large_magnitudes,
                                      one_thread, probe_sizes, probe_tensor, run_module, single_threaded,
                                      train_and_eval_runs)

B = 2
HEAD_PUBLIC = {"n_head": 1, "head_size": 4, "n_embd": 12, "block_size": 8, "T": 6}  # T < block_size: cut the mask
MULTI_PUBLIC = {"n_head": 4, "head_size": 6, "block_size": 8, "T": 6}  # n_embd 24; sqrt(24) != 6


@dataclass
class AttentionConfig:
    """The fields of coursekit.attention.AttentionConfig, for building the student's CausalSelfAttention."""

    n_embd: int = 64
    n_head: int = 4
    block_size: int = 32
    attn_pdrop: float = 0.0
    resid_pdrop: float = 0.0


def head_sizes() -> dict:
    """The single head's sizes: the notebook's in public, others (n_embd 10-16, head_size 3-6) in a grading run."""
    sizes = attention_sizes(HEAD_PUBLIC)
    sizes.update(probe_sizes({"n_embd": HEAD_PUBLIC["n_embd"]}, n_embd=[10, 14, 16]))
    return sizes


def multi_sizes() -> dict:
    return attention_sizes(MULTI_PUBLIC)


def other_heads_sizes() -> dict:
    """A head count other than the first test's (public: n_embd 12 with 3 heads)."""
    return attention_sizes({"n_head": 3, "head_size": 4, "block_size": 8, "T": 6})


def dropout_probability() -> float:
    """0.4 in a notebook; in a grading run a value between 0.2 and 0.6, so a hard-coded p is seen."""
    return 0.4 if is_public() else round(float(probe_rng().uniform(0.2, 0.6)), 2)


def probe_input(sizes: dict) -> torch.Tensor:
    return probe_tensor(B, sizes["T"], sizes["n_embd"])


def named_projections(module: nn.Module) -> list[tuple[str, torch.Tensor]]:
    """Every 2-D weight as (name, an (in, out) matrix M applied as x @ M), in registration order.

    nn.Linear stores (out, in) and computes x @ W.T; a raw 2-D nn.Parameter is taken to be used as x @ W.
    """
    found = []
    for module_name, submodule in module.named_modules():
        if isinstance(submodule, nn.Linear):
            found.append((module_name, submodule.weight.detach().T))
            continue
        for name, parameter in submodule.named_parameters(recurse=False):
            if parameter.dim() == 2:
                found.append((f"{module_name}.{name}".strip("."), parameter.detach()))
    return found


ROLES = {"q": 0, "query": 0, "queries": 0, "k": 1, "key": 1, "keys": 1, "v": 2, "value": 2, "values": 2}


def role_of(name: str) -> int | None:
    """0, 1, 2 for a matrix named as the queries', keys' or values' (query, W_K, v_proj, ...), else None.

    >>> [role_of(n) for n in ("heads.0.query", "W_K", "v_proj", "c_attn")]
    [0, 1, 2, None]
    """
    token = re.sub(r"[^a-z]", "", name.lower().split(".")[-1])
    for prefix in ("w", "to"):
        if token.startswith(prefix) and token[len(prefix):] in ROLES:
            token = token[len(prefix):]
    for suffix in ("proj", "projection", "layer", "linear", "weight", "w"):
        if token.endswith(suffix) and token[: -len(suffix)] in ROLES:
            token = token[: -len(suffix)]
    return ROLES.get(token)


def _zero_biases(module: nn.Module) -> None:
    """Biases do not change what attention is; zeroing them lets the judge compare with bias-free formulas."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.dim() == 1:
                parameter.zero_()


# ---------------------------------------------------------------- the computation and its usual mistakes


def _weights(q, k, variant: str, n_embd: int) -> torch.Tensor:
    """Attention weights (..., T, T) for queries and keys (..., T, d), computed correctly or with one mistake."""
    if variant == "":
        from coursekit.attention import attention_weights  # the reference: judge side only
        return attention_weights(q, k)
    if variant == "queries and keys swapped":
        q, k = k, q
    d = k.size(-1)
    scale = {"no scaling": 1.0, "1/head_size": 1.0 / d, "times sqrt": math.sqrt(d),
             "1/sqrt(n_embd)": 1.0 / math.sqrt(n_embd)}.get(variant, 1.0 / math.sqrt(d))
    scores = (q @ k.transpose(-2, -1)) * scale
    n = scores.size(-1)
    mask = {
        "no mask": torch.ones(n, n, dtype=torch.bool),
        "sees the next token": torch.ones(n, n, dtype=torch.bool).tril(1),
        "mask the wrong way round": torch.ones(n, n, dtype=torch.bool).triu(),
    }.get(variant, torch.ones(n, n, dtype=torch.bool).tril())
    if variant == "mask after softmax":
        return scores.softmax(dim=-1).masked_fill(~mask, 0.0)
    if variant == "mask with 0":
        return scores.masked_fill(~mask, 0.0).softmax(dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    if variant == "softmax over the queries":
        return scores.softmax(dim=-2).nan_to_num(0.0)
    return scores.softmax(dim=-1)


VARIANTS = {
    "queries and keys swapped": ("queries and keys are swapped: the scores are k @ q.transpose(-2, -1), so row t "
                                 "holds every query's score for key t. Row t must be query t's scores for every "
                                 "key: q @ k.transpose(-2, -1), with q = self.query(x) and k = self.key(x)"),
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

SPLIT_VARIANTS = {
    "no transpose before merging": (True, False),  # (transpose when splitting, transpose when merging)
    "no transpose when splitting": (False, True),
    "no transpose at all": (False, False),
}


def _heads_out(x, Wq, Wk, Wv, n_head: int, variant: str, split_transpose: bool = True) -> torch.Tensor:
    """(B, n_head, T, hs): every head's output, heads owning contiguous blocks of the projections' columns."""
    Bx, Tx, _ = x.shape
    hs = Wq.size(1) // n_head

    def split(t):
        if split_transpose:
            return t.view(Bx, Tx, n_head, hs).transpose(1, 2)
        return t.reshape(Bx, n_head, Tx, hs)  # (B, T, C) read straight as (B, nh, T, hs)
    q, k, v = split(x @ Wq), split(x @ Wk), split(x @ Wv)
    return _weights(q, k, variant, x.size(-1)) @ v


def _multi_out(x, Wq, Wk, Wv, Wo, n_head: int, variant: str = "", order=None) -> torch.Tensor:
    split_transpose, merge_transpose = SPLIT_VARIANTS.get(variant, (True, True))
    heads = _heads_out(x, Wq, Wk, Wv, n_head, "" if variant in SPLIT_VARIANTS else variant, split_transpose)
    Bx, nh, Tx, hs = heads.shape
    if order is not None:
        heads = heads[:, list(order)]
    merged = heads.transpose(1, 2).reshape(Bx, Tx, nh * hs) if merge_transpose else heads.reshape(Bx, Tx, nh * hs)
    if variant == "no output projection":
        return merged
    return merged @ Wo


def _pieces(matrices, channels: int, width: int) -> list[torch.Tensor]:
    """Split (channels, k * width) matrices into (channels, width) column blocks, in order."""
    pieces = []
    for matrix in matrices:
        if matrix.size(0) != channels or matrix.size(1) % width:
            return []
        pieces.extend(matrix.split(width, dim=1))
    return pieces


def _role_orders(names: list[str]) -> list[tuple[int, int, int]]:
    """The (query, key, value) positions among three matrices: fixed by their names when those name every role
    once, else every order (the names say nothing)."""
    roles = [role_of(name) for name in names]
    if sorted(r for r in roles if r is not None) == [0, 1, 2] and len(roles) == 3:
        return [tuple(roles.index(role) for role in range(3))]
    return list(itertools.permutations(range(3)))


def _assignments(matrices, names, n_embd: int, width: int, n_head: int, with_output: bool, fused_any_order=False):
    """Every plausible (Wq, Wk, Wv, Wo) reading of the matrices: Wq, Wk, Wv (n_embd, width), heads contiguous.

    Wo is the output projection (width, n_embd), or None for a single head without one. Separate layers named
    query/key/value (or q, W_K, ...) are read by their names, unnamed ones in any order; one fused layer's output is
    read as [queries | keys | values] (GPT-2's c_attn, whose weights notebook 06 loads), unless fused_any_order.
    """
    matrices = [m.double() for m in matrices]
    output_choices = [i for i, m in enumerate(matrices) if tuple(m.shape) == (width, n_embd)] if with_output \
        else [None]
    for output_index in output_choices:
        rest = [m for i, m in enumerate(matrices) if i != output_index]
        rest_names = [n for i, n in enumerate(names) if i != output_index]
        Wo = matrices[output_index] if output_index is not None else None
        by_role = _pieces(rest, n_embd, width)  # [all queries | all keys | all values]
        by_head = _pieces(rest, n_embd, width // n_head) if n_head > 1 else []  # [q0 k0 v0 | q1 k1 v1 | ...]
        fused = len(rest) == 1
        if len(by_role) == 3:
            orders = list(itertools.permutations(range(3))) if fused_any_order else \
                [(0, 1, 2)] if fused else _role_orders(rest_names)
            for roles in orders:
                yield by_role[roles[0]], by_role[roles[1]], by_role[roles[2]], Wo
        if len(by_head) == 3 * n_head:
            orders = _role_orders(rest_names[:3]) if len(rest) == 3 * n_head else \
                list(itertools.permutations(range(3)))
            triples = [by_head[3 * h: 3 * h + 3] for h in range(n_head)]
            for roles in orders:
                yield tuple(torch.cat([t[r] for t in triples], dim=1) for r in roles) + (Wo,)


def _error_advice(error: str, sizes: dict, with_output: bool, what: str) -> str:
    """What an error raised on x (B, T, n_embd) most likely means, from its text."""
    n_embd, n_head, T, block = sizes["n_embd"], sizes["n_head"], sizes["T"], sizes["block_size"]
    width = n_embd if with_output else sizes["head_size"]
    where = f"{what} raised {error} on x of shape {(B, T, n_embd)}"
    if f"size of tensor a ({T}) must match the size of tensor b ({block})" in error or \
            f"size of tensor a ({block}) must match the size of tensor b ({T})" in error:
        return f"{where} (T = {T} < block_size = {block}): cut the mask to the sequence length, mask[:T, :T]"
    if with_output and n_head > 1 and f"x{n_head * n_embd} and" in error:
        return (f"{where}: the heads' outputs add up to {n_head} x {n_embd} channels, so every head has size n_embd; "
                f"each head must have head_size = n_embd // n_head = {n_embd // n_head}")
    hs = width // n_head
    if not with_output:
        return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {hs}) -> scores "
                f"(B, T, T) -> weights @ v (B, T, {hs}). Nothing may be fixed to the notebook's sizes")
    return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {width}) -> each "
            f".view(B, T, {n_head}, {hs}).transpose(1, 2) = (B, {n_head}, T, {hs}) -> scores (B, {n_head}, T, T) -> "
            f"weights @ v (B, {n_head}, T, {hs}) -> .transpose(1, 2).contiguous().view(B, T, {width}) -> "
            f"projection (B, T, {n_embd})")


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
    if 0 < head_matrices < 3 * n_head and head_matrices % 3 == 0:
        return (f"found the weights of only {head_matrices // 3} head(s), not {n_head}: create a new head for each "
                f"([AttentionHead(...) for _ in range(n_head)]); [head] * n_head repeats one and the same head")
    return None


def _diagnose(got, sizes: dict, with_output: bool, what: str) -> str | None:
    """None when some reading of the student's matrices reproduces their output, else the mistake."""
    with one_thread():
        return _find_mistake(got, sizes, with_output, what)


def _find_mistake(got, sizes: dict, with_output: bool, what: str) -> str | None:
    n_embd, n_head = sizes["n_embd"], sizes["n_head"]
    width = n_embd if with_output else sizes["head_size"]
    x = probe_input(sizes).double()
    result = got["result"]
    expected_shape = (B, sizes["T"], width if not with_output else n_embd)
    if result["error"]:
        return _error_advice(result["error"], sizes, with_output, what)
    out = result["output"]
    if not isinstance(out, np.ndarray) or out.shape != expected_shape:
        return f"{what} should return shape {expected_shape} for x of shape {tuple(x.shape)}, got {describe(out)}"
    if np.isnan(out).any():
        return ("the output contains NaN: some query has every score set to -inf (a row with nothing visible); "
                "each position must at least see itself: mask with torch.tril (keep the diagonal)")
    out = torch.from_numpy(out).double()
    matrices = [torch.from_numpy(m) for m in got["matrices"]]
    names = got["names"]
    readings = list(_assignments(matrices, names, n_embd, width, n_head, with_output))
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

    def compute(reading, variant="", order=None):
        Wq, Wk, Wv, Wo = reading
        if with_output:
            return _multi_out(x, Wq, Wk, Wv, Wo, n_head, variant, order)
        return _heads_out(x, Wq, Wk, Wv, 1, variant)[:, 0]

    def matches(candidate):
        return torch.allclose(candidate, out, atol=1e-4, rtol=1e-4)

    if any(matches(compute(reading)) for reading in readings):
        return _large_scores_problem(got)
    mistakes = dict(VARIANTS)
    if with_output:
        mistakes["no output projection"] = "the heads' concatenation is returned as is: apply the output projection"
        mistakes["no transpose before merging"] = (
            "the heads were merged with .view(B, T, C) straight from (B, n_head, T, head_size), which mixes "
            "positions and heads: .transpose(1, 2) first, then .contiguous().view(B, T, C)")
        mistakes["no transpose when splitting"] = (
            "q, k and v were reshaped to (B, n_head, T, head_size) straight from (B, T, C) without the transpose, "
            "which mixes positions and heads: .view(B, T, n_head, head_size).transpose(1, 2)")
        mistakes["no transpose at all"] = (
            "the heads are split and merged with .view alone, without the transposes, which mixes positions and "
            "heads: split with .view(B, T, n_head, head_size).transpose(1, 2), merge with .transpose(1, 2)"
            ".contiguous().view(B, T, C)")
    for variant, message in mistakes.items():
        if any(matches(compute(reading, variant)) for reading in readings):
            return message
    if with_output:
        for order in itertools.permutations(range(n_head)):
            if order != tuple(range(n_head)) and any(matches(compute(reading, "", order)) for reading in readings):
                return (f"the heads are concatenated in the order {list(order)}; concatenate them in order "
                        f"0, 1, ..., {n_head - 1} along the last dimension (torch.cat([...], dim=-1))")
    if any(matches(compute(reading)) for reading in _assignments(matrices, names, n_embd, width, n_head, with_output,
                                                                  fused_any_order=True)):
        return ("the fused projection's output is split in another order than queries, keys, values: split it as "
                "q, k, v = self.c_attn(x).split(n_embd, dim=2), the layout of GPT-2's c_attn (notebook 06 loads "
                "GPT-2's weights into exactly this layout)")
    expected = compute(readings[0])
    return (f"{what} does not compute causal self-attention with its own weights: on a random x of shape "
            f"{tuple(x.shape)}, output[0, 1, :3] should be about {np.round(expected[0, 1, :3].numpy(), 4).tolist()} "
            f"(the first reading of your weights as query, key, value{', output' if with_output else ''}), got "
            f"{np.round(out[0, 1, :3].numpy(), 4).tolist()}. Check: scores = q @ k.transpose(-2, -1) / "
            f"sqrt(head_size), masked_fill with -inf above the diagonal, softmax(dim=-1), then @ v")


def _large_scores_problem(got) -> str | None:
    """On inputs of size ~100 and ~-120 (scores in the thousands) the output must stay finite."""
    for out in got["large"]:
        if not isinstance(out, np.ndarray) or not np.isfinite(out).all():
            return ("on inputs of size about 100 the output is not finite (inf or NaN): exp of large scores "
                    "overflows. Use torch.softmax (or F.softmax), or subtract each row's maximum before exp")
    return None


# ---------------------------------------------------------------- probes


def _values_probe(build, sizes_of):
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        module = build(module_class, sizes).eval()
        _zero_biases(module)
        x = probe_input(sizes)
        named = named_projections(module)
        return {"names": [name for name, _ in named], "matrices": [matrix for _, matrix in named],
                "result": run_module(module, x),
                "large": [run_module(module, big)["output"] for big in large_magnitudes(x)]}
    return single_threaded(probe)


def _future_probe(build, sizes_of):
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        module = build(module_class, sizes).eval()
        x = probe_input(sizes)
        cut = sizes["T"] // 2
        changed_future, changed_first = x.clone(), x.clone()
        changed_future[:, cut:] = -x[:, cut:].flip(1)  # other tokens at positions cut .. T - 1
        changed_first[:, 0] = -x[:, 0]
        return {"cut": cut, "before": run_module(module, x), "after": run_module(module, changed_future),
                "first": run_module(module, changed_first)}
    return single_threaded(probe)


def _future_judge(got):
    before, after, first = (got[key]["output"] for key in ("before", "after", "first"))
    cut = got["cut"]
    if not all(isinstance(o, np.ndarray) and o.ndim == 3 for o in (before, after, first)) or \
            not before.shape == after.shape == first.shape:
        return "fix the output shape first (see the other tests)"
    past = float(np.abs(before[:, :cut] - after[:, :cut]).max())
    if past > 1e-5:
        return (f"changing the tokens at positions {cut}..{before.shape[1] - 1} changed the outputs at positions "
                f"0..{cut - 1} (by up to {past:.3g}): the past can see the future. Mask the scores with -inf where "
                f"key position > query position, before the softmax")
    if float(np.abs(before[:, cut:] - after[:, cut:]).max()) < 1e-7:
        return "changing the last tokens did not change the outputs there: does the output use x at all?"
    if float(np.abs(before[:, 1:] - first[:, 1:]).max()) < 1e-7:
        return ("changing the first token changed no later output: each position only looks at itself. Position t "
                "must attend to positions 0..t (weights @ v over the keys)")
    return None


def _dropout_probe(build, sizes_of, **probabilities):
    """probabilities: which dropout arguments get dropout_probability() (the others 0)."""
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        p = dropout_probability()
        module = build(module_class, sizes, **{name: p if on else 0.0 for name, on in probabilities.items()})
        return train_and_eval_runs(module, probe_input(sizes))
    return single_threaded(probe)


def _dropout_judge(sizes_of, argument: str, on_weights: bool, on_output: bool):
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
            return ("dropout is applied to the masked scores before the softmax: a dropped -inf becomes "
                    "-inf * 0 = NaN in training mode. Apply it to the attention weights, after the softmax")
        wrong_p = [call["p"] for call in calls if abs(call["p"] - p) > 1e-9]
        if wrong_p:
            return (f"a dropout uses p = {round(wrong_p[0], 4)} though {argument} = {p} was given: pass the argument "
                    f"on (nn.Dropout({argument})), never a fixed probability")
        if np.allclose(train, first, atol=1e-7):
            return (f"with {argument} = {p}, training mode gives the same output as eval mode: apply an "
                    f"nn.Dropout({argument}) to " + ("the attention weights" if on_weights else "the output"))
        if not calls:
            return None  # dropout inside a fused kernel (F.scaled_dot_product_attention(dropout_p=...)): not visible
        if on_weights and "weights" not in sites:
            if "heads" in sites:
                return ("dropout is applied to the head's output (weights @ v) instead of the attention weights: "
                        "self.dropout(weights) @ v")
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
        return None
    return judge


def _bias_probe(build, sizes_of):
    def probe(module_class):
        module = build(module_class, sizes_of())
        return [name for name, parameter in module.named_parameters() if parameter.dim() == 1]
    return single_threaded(probe)


def _bias_judge(got):
    if got:
        return (f"the head has bias parameters {got}: the exercise asks for nn.Linear(n_embd, head_size, "
                f"bias=False) (attention heads in GPT-style code have no biases in their query, key and value)")
    return None


# ---------------------------------------------------------------- the checks


def _build_head(head_class, sizes, dropout=0.0):
    return head_class(sizes["n_embd"], sizes["head_size"], sizes["block_size"], dropout)


def _build_multi(module_class, sizes, dropout=0.0):
    return module_class(sizes["n_embd"], sizes["n_head"], sizes["block_size"], dropout)


def _build_causal(module_class, sizes, attn_pdrop=0.0, resid_pdrop=0.0):
    return module_class(AttentionConfig(n_embd=sizes["n_embd"], n_head=sizes["n_head"],
                                        block_size=sizes["block_size"], attn_pdrop=attn_pdrop,
                                        resid_pdrop=resid_pdrop))


def _values_judge(sizes_of, with_output: bool, name: str):
    def judge(got):
        sizes = sizes_of()
        if with_output:
            what = f"{name}(n_embd={sizes['n_embd']}, n_head={sizes['n_head']}, block_size={sizes['block_size']})"
        else:
            what = f"{name}({sizes['n_embd']}, {sizes['head_size']}, {sizes['block_size']})"
        return _diagnose(got, sizes, with_output, what)
    return judge


def _value_test(description, build, sizes_of, with_output, name):
    return Test(description, _values_probe(build, sizes_of), _values_judge(sizes_of, with_output, name), weight=6.0)


check_attention_head = Check(
    exercise="attention_head",
    expects=["the class AttentionHead itself, built as AttentionHead(n_embd, head_size, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        _value_test("AttentionHead(12, 4, 8, 0.0) on x (2, 6, 12): causal scaled attention with its own weights",
                    _build_head, head_sizes, False, "AttentionHead"),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_head, head_sizes),
             _future_judge, weight=2.0),
        Test("dropout on the attention weights in training, off in eval",
             _dropout_probe(_build_head, head_sizes, dropout=True),
             _dropout_judge(head_sizes, "dropout", on_weights=True, on_output=False), weight=2.0),
        Test("no biases in the query, key and value projections", _bias_probe(_build_head, head_sizes), _bias_judge,
             weight=0.5),
    ],
)

check_multi_head_attention = Check(
    exercise="multi_head_attention",
    expects=["the class MultiHeadAttention itself, built as MultiHeadAttention(n_embd, n_head, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        _value_test("MultiHeadAttention(24, 4, 8, 0.0) on x (2, 6, 24): heads, concatenation, projection",
                    _build_multi, multi_sizes, True, "MultiHeadAttention"),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_multi, multi_sizes),
             _future_judge, weight=2.0),
        Test("dropout on every head's weights and on the output in training, off in eval",
             _dropout_probe(_build_multi, multi_sizes, dropout=True),
             _dropout_judge(multi_sizes, "dropout", on_weights=True, on_output=True), weight=2.0),
    ],
)


def _other_heads_judge(got):
    sizes = other_heads_sizes()
    what = f"CausalSelfAttention(config) with n_embd={sizes['n_embd']}, n_head={sizes['n_head']}"
    mistake = _diagnose(got, sizes, True, what)
    if mistake is None:
        return None
    for n_head in (1, 2, 3, 4, 6, 8, 12):
        if n_head != sizes["n_head"] and sizes["n_embd"] % n_head == 0 and \
                _diagnose(got, {**sizes, "n_head": n_head, "head_size": sizes["n_embd"] // n_head}, True, what) is None:
            return (f"{what} computes attention with {n_head} head(s): use config.n_head heads of size "
                    f"config.n_embd // config.n_head, not fixed numbers")
    return mistake


check_causal_self_attention = Check(
    exercise="causal_self_attention",
    expects=["the class CausalSelfAttention itself, built as CausalSelfAttention(config)"],
    accepts=[is_module_class],
    tests=[
        _value_test("CausalSelfAttention(n_embd=24, n_head=4, block_size=8) on x (2, 6, 24)",
                    _build_causal, multi_sizes, True, "CausalSelfAttention"),
        Test("another head count (n_embd=12, n_head=3)", _values_probe(_build_causal, other_heads_sizes),
             _other_heads_judge, weight=3.0),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_causal, multi_sizes),
             _future_judge, weight=1.0),
        Test("attention dropout (attn_pdrop) on the weights in training, off in eval",
             _dropout_probe(_build_causal, multi_sizes, attn_pdrop=True, resid_pdrop=False),
             _dropout_judge(multi_sizes, "attn_pdrop", on_weights=True, on_output=False), weight=1.0),
        Test("residual dropout (resid_pdrop) on the projected output in training",
             _dropout_probe(_build_causal, multi_sizes, attn_pdrop=False, resid_pdrop=True),
             _dropout_judge(multi_sizes, "resid_pdrop", on_weights=False, on_output=True), weight=1.0),
    ],
)

# ---------------------------------------------------------------- cross-attention on small matrices

# The worked example printed in the notebook: 2 queries, 3 keys/values, d = 3, d_k = 2, d_v = 4.
WORKED_EXAMPLE = {
    "S1": [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]],
    "S2": [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [2.0, 0.0, 0.0]],
    "W_Q": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
    "W_K": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
    "W_V": [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]],
}
NAMES = ("S1", "S2", "W_Q", "W_K", "W_V")


def worked_example() -> dict:
    return {name: torch.tensor(value) for name, value in WORKED_EXAMPLE.items()}


def random_matrices(scale: float = 1.0) -> dict:
    """n1=3, n2=5, d=4, d_k=3, d_v=2 in a notebook; other sizes (n1 != n2) in a grading run. scale multiplies S1."""
    sizes = probe_sizes({"n1": 3, "n2": 5, "d": 4, "d_k": 3, "d_v": 2},
                        n1=[2, 3, 4], n2=[5, 6, 7], d=[3, 4, 5], d_k=[2, 3, 4], d_v=[2, 3, 5])
    n1, n2, d, d_k, d_v = (sizes[key] for key in ("n1", "n2", "d", "d_k", "d_v"))
    flat = probe_tensor(n1 * d + n2 * d + 2 * d * d_k + d * d_v)
    shapes = [(n1, d), (n2, d), (d, d_k), (d, d_k), (d, d_v)]
    pieces = flat.split([a * b for a, b in shapes])
    matrices = {name: piece.reshape(shape) for name, piece, shape in zip(NAMES, pieces, shapes)}
    matrices["S1"] = matrices["S1"] * scale
    return matrices


def large_matrices() -> dict:
    """Random matrices whose scores reach the hundreds: exp without the maximum subtracted overflows."""
    return random_matrices(scale=60.0)


def _cross_reference(S1, S2, W_Q, W_K, W_V, variant="") -> torch.Tensor:
    if variant == "":
        from coursekit.attention import cross_attention  # the reference: judge side only
        return cross_attention(S1, S2, W_Q, W_K, W_V)
    q, k, v = S1 @ W_Q, S2 @ W_K, S2 @ W_V
    scores = q @ k.T
    if variant != "no scaling":
        scores = scores / math.sqrt(W_V.size(1) if variant == "sqrt(d_v)" else W_K.size(1))
    if variant == "causal":
        n1, n2 = scores.shape
        scores = scores.masked_fill(~torch.ones(n1, n2, dtype=torch.bool).tril(), float("-inf"))
    if variant == "queries from S2":
        return (S2 @ W_Q @ (S1 @ W_K).T / math.sqrt(W_K.size(1))).softmax(-1) @ (S1 @ W_V)
    return scores.softmax(dim=0 if variant == "softmax over the queries" else -1) @ v


CROSS_MISTAKES = {
    "no scaling": "the scores are not scaled: divide S1 W_Q (S2 W_K)^T by sqrt(d_k), the width of W_Q and W_K",
    "sqrt(d_v)": "the scores are divided by sqrt(d_v); divide by sqrt(d_k), the length of the vectors in each dot product",
    "softmax over the queries": ("the softmax runs over the wrong axis: each query's weights over the keys (a row "
                                 "of the (n1, n2) scores) should sum to 1: softmax(dim=-1)"),
    "causal": "there is a causal mask: cross-attention has none, every query may look at every key",
}


def _cross_probe(inputs_of):
    def probe(cross_attention):
        inputs = inputs_of()
        return cross_attention(*(inputs[name].clone() for name in NAMES))
    return single_threaded(probe)


def _cross_judge(description, inputs_of):
    def judge(got):
        inputs = inputs_of()
        doubles = [inputs[name].double() for name in NAMES]
        expected = _cross_reference(*doubles)
        n1, n2 = inputs["S1"].size(0), inputs["S2"].size(0)
        d_v = inputs["W_V"].size(1)
        if not isinstance(got, np.ndarray):
            return f"cross_attention should return a tensor of shape ({n1}, {d_v}), got {describe(got)}"
        if got.shape == (n2, d_v) and n1 != n2:
            return (f"on {description} the output has shape {got.shape}, one row per key: the queries come from S1 "
                    f"(one output row per row of S1, shape ({n1}, {d_v})), keys and values from S2")
        if got.shape != (n1, d_v):
            return f"on {description} the output should have shape (n1, d_v) = ({n1}, {d_v}), got {got.shape}"
        if not np.isfinite(got).all():
            return (f"on {description} the output is not finite (inf or NaN): exp of large scores overflows. Use "
                    f"torch.softmax, or subtract each row's maximum before exp")
        got = torch.from_numpy(got).double()
        tolerance = 1e-4 * max(1.0, float(expected.abs().max()))
        if torch.allclose(got, expected, atol=tolerance, rtol=1e-4):
            return None
        for variant, message in CROSS_MISTAKES.items():
            if torch.allclose(got, _cross_reference(*doubles, variant=variant), atol=tolerance, rtol=1e-4):
                return message
        return (f"on {description} the output should be {np.round(expected.numpy(), 4).tolist()}, got "
                f"{np.round(got.numpy(), 4).tolist()}: Q = S1 @ W_Q, K = S2 @ W_K, V = S2 @ W_V, "
                f"softmax(Q @ K.T / sqrt(d_k), dim=-1) @ V")
    return judge


CROSS_CASES = [("the worked example", worked_example, 1.0),
               ("random matrices (n1=3, n2=5, d=4, d_k=3, d_v=2)", random_matrices, 4.0),
               ("random matrices with scores in the hundreds", large_matrices, 0.5)]

check_cross_attention = Check(
    exercise="cross_attention",
    expects=["a function cross_attention(S1, S2, W_Q, W_K, W_V) -> tensor of shape (n1, d_v)"],
    tests=[Test(f"cross_attention on {description}", _cross_probe(inputs_of), _cross_judge(description, inputs_of),
                weight=weight) for description, inputs_of, weight in CROSS_CASES],
)
