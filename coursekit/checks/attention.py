"""Checks for notebook 03 (attention).

The student may name and arrange parameters as they like: three nn.Linear(n_embd, head_size) per head, one fused
nn.Linear(n_embd, 3 * n_embd), a ModuleList of heads, raw nn.Parameter matrices (used as x @ W). A probe hands the
judge every projection matrix in registration order (as "x @ M" matrices, biases zeroed first) plus the module's
output on a fixed input. The judge tries each way those matrices can be the queries, keys, values and output
projection; the module passes when one of them reproduces its output. When none does, the judge replays the usual
mistakes (no scaling, softmax over the wrong axis, mask after softmax, ...) and names the one that matches.
Separate black-box tests catch a mask that leaks the future and dropout that stays on in eval mode.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import numpy as np
import torch
import torch.nn as nn

from coursekit.attention import AttentionConfig
from coursekit.checks.core import Check, Test, describe, is_module_class

B, T, BLOCK = 2, 6, 8  # T < block_size: the mask must be cut to the sequence length
HEAD_C, HEAD_SIZE = 12, 4  # single head: n_embd 12 -> head_size 4
MULTI_C, MULTI_HEADS = 24, 4  # multi-head: n_embd 24, 4 heads of 6 (sqrt(24) != 6: scale mistakes stay distinct)


def _x(channels: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(B, T, channels, generator=torch.Generator().manual_seed(seed))


def projection_matrices(module: nn.Module) -> list[torch.Tensor]:
    """Every 2-D weight as an (in, out) matrix M applied as x @ M, in registration order.

    nn.Linear stores (out, in) and computes x @ W.T; a raw 2-D nn.Parameter is taken to be used as x @ W.
    """
    matrices = []
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear):
            matrices.append(submodule.weight.detach().T)
            continue
        for parameter in submodule.parameters(recurse=False):
            if parameter.dim() == 2:
                matrices.append(parameter.detach())
    return matrices


def _zero_biases(module: nn.Module) -> None:
    """Biases do not change what attention is; zeroing them lets the judge compare with bias-free formulas."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.dim() == 1:
                parameter.zero_()


def _run(module: nn.Module, x: torch.Tensor):
    """module(x) or the error it raised (as text), so a judge can say what went wrong and why."""
    try:
        with torch.no_grad():
            out = module(x)
        if isinstance(out, tuple):  # e.g. (output, weights)
            out = out[0]
        return {"output": out, "error": None}
    except Exception as error:  # the judge turns this into advice
        return {"output": None, "error": f"{type(error).__name__}: {error}"}


# ---------------------------------------------------------------- the computation and its usual mistakes


def _weights(q, k, variant: str, n_embd: int) -> torch.Tensor:
    """Attention weights (..., T, T) for queries and keys (..., T, d), computed correctly or with one mistake."""
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


def _heads_out(x, Wq, Wk, Wv, n_head: int, variant: str) -> torch.Tensor:
    """(B, n_head, T, hs): every head's output, heads owning contiguous blocks of the projections' columns."""
    Bx, Tx, _ = x.shape
    hs = Wq.size(1) // n_head

    def split(t):
        return t.view(Bx, Tx, n_head, hs).transpose(1, 2)
    q, k, v = split(x @ Wq), split(x @ Wk), split(x @ Wv)
    return _weights(q, k, variant, x.size(-1)) @ v


def _multi_out(x, Wq, Wk, Wv, Wo, n_head: int, variant: str = "", order=None) -> torch.Tensor:
    heads = _heads_out(x, Wq, Wk, Wv, n_head, variant)  # (B, nh, T, hs)
    Bx, nh, Tx, hs = heads.shape
    if variant == "no transpose before merging":
        merged = heads.reshape(Bx, Tx, nh * hs)
    else:
        if order is not None:
            heads = heads[:, list(order)]
        merged = heads.transpose(1, 2).reshape(Bx, Tx, nh * hs)
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


