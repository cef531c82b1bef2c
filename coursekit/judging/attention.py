"""Notebook 03's computations replayed from a module's own weights: right (the reference's attention_weights) or
with one usual mistake, so that a judge can name the mistake whose output matches the student's.

>>> q = k = torch.zeros(1, 3, 2)
>>> weights(q, k, "no mask", n_embd=2)[0, 0].tolist()
[0.3333333432674408, 0.3333333432674408, 0.3333333432674408]
"""

from __future__ import annotations

import math

import torch

from coursekit.attention import attention_weights, cross_attention

SPLITS = {  # (transpose when splitting, transpose when merging)
    "no transpose before merging": (True, False),
    "no transpose when splitting": (False, True),
    "no transpose at all": (False, False),
}


def weights(q, k, variant: str, n_embd: int) -> torch.Tensor:
    """Attention weights (..., T, T) for queries and keys (..., T, d): the reference's when variant is "", else
    the ones of the named mistake (a name it does not know is an error)."""
    if variant == "":
        return attention_weights(q, k)
    d = k.size(-1)
    if variant == "queries and keys swapped":
        return attention_weights(k, q)
    scale = {"no scaling": math.sqrt(d), "1/head_size": 1 / math.sqrt(d), "times sqrt": d,
             "1/sqrt(n_embd)": math.sqrt(d / n_embd)}
    if variant in scale:  # the reference divides by sqrt(d): scaling q first gives the mistaken factor
        return attention_weights(q * scale[variant], k)
    if variant == "no mask":
        return attention_weights(q, k, causal=False)
    if variant == "mask after softmax":
        n = q.size(-2)
        return attention_weights(q, k, causal=False).masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(), 0.0)
    scores = q @ k.transpose(-2, -1) / math.sqrt(d)
    n = scores.size(-1)
    future = ~torch.ones(n, n, dtype=torch.bool).tril()
    if variant.startswith("mask with "):  # "mask with 0", "mask with -10": a finite number instead of -inf
        return scores.masked_fill(future, float(variant.split()[-1])).softmax(dim=-1)
    if variant == "softmax over the queries":
        return scores.masked_fill(future, float("-inf")).softmax(dim=-2).nan_to_num(0.0)
    if variant == "sees the next token":
        return scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).tril(1), float("-inf")).softmax(dim=-1)
    if variant == "mask the wrong way round":
        return scores.masked_fill(~torch.ones(n, n, dtype=torch.bool).triu(), float("-inf")).softmax(dim=-1)
    raise KeyError(variant)


def heads_out(x, Wq, Wk, Wv, n_head: int, variant: str = "", split_transpose: bool = True) -> torch.Tensor:
    """(B, n_head, T, hs): every head's output, heads owning contiguous blocks of the projections' columns."""
    B, T, _ = x.shape
    hs = Wq.size(1) // n_head

    def split(t):
        if split_transpose:
            return t.view(B, T, n_head, hs).transpose(1, 2)
        return t.reshape(B, n_head, T, hs)  # (B, T, C) read straight as (B, nh, T, hs)
    q, k, v = split(x @ Wq), split(x @ Wk), split(x @ Wv)
    return weights(q, k, variant, x.size(-1)) @ v


def multi_out(x, Wq, Wk, Wv, Wo, n_head: int, variant: str = "", order=None) -> torch.Tensor:
    """(B, T, C): the heads merged in `order` (default 0, 1, ...) and projected by Wo, or with the named mistake
    ("no output projection", a transpose left out (SPLITS), or one of weights()'s)."""
    split_transpose, merge_transpose = SPLITS.get(variant, (True, True))
    heads = heads_out(x, Wq, Wk, Wv, n_head, "" if variant in SPLITS or variant in ("no output projection",
                                                                                    "heads interleaved")
                      else variant, split_transpose)
    B, nh, T, hs = heads.shape
    if order is not None:
        heads = heads[:, list(order)]
    if variant == "heads interleaved":  # torch.stack([...], dim=-1).reshape(B, T, C): channel j of head h at j * nh + h
        merged = heads.permute(0, 2, 3, 1).reshape(B, T, nh * hs)
    elif merge_transpose:
        merged = heads.transpose(1, 2).reshape(B, T, nh * hs)
    else:
        merged = heads.reshape(B, T, nh * hs)
    return merged if variant == "no output projection" else merged @ Wo


def cross(S1, S2, W_Q, W_K, W_V, variant: str = "") -> torch.Tensor:
    """Cross-attention: the reference's when variant is "", else with the named mistake."""
    d_k, d_v = W_K.size(1), W_V.size(1)
    if variant == "":
        return cross_attention(S1, S2, W_Q, W_K, W_V)
    if variant == "no scaling":
        return cross_attention(S1, S2, W_Q * math.sqrt(d_k), W_K, W_V)
    if variant in ("sqrt(d_v)", "sqrt(2)"):  # divided by sqrt(d_v), or by a fixed sqrt(2)
        return cross_attention(S1, S2, W_Q * math.sqrt(d_k / (d_v if variant == "sqrt(d_v)" else 2)), W_K, W_V)
    if variant in ("1/d_k", "times sqrt(d_k)", "1/sqrt(d)", "sqrt(n1)", "sqrt(n2)"):  # the reference: 1/sqrt(d_k)
        factor = {"1/d_k": 1 / math.sqrt(d_k), "times sqrt(d_k)": d_k, "1/sqrt(d)": math.sqrt(d_k / S1.size(1)),
                  "sqrt(n1)": math.sqrt(d_k / S1.size(0)), "sqrt(n2)": math.sqrt(d_k / S2.size(0))}
        return cross_attention(S1, S2, W_Q * factor[variant], W_K, W_V)
    if variant == "queries from S2":
        return cross_attention(S2, S1, W_Q, W_K, W_V)
    scores = (S1 @ W_Q) @ (S2 @ W_K).T / math.sqrt(d_k)
    if variant == "causal":
        n1, n2 = scores.shape
        return scores.masked_fill(~torch.ones(n1, n2, dtype=torch.bool).tril(), float("-inf")).softmax(-1) @ (S2 @ W_V)
    if variant == "softmax over the queries":
        return scores.softmax(dim=0) @ (S2 @ W_V)
    raise KeyError(variant)
