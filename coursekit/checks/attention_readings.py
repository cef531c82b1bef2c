"""Reading a student's attention weights: which of its matrices are the queries, keys, values and output
projection.

The student may name and arrange parameters as they like: three nn.Linear(n_embd, head_size) per head, one fused
nn.Linear(n_embd, 3 * n_embd), a ModuleList of heads, raw nn.Parameter matrices (used as x @ W). The judge tries
each way those matrices can play the four roles (names such as query/key/value or W_Q fix them); the module
passes when one of them reproduces its output (attention_judges.py).
"""

from __future__ import annotations

import itertools
import re

import torch

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



def pieces(matrices, channels: int, width: int) -> list[torch.Tensor]:
    """Split (channels, k * width) matrices into (channels, width) column blocks, in order."""
    pieces = []
    for matrix in matrices:
        if width <= 0 or matrix.size(0) != channels or matrix.size(1) % width:  # fewer channels than heads
            return []
        pieces.extend(matrix.split(width, dim=1))
    return pieces


def role_orders(names: list[str]) -> list[tuple[int, int, int]]:
    """The (query, key, value) positions among three matrices: fixed by their names when those name every role
    once, else every order (the names say nothing)."""
    roles = [role_of(name) for name in names]
    if sorted(r for r in roles if r is not None) == [0, 1, 2] and len(roles) == 3:
        return [tuple(roles.index(role) for role in range(3))]
    return list(itertools.permutations(range(3)))


def assignments(matrices, names, n_embd: int, width: int, n_head: int, with_output: bool, fused_any_order=False,
                gpt2_layout=False):
    """Every plausible (Wq, Wk, Wv, Wo) reading of the matrices: Wq, Wk, Wv (n_embd, width), heads contiguous.

    Wo is the output projection (width, n_embd), or None for a single head without one. Separate layers named
    query/key/value (or q, W_K, ...) are read by their names, unnamed ones in any order; one fused layer's output is
    read as [queries | keys | values] or head by head, [q0 k0 v0 | q1 k1 v1 | ...]; with gpt2_layout (03's
    CausalSelfAttention, whose c_attn takes GPT-2's weights in notebook 06) only as [queries | keys | values].
    fused_any_order (for diagnosis) reads it in every order.
    """
    matrices = [m.double() for m in matrices]
    output_choices = [i for i, m in enumerate(matrices) if tuple(m.shape) == (width, n_embd)] if with_output \
        else [None]
    for output_index in output_choices:
        rest = [m for i, m in enumerate(matrices) if i != output_index]
        rest_names = [n for i, n in enumerate(names) if i != output_index]
        Wo = matrices[output_index] if output_index is not None else None
        by_role = pieces(rest, n_embd, width)  # [all queries | all keys | all values]
        by_head = pieces(rest, n_embd, width // n_head) if n_head > 1 else []  # [q0 k0 v0 | q1 k1 v1 | ...]
        fused = len(rest) == 1
        if len(by_role) == 3:
            orders = list(itertools.permutations(range(3))) if fused_any_order else \
                [(0, 1, 2)] if fused else role_orders(rest_names)
            for roles in orders:
                yield by_role[roles[0]], by_role[roles[1]], by_role[roles[2]], Wo
        if len(by_head) == 3 * n_head and not (fused and gpt2_layout and not fused_any_order):
            orders = role_orders(rest_names[:3]) if len(rest) == 3 * n_head else \
                list(itertools.permutations(range(3)))
            triples = [by_head[3 * h: 3 * h + 3] for h in range(n_head)]
            for roles in orders:
                yield tuple(torch.cat([t[r] for t in triples], dim=1) for r in roles) + (Wo,)