def _assignments(matrices, n_embd: int, width: int, n_head: int, with_output: bool, fused_any_order=False):
    """Every plausible (Wq, Wk, Wv, Wo) reading of the matrices: Wq, Wk, Wv (n_embd, width), heads contiguous.

    Wo is the output projection (width, n_embd), or None for a single head without one. Separate layers may have
    been registered in any order; one fused layer's output is read as [queries | keys | values] (GPT-2's c_attn,
    whose weights notebook 06 loads), unless fused_any_order.
    """
    matrices = [m.double() for m in matrices]
    output_choices = [i for i, m in enumerate(matrices) if tuple(m.shape) == (width, n_embd)] if with_output \
        else [None]
    for output_index in output_choices:
        rest = [m for i, m in enumerate(matrices) if i != output_index]
        Wo = matrices[output_index] if output_index is not None else None
        # Layout 1: by role, [all queries | all keys | all values] (a fused c_attn, or three separate layers).
        by_role = _pieces(rest, n_embd, width)
        # Layout 2: by head, [q0 k0 v0 | q1 k1 v1 | ...] (a ModuleList of heads with three layers each).
        by_head = _pieces(rest, n_embd, width // n_head) if n_head > 1 else []
        fused = len(rest) == 1
        for roles in itertools.permutations(range(3)):
            if len(by_role) == 3 and (roles == (0, 1, 2) or not fused or fused_any_order):
                yield by_role[roles[0]], by_role[roles[1]], by_role[roles[2]], Wo
            if len(by_head) == 3 * n_head:
                triples = [by_head[3 * h: 3 * h + 3] for h in range(n_head)]
                yield tuple(torch.cat([t[r] for t in triples], dim=1) for r in roles) + (Wo,)


@contextlib.contextmanager
def _one_thread():
    """The judges do hundreds of tiny matrix products: on a busy machine, extra threads only add waiting."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _diagnose(got, n_embd: int, width: int, n_head: int, with_output: bool, what: str) -> str | None:
    """None when some reading of the student's matrices reproduces their output, else the mistake."""
    with _one_thread():
        return _find_mistake(got, n_embd, width, n_head, with_output, what)


def _error_advice(error: str, n_embd: int, width: int, n_head: int, with_output: bool, what: str) -> str:
    """What an error raised on x (B, T, n_embd) most likely means, from its text."""
    where = f"{what} raised {error} on x of shape {(B, T, n_embd)}"
    if f"size of tensor a ({T}) must match the size of tensor b ({BLOCK})" in error or \
            f"size of tensor a ({BLOCK}) must match the size of tensor b ({T})" in error:
        return f"{where} (T = {T} < block_size = {BLOCK}): cut the mask to the sequence length, mask[:T, :T]"
    if with_output and n_head > 1 and f"x{n_head * n_embd} and" in error:
        return (f"{where}: the heads' outputs add up to {n_head} x {n_embd} channels, so every head has size n_embd; "
                f"each head must have head_size = n_embd // n_head = {n_embd // n_head}")
    hs = width // n_head
    if not with_output:
        return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {hs}) -> scores "
                f"(B, T, T) -> weights @ v (B, T, {hs})")
    return (f"{where}: follow the shapes step by step: x (B, T, {n_embd}) -> q, k, v (B, T, {width}) -> each "
            f".view(B, T, {n_head}, {hs}).transpose(1, 2) = (B, {n_head}, T, {hs}) -> scores (B, {n_head}, T, T) -> "
            f"weights @ v (B, {n_head}, T, {hs}) -> .transpose(1, 2).contiguous().view(B, T, {width}) -> "
            f"projection (B, T, {n_embd})")


def _missing_weights_advice(matrices, n_embd: int, width: int, n_head: int, with_output: bool) -> str | None:
    """Why no reading of the weights fits, when the cause is a common one; else None."""
    shapes = [tuple(m.shape) for m in matrices]
    if any(shape == (BLOCK, BLOCK) and bool(((m == 0) | (m == 1)).all()) for m, shape in zip(matrices, shapes)):
        return ("the causal mask is an nn.Parameter, so the optimiser would train it: keep it as a buffer, "
                "self.register_buffer('mask', torch.tril(torch.ones(block_size, block_size)))")
    if not with_output or n_head == 1:
        return None
    head_matrices = shapes.count((n_embd, width // n_head))
    if head_matrices == 0 and (width, n_embd) in shapes:
        return ("only the output projection has weights: the heads are not registered as submodules. Keep them in "
                "an nn.ModuleList (a plain Python list hides them from PyTorch: no parameters, no .eval(), no .to())")
    if 0 < head_matrices < 3 * n_head and head_matrices % 3 == 0:
        return (f"found the weights of only {head_matrices // 3} head(s), not {n_head}: create a new head for each "
                f"([AttentionHead(...) for _ in range(n_head)]); [head] * n_head repeats one and the same head")
    return None


def _find_mistake(got, n_embd: int, width: int, n_head: int, with_output: bool, what: str) -> str | None:
    x = torch.from_numpy(got["x"]).double()
    result = got["result"]
    expected_shape = (B, T, n_embd if with_output else width)
    if result["error"]:
        return _error_advice(result["error"], n_embd, width, n_head, with_output, what)
    out = result["output"]
    if not isinstance(out, np.ndarray) or out.shape != expected_shape:
        return f"{what} should return shape {expected_shape}, got {describe(out)}"
    if np.isnan(out).any():
        return ("the output contains NaN: some query has every score set to -inf (a row with nothing visible); "
                "each position must at least see itself: mask with torch.tril (keep the diagonal)")
    out = torch.from_numpy(out).double()
    matrices = [torch.from_numpy(m) for m in got["matrices"]]
    readings = list(_assignments(matrices, n_embd, width, n_head, with_output))
    if not readings:
        advice = _missing_weights_advice(matrices, n_embd, width, n_head, with_output)
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
        return None
    mistakes = dict(VARIANTS)
    if with_output:
        mistakes["no output projection"] = "the heads' concatenation is returned as is: apply the output projection"
        mistakes["no transpose before merging"] = (
            "the heads were merged with .view(B, T, C) straight from (B, n_head, T, head_size), which mixes "
            "positions and heads: .transpose(1, 2) first, then .contiguous().view(B, T, C)")

    for variant, message in mistakes.items():
        if any(matches(compute(reading, variant)) for reading in readings):
            return message
    if with_output:
        for order in itertools.permutations(range(n_head)):
            if order != tuple(range(n_head)) and any(matches(compute(reading, "", order)) for reading in readings):
                return (f"the heads are concatenated in the order {list(order)}; concatenate them in order "
                        f"0, 1, ..., {n_head - 1} along the last dimension (torch.cat([...], dim=-1))")
    if any(matches(compute(reading)) for reading in _assignments(matrices, n_embd, width, n_head, with_output,
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


# ---------------------------------------------------------------- black-box tests (any structure)


def _future_probe(build, channels):
    def probe(module_class):
        torch.manual_seed(0)
        module = build(module_class, 0.0).eval()
        x = _x(channels)
        changed = x.clone()
        changed[:, 3:] = _x(channels, seed=1)[:, 3:]  # new tokens at positions 3, 4, 5
        return {"before": _run(module, x), "after": _run(module, changed)}
    return probe


def _future_judge(got):
    before, after = got["before"]["output"], got["after"]["output"]
    if before is None or after is None or before.shape != after.shape or before.ndim != 3:
        return "fix the output shape first (see the other tests)"
    past = float(np.abs(before[:, :3] - after[:, :3]).max())
    if past > 1e-5:
        return (f"changing the tokens at positions 3-5 changed the outputs at positions 0-2 (by up to {past:.3g}): "
                f"the past can see the future. Mask the scores with -inf where key position > query position, "
                f"before the softmax")
    if float(np.abs(before[:, 3:] - after[:, 3:]).max()) < 1e-7:
        return "changing the tokens at positions 3-5 did not change the outputs there: does the output use x at all?"
    return None


def _dropout_probe(build, channels, **pdrops):
    def probe(module_class):
        torch.manual_seed(0)
        module = build(module_class, **pdrops)
        x = _x(channels)
        module.eval()
        eval_runs = [_run(module, x)["output"] for _ in range(2)]
        module.train()
        torch.manual_seed(1)
        train_run = _run(module, x)["output"]
        return {"eval": eval_runs, "train": train_run}
    return probe


def _dropout_judge(where: str, zeros_in_output: bool = False):
    def judge(got):
        first, second = got["eval"]
        train = got["train"]
        if first is None or second is None or train is None:
            return "fix the errors reported by the other tests first"
        if not np.array_equal(first, second):
            return ("in eval mode two calls on the same input gave different outputs: dropout is still active. "
                    "Use nn.Dropout modules (they follow model.eval()), or pass training=self.training to F.dropout")
        if np.allclose(train, first, atol=1e-7):
            return (f"with {where} = 0.5, training mode gives the same output as eval mode: apply an "
                    f"nn.Dropout({where}) (to the attention weights for attention dropout, to the projected output "
                    f"for residual dropout)")
        if zeros_in_output:
            zero_fraction = float((train == 0).mean())
            if not 0.3 < zero_fraction < 0.7:
                return (f"with resid_pdrop = 0.5 about half of the output entries should be exactly 0 in training "
                        f"mode, got {zero_fraction:.0%}: apply nn.Dropout(resid_pdrop) to the output of the "
                        f"projection, as the last step")
        return None
    return judge


# ---------------------------------------------------------------- the single head


def _build_head(head_class, dropout=0.0):
    return head_class(HEAD_C, HEAD_SIZE, BLOCK, dropout)


def _values_probe(build, channels):
    def probe(module_class):
        torch.manual_seed(0)
        module = build(module_class, 0.0).eval()
        _zero_biases(module)
        x = _x(channels)
        return {"x": x, "matrices": projection_matrices(module), "result": _run(module, x)}
    return probe


check_attention_head = Check(
    exercise="attention_head",
    expects=["the class AttentionHead itself, built as AttentionHead(n_embd, head_size, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        Test("AttentionHead(12, 4, 8, 0.0) on x (2, 6, 12): causal scaled attention with its own weights",
             _values_probe(_build_head, HEAD_C),
             lambda got: _diagnose(got, HEAD_C, HEAD_SIZE, 1, False, "AttentionHead(12, 4, 8)")),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_head, HEAD_C), _future_judge),
        Test("dropout: on in training, off in eval", _dropout_probe(_build_head, HEAD_C, dropout=0.5),
             _dropout_judge("dropout")),
    ],
)


# ---------------------------------------------------------------- several heads


def _build_multi(module_class, dropout=0.0):
    return module_class(MULTI_C, MULTI_HEADS, BLOCK, dropout)


def _build_causal(module_class, attn_pdrop=0.0, resid_pdrop=None):
    resid_pdrop = attn_pdrop if resid_pdrop is None else resid_pdrop
    return module_class(AttentionConfig(n_embd=MULTI_C, n_head=MULTI_HEADS, block_size=BLOCK,
                                        attn_pdrop=attn_pdrop, resid_pdrop=resid_pdrop))


def _other_heads_probe(module_class):
    """n_embd 12 with 3 heads: nothing may be hard-coded to 4 heads."""
    torch.manual_seed(0)
    module = module_class(AttentionConfig(n_embd=12, n_head=3, block_size=BLOCK)).eval()
    _zero_biases(module)
    x = _x(12)
    return {"x": x, "matrices": projection_matrices(module), "result": _run(module, x)}


def _other_heads_judge(got):
    what = "CausalSelfAttention(config) with n_embd=12, n_head=3"
    mistake = _diagnose(got, 12, 12, 3, True, what)
    if mistake is None:
        return None
    for n_head in (1, 2, 4, 6, 12):
        if _diagnose(got, 12, 12, n_head, True, what) is None:
            return (f"{what} computes attention with {n_head} head(s): use config.n_head heads of size "
                    f"config.n_embd // config.n_head, not fixed numbers")
    return mistake


check_multi_head_attention = Check(
    exercise="multi_head_attention",
    expects=["the class MultiHeadAttention itself, built as MultiHeadAttention(n_embd, n_head, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        Test("MultiHeadAttention(24, 4, 8, 0.0) on x (2, 6, 24): heads, concatenation, projection",
             _values_probe(_build_multi, MULTI_C),
             lambda got: _diagnose(got, MULTI_C, MULTI_C, MULTI_HEADS, True, "MultiHeadAttention(24, 4, 8)")),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_multi, MULTI_C), _future_judge),
        Test("dropout: on in training, off in eval", _dropout_probe(_build_multi, MULTI_C, dropout=0.5),
             _dropout_judge("dropout")),
    ],
)

check_causal_self_attention = Check(
    exercise="causal_self_attention",
    expects=["the class CausalSelfAttention itself, built as CausalSelfAttention(config)"],
    accepts=[is_module_class],
    tests=[
        Test("CausalSelfAttention(n_embd=24, n_head=4, block_size=8) on x (2, 6, 24)",
             _values_probe(_build_causal, MULTI_C),
             lambda got: _diagnose(got, MULTI_C, MULTI_C, MULTI_HEADS, True, "CausalSelfAttention(config)")),
        Test("another head count (n_embd=12, n_head=3)", _other_heads_probe, _other_heads_judge),
        Test("changing future tokens leaves past outputs alone", _future_probe(_build_causal, MULTI_C),
             _future_judge),
        Test("attention dropout: on in training, off in eval",
             _dropout_probe(_build_causal, MULTI_C, attn_pdrop=0.5, resid_pdrop=0.0), _dropout_judge("attn_pdrop")),
        Test("residual dropout zeroes output entries in training",
             _dropout_probe(_build_causal, MULTI_C, attn_pdrop=0.0, resid_pdrop=0.5),
             _dropout_judge("resid_pdrop", zeros_in_output=True)),
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


def _cross_reference(S1, S2, W_Q, W_K, W_V, variant="") -> torch.Tensor:
    q, k, v = S1 @ W_Q, S2 @ W_K, S2 @ W_V
    scores = q @ k.T
    if variant != "no scaling":
        scores = scores / math.sqrt(W_V.size(1) if variant == "sqrt(d_v)" else W_K.size(1))
    if variant == "causal":
        n1, n2 = scores.shape
        scores = scores.masked_fill(~torch.ones(n1, n2, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(dim=0 if variant == "softmax over the queries" else -1) @ v


CROSS_CASES = {
    "the worked example": {name: torch.tensor(value) for name, value in WORKED_EXAMPLE.items()},
    "random matrices (n1=3, n2=5, d=4, d_k=3, d_v=2)": {
        name: torch.randn(*shape, generator=torch.Generator().manual_seed(i))
        for i, (name, shape) in enumerate([("S1", (3, 4)), ("S2", (5, 4)), ("W_Q", (4, 3)), ("W_K", (4, 3)),
                                           ("W_V", (4, 2))])},
}

CROSS_MISTAKES = {
    "no scaling": "the scores are not scaled: divide S1 W_Q (S2 W_K)^T by sqrt(d_k), the width of W_Q and W_K",
    "sqrt(d_v)": "the scores are divided by sqrt(d_v); divide by sqrt(d_k), the length of the vectors in each dot product",
    "softmax over the queries": ("the softmax runs over the wrong axis: each query's weights over the keys (a row "
                                 "of the (n1, n2) scores) should sum to 1: softmax(dim=-1)"),
    "causal": "there is a causal mask: cross-attention has none, every query may look at every key",
}


def _cross_probe(inputs):
    def probe(cross_attention):
        return cross_attention(*(inputs[name].clone() for name in ("S1", "S2", "W_Q", "W_K", "W_V")))
    return probe


def _cross_judge(description, inputs):
    def judge(got):
        expected = _cross_reference(*(inputs[name].double() for name in ("S1", "S2", "W_Q", "W_K", "W_V")))
        n1, n2 = inputs["S1"].size(0), inputs["S2"].size(0)
        d_v = inputs["W_V"].size(1)
        if not isinstance(got, np.ndarray):
            return f"cross_attention should return a tensor of shape ({n1}, {d_v}), got {describe(got)}"
        if got.shape == (n2, d_v) and n1 != n2:
            return (f"on {description} the output has shape {got.shape}, one row per key: the queries come from S1 "
                    f"(one output row per row of S1, shape ({n1}, {d_v})), keys and values from S2")
        if got.shape != (n1, d_v):
            return f"on {description} the output should have shape (n1, d_v) = ({n1}, {d_v}), got {got.shape}"
        got = torch.from_numpy(got).double()
        if torch.allclose(got, expected, atol=1e-4):
            return None
        for variant, message in CROSS_MISTAKES.items():
            if torch.allclose(got, _cross_reference(*(inputs[n].double() for n in ("S1", "S2", "W_Q", "W_K", "W_V")),
                                                    variant=variant), atol=1e-4):
                return message
        return (f"on {description} the output should be {np.round(expected.numpy(), 4).tolist()}, got "
                f"{np.round(got.numpy(), 4).tolist()}: Q = S1 @ W_Q, K = S2 @ W_K, V = S2 @ W_V, "
                f"softmax(Q @ K.T / sqrt(d_k), dim=-1) @ V")
    return judge


check_cross_attention = Check(
    exercise="cross_attention",
    expects=["a function cross_attention(S1, S2, W_Q, W_K, W_V) -> tensor of shape (n1, d_v)"],
    tests=[Test(f"cross_attention on {description}", _cross_probe(inputs), _cross_judge(description, inputs))
           for description, inputs in CROSS_CASES.items()],
)
