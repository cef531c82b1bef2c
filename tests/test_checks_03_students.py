"""Notebook 03's checks against answers written as students would write them, from the notebook's text alone: each
mistake's first failing test names it under the public and five secret run seeds; each valid variant passes."""

import math
import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.nn.functional import scaled_dot_product_attention

from check_family import student_tests
from coursekit import checks

NEG_INF = float("-inf")

# ---------------------------------------------------------------- AttentionHead, written out as a student would


class Head(nn.Module):
    """The notebook's recipe, step by step; each bug below overrides one step."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)))
        self.dropout = nn.Dropout(dropout)
        self.head_size = head_size

    def scores(self, q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(self.head_size)

    def masked(self, scores, T):
        return scores.masked_fill(self.mask[:T, :T] == 0, NEG_INF)

    def weights(self, scores):
        return F.softmax(scores, dim=-1)

    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = self.dropout(self.weights(self.masked(self.scores(q, k), T)))
        return weights @ v


def head_bug(**methods):
    return type("StudentHead", (Head,), methods)


class DropScoresHead(Head):
    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        return F.softmax(self.dropout(self.masked(self.scores(q, k), T)), dim=-1) @ v


class DropOutputHead(Head):
    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        return self.dropout(F.softmax(self.masked(self.scores(q, k), T), dim=-1) @ v)


class DropValuesHead(Head):
    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        return F.softmax(self.masked(self.scores(q, k), T), dim=-1) @ self.dropout(v)


class AlwaysDropHead(Head):
    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        return F.dropout(F.softmax(self.masked(self.scores(q, k), T), dim=-1), self.dropout.p) @ v


class FixedPHead(Head):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.dropout = nn.Dropout(0.2)


class BiasHead(Head):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.query, self.key, self.value = (nn.Linear(n_embd, head_size) for _ in range(3))


class KeyAsValueHead(Head):
    def forward(self, x):
        T = x.shape[1]
        q, k = self.query(x), self.key(x)
        return self.dropout(F.softmax(self.masked(self.scores(q, k), T), dim=-1)) @ k


class FullMaskHead(Head):
    """The mask not cut to T: fine at T == block_size only."""

    def masked(self, scores, T):
        return scores.masked_fill(self.mask == 0, NEG_INF)


class InPlaceDropoutHead(Head):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.dropout = nn.Dropout(dropout, inplace=True)


class EightMaskHead(Head):
    """torch.ones(8, 8): the notebook's block_size, whatever block_size is given."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.register_buffer("mask", torch.tril(torch.ones(8, 8)))


class PlainMaskHead(Head):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        del self.mask
        self.mask = torch.tril(torch.ones(block_size, block_size))


class TupleHead(Head):
    def forward(self, x):
        T = x.shape[1]
        weights = self.dropout(self.weights(self.masked(self.scores(self.query(x), self.key(x)), T)))
        return weights @ self.value(x), weights


class BlockSizedDropoutHead(Head):
    """A hand-made dropout whose keep-mask is (block_size, block_size): fine in eval mode, an error in training when
    T < block_size."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.p, self.block_size = dropout, block_size

    def forward(self, x):
        T = x.shape[1]
        weights = self.weights(self.masked(self.scores(self.query(x), self.key(x)), T))
        if self.training:
            weights = weights * (torch.rand(self.block_size, self.block_size) > self.p) / (1 - self.p)
        return weights @ self.value(x)


class ZeroesInputHead(Head):
    def forward(self, x):
        out = Head.forward(self, x)
        x.mul_(0)
        return out


class SqueezedInputHead(Head):
    """x.squeeze() first: for B = 1 the batch axis goes, and the output is (T, head_size)."""

    def forward(self, x):
        x = x.squeeze()
        T = x.shape[-2]
        q, k, v = self.query(x), self.key(x), self.value(x)
        return self.dropout(self.weights(self.masked(self.scores(q, k), T))) @ v


class RenormalisedDropoutHead(Head):
    """The dropped weights divided by their rows' sums again: it undoes dropout's 1/(1-p) scaling."""

    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        weights = self.dropout(self.weights(self.masked(self.scores(q, k), T)))
        return weights / weights.sum(-1, keepdim=True).clamp_min(1e-9) @ v


class SwappedSizesHead(Head):
    """head_size and block_size taken in the wrong order."""

    def __init__(self, n_embd, block_size, head_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)


class FinfoMinHead(Head):
    """The smallest float32 instead of -inf: exp of it minus any score is exactly 0."""

    def masked(self, scores, T):
        return scores.masked_fill(self.mask[:T, :T] == 0, torch.finfo(scores.dtype).min)


def renormalised_over_the_whole_row(self, s):
    """exp(s - max) with the max taken over the unmasked row (future included), then the future zeroed."""
    T = s.shape[-1]
    e = (s - s.amax(-1, keepdim=True)).exp() * self.mask[:T, :T]
    return e / e.sum(-1, keepdim=True)


class WholeRowMaxHead(Head):
    def forward(self, x):
        weights = renormalised_over_the_whole_row(self, self.scores(self.query(x), self.key(x)))
        self.last_weights = weights.detach()  # kept for a heatmap: attention weights, not a mask
        return self.dropout(weights) @ self.value(x)


HEAD_BUGS = [
    ("queries and keys are swapped", head_bug(scores=lambda self, q, k: k @ q.transpose(-2, -1) / math.sqrt(self.head_size))),
    ("not scaled", head_bug(scores=lambda self, q, k: q @ k.transpose(-2, -1))),
    ("divided by head_size", head_bug(scores=lambda self, q, k: q @ k.transpose(-2, -1) / self.head_size)),
    ("multiplied by sqrt\\(head_size\\)|not scaled|divided by",
     head_bug(scores=lambda self, q, k: q @ k.transpose(-2, -1) * math.sqrt(self.head_size))),
    ("fixed to the notebook|sqrt\\(head_size\\)", head_bug(scores=lambda self, q, k: q @ k.transpose(-2, -1) / 2.0)),
    ("softmax runs over the wrong axis", head_bug(weights=lambda self, s: F.softmax(s, dim=-2))),
    ("instead of -inf", head_bug(masked=lambda self, s, T: s.masked_fill(self.mask[:T, :T] == 0, 0.0))),
    ("hides the past instead of the future",
     head_bug(masked=lambda self, s, T: s.masked_fill(self.mask[:T, :T].T == 0, NEG_INF))),
    ("applied after the softmax", head_bug(forward=lambda self, x: self.dropout(F.softmax(self.scores(
        self.query(x), self.key(x)), dim=-1).masked_fill(self.mask[:x.shape[1], :x.shape[1]] == 0, 0.0)) @ self.value(x))),
    ("not finite", head_bug(weights=lambda self, s: s.exp() / s.exp().sum(-1, keepdim=True))),
    ("mask\\[:T, :T\\]", FullMaskHead),
    ("before the softmax", DropScoresHead),
    ("head's output \\(weights @ v\\) instead of the attention weights", DropOutputHead),
    ("dropout is applied to the values v", DropValuesHead),
    ("batch of one, expected \\(1, \\d+, \\d+\\): the batch axis was dropped", SqueezedInputHead),
    ("should be \\d+\\.\\d+ times the eval output .* renormalised after the dropout", RenormalisedDropoutHead),
    ("scores of about \\+-1e6.*masked with a finite number",
     head_bug(masked=lambda self, s, T: s.masked_fill(self.mask[:T, :T] == 0, -1e4))),
    ("head_size and block_size are swapped", SwappedSizesHead),
    ("dropout is still active", AlwaysDropHead),
    ("never a fixed probability", FixedPHead),
    ("the head has bias parameters", BiasHead),
    ("value|does not compute causal self-attention", KeyAsValueHead),
    ("nn.Dropout\\(\\.\\.\\., inplace=True\\) overwrites the softmax's output", InPlaceDropoutHead),
    ("mask has shape \\(8, 8\\), expected .* block_size = \\d+ \\(got 8\\): the mask's size is hard-coded",
     EightMaskHead),
    ("is a plain tensor attribute, not a registered buffer", PlainMaskHead),
    ("should return one tensor of shape .*, got a tuple", TupleHead),
    ("changes the x it is given in place", ZeroesInputHead),
    ("returns float64 for a float32 x: expected float32", head_bug(forward=lambda self, x: Head.forward(self, x).double())),
    ("score -10 instead of -inf: their weight is small .* but not zero",
     head_bug(masked=lambda self, s, T: s.masked_fill(self.mask[:T, :T] == 0, -10.0))),
    ("taken over the whole row, future positions included", WholeRowMaxHead),
    ("half precision", head_bug(weights=lambda self, s: F.softmax(s.half(), dim=-1).float())),
    ("in training mode your code raised RuntimeError: The size of tensor a", BlockSizedDropoutHead),
    ("should return shape \\(2, \\d+, \\d+\\) .*, got a tensor of shape \\(2, \\d+, \\d+\\)|does not compute "
     "causal self-attention",  # the weights, (B, T, T): the output's shape too when head_size == T
     head_bug(forward=lambda self, x: self.weights(self.masked(self.scores(self.query(x), self.key(x)), x.shape[1])))),
]


class SDPAHead(nn.Module):
    """PyTorch's fused kernel with a boolean mask; dropout passed only while training."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("causal", torch.ones(block_size, block_size, dtype=torch.bool).tril())
        self.p = dropout

    def forward(self, x):
        T = x.size(1)
        return F.scaled_dot_product_attention(self.query(x), self.key(x), self.value(x),
                                              attn_mask=self.causal[:T, :T], dropout_p=self.p if self.training else 0.0)


class QueryLoopHead(Head):
    """One query at a time: query t's scores over keys 0..t (no mask needed), dropout on that row of weights."""

    def forward(self, x):
        q, k, v = self.query(x), self.key(x), self.value(x)
        rows = []
        for t in range(x.shape[1]):
            scores = q[:, t:t + 1] @ k[:, :t + 1].transpose(1, 2) / math.sqrt(self.head_size)  # (B, 1, t + 1)
            rows.append(self.dropout(scores.softmax(-1)) @ v[:, :t + 1])
        return torch.cat(rows, dim=1)


class SquareMaskHead(Head):
    """A (T, T) mask built in forward from T alone (no buffer)."""

    def forward(self, x):
        T = x.shape[1]
        scores = self.scores(self.query(x), self.key(x))
        visible = torch.ones(T, T, dtype=torch.bool).tril()
        return self.dropout(scores.masked_fill(~visible, NEG_INF).softmax(-1)) @ self.value(x)


class WhereHead(Head):
    """torch.where with a large negative number, a max-subtracted exp, einsum for the weighted sum."""

    def forward(self, x):
        T = x.shape[1]
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = torch.einsum("bqd,bkd->bqk", q, k) * self.head_size ** -0.5
        scores = torch.where(self.mask[:T, :T].bool(), scores, torch.tensor(-1e9))
        e = (scores - scores.amax(-1, keepdim=True)).exp()
        return torch.einsum("bqk,bkd->bqd", self.dropout(e / e.sum(-1, keepdim=True)), v)


class TriuHead(nn.Module):
    """A triu boolean buffer of the future, values registered first, F.dropout with training=self.training."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("future", torch.triu(torch.ones(block_size, block_size, dtype=torch.bool), 1))
        self.p = dropout

    def forward(self, x):
        B, T, C = x.shape
        scores = self.query(x) @ self.key(x).mT / self.key.weight.shape[0] ** 0.5
        weights = torch.softmax(scores.masked_fill(self.future[:T, :T], -math.inf), dim=-1)
        return F.dropout(weights, self.p, training=self.training) @ self.value(x)


# ---------------------------------------------------------------- MultiHeadAttention


class Multi(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0, head=Head):
        super().__init__()
        self.heads = nn.ModuleList([head(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head)])
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))


def multi_bug(init=None, forward=None, head=Head):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        Multi.__init__(self, n_embd, n_head, block_size, dropout, head)
        if init:
            init(self, n_embd, n_head, block_size, dropout)
    return type("StudentMulti", (Multi,), {"__init__": __init__, **({"forward": forward} if forward else {})})


def heads_of(size_of, dropout_of=lambda d: d):
    def init(self, n_embd, n_head, block_size, dropout):
        self.heads = nn.ModuleList(Head(n_embd, size_of(n_embd, n_head), block_size, dropout_of(dropout))
                                   for _ in range(n_head))
    return init


class PlainListMulti(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.heads = [Head(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head)]
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)))


def interleaved(self, x):
    out = torch.stack([h(x) for h in self.heads], dim=-1)
    return self.dropout(self.proj(out.reshape(*out.shape[:2], -1)))


class NoBiasProjectionMulti(Multi):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout)
        self.proj = nn.Linear(n_embd, n_embd, bias=False)


class EightBlockMulti(Multi):
    """Heads built with the notebook's block_size 8."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, 8, dropout)


class FourHeadsMulti(Multi):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, 4, block_size, dropout)


def joined_over_time(self, x):
    B, T, C = x.shape
    return self.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=1).reshape(B, T, C)))


MULTI_BUGS = [
    ("apply the output projection", multi_bug(forward=lambda self, x: self.dropout(torch.cat([h(x) for h in self.heads], -1)))),
    ("the output gets no dropout", multi_bug(forward=lambda self, x: self.proj(torch.cat([h(x) for h in self.heads], -1)))),
    ("about \\d+% of the output entries|before the projection|after the output projection",
     multi_bug(forward=lambda self, x: self.proj(self.dropout(torch.cat([h(x) for h in self.heads], -1))))),
    ("concatenated in the order", multi_bug(forward=lambda self, x: self.dropout(self.proj(torch.cat(
        [h(x) for h in self.heads[::-1]], -1))))),
    ("interleaved channel by channel", multi_bug(forward=interleaved)),
    ("found the weights of only 1 head", multi_bug(init=lambda self, n_embd, n_head, block_size, dropout: setattr(
        self, "heads", nn.ModuleList([self.heads[0]] * n_head)))),
    ("fixed to the notebook's sizes|the head size is hard-coded", multi_bug(init=heads_of(lambda n_embd, n_head: n_embd // 4))),
    ("the attention weights get no dropout|heads", multi_bug(init=heads_of(lambda e, h: e // h, lambda d: 0.0))),
    ("never a fixed probability", multi_bug(init=lambda self, n_embd, n_head, block_size, dropout: setattr(
        self, "dropout", nn.Dropout(0.1)))),
    ("dropout is still active", multi_bug(forward=lambda self, x: F.dropout(self.proj(torch.cat(
        [h(x) for h in self.heads], -1)), self.dropout.p))),
    ("queries and keys are swapped", multi_bug(head=head_bug(
        scores=lambda self, q, k: k @ q.transpose(-2, -1) / math.sqrt(self.head_size)))),
    ("not scaled", multi_bug(head=head_bug(scores=lambda self, q, k: q @ k.transpose(-2, -1)))),
    ("a plain Python list", PlainListMulti),
    ("the output projection has no bias", NoBiasProjectionMulti),
    ("heads.0.mask has shape \\(8, 8\\), expected .*: the mask's size is hard-coded", EightBlockMulti),
    ("the module has 4 heads of size \\d+ .*but n_head = \\d+: the head count is hard-coded|the head count or the "
     "head size is hard-coded", FourHeadsMulti),
    ("inplace=True\\) overwrites the softmax's output", multi_bug(head=InPlaceDropoutHead)),
    ("does a head return a tuple", multi_bug(head=TupleHead)),
    ("joined along the time axis", multi_bug(forward=joined_over_time)),
]


class EinsumMulti(nn.Module):
    """All heads' weights as raw (C, C) parameters (used as x @ W), split into heads by einsum; no AttentionHead."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.n_head = n_head
        self.w_q, self.w_k, self.w_v = (nn.Parameter(torch.randn(n_embd, n_embd) * 0.2) for _ in range(3))
        self.proj = nn.Linear(n_embd, n_embd)
        self.attn_drop, self.out_drop = nn.Dropout(dropout), nn.Dropout(dropout)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)).bool())

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (torch.einsum("btc,hcd->bhtd", x, w.view(C, self.n_head, -1).transpose(0, 1))
                   for w in (self.w_q, self.w_k, self.w_v))
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k) / math.sqrt(q.shape[-1])
        weights = self.attn_drop(scores.masked_fill(~self.mask[:T, :T], NEG_INF).softmax(-1))
        out = torch.einsum("bhqk,bhkd->bqhd", weights, v).reshape(B, T, C)
        return self.out_drop(self.proj(out))


class SequentialOutMulti(Multi):
    """The projection and its dropout in an nn.Sequential, the heads' outputs joined with torch.concat."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout, head=TriuHead)
        self.out = nn.Sequential(nn.Linear(n_embd, n_embd), nn.Dropout(dropout))
        del self.proj, self.dropout

    def forward(self, x):
        return self.out(torch.concat([head(x) for head in self.heads], dim=2))


# ---------------------------------------------------------------- cross-attention


def cross(S1, S2, W_Q, W_K, W_V):
    return torch.softmax((S1 @ W_Q) @ (S2 @ W_K).T / math.sqrt(W_K.shape[1]), dim=-1) @ (S2 @ W_V)


def cross_bug(scores=None, softmax=None, values=None):
    def function(S1, S2, W_Q, W_K, W_V):
        Q, K, V = S1 @ W_Q, S2 @ W_K, (values(S1, S2, W_K, W_V) if values else S2 @ W_V)
        s = scores(Q, K, W_Q, W_K, W_V, S1) if scores else Q @ K.T / math.sqrt(W_K.shape[1])
        return (softmax(s) if softmax else torch.softmax(s, dim=-1)) @ V
    return function


CROSS_BUGS = [
    ("not scaled", cross_bug(scores=lambda Q, K, *_: Q @ K.T)),
    ("divided by sqrt\\(d\\)", cross_bug(scores=lambda Q, K, W_Q, W_K, W_V, S1: Q @ K.T / math.sqrt(S1.shape[1]))),
    ("sqrt\\(d_v\\)", cross_bug(scores=lambda Q, K, W_Q, W_K, W_V, S1: Q @ K.T / math.sqrt(W_V.shape[1]))),
    ("divided by d_k", cross_bug(scores=lambda Q, K, W_Q, W_K, W_V, S1: Q @ K.T / W_K.shape[1])),
    ("divided by a fixed sqrt\\(2\\), the worked example's", cross_bug(scores=lambda Q, K, *_: Q @ K.T / math.sqrt(2))),
    ("wrong axis", cross_bug(softmax=lambda s: torch.softmax(s, dim=0))),
    ("not finite", cross_bug(softmax=lambda s: s.exp() / s.exp().sum(-1, keepdim=True))),
    ("causal mask", cross_bug(scores=lambda Q, K, W_Q, W_K, W_V, S1: (Q @ K.T / math.sqrt(W_K.shape[1])).masked_fill(
        torch.ones(Q.shape[0], K.shape[0]).tril() == 0, NEG_INF))),
    ("values|S2 @ W_V", cross_bug(values=lambda S1, S2, W_K, W_V: (S1 @ W_V)[:1].expand(S2.shape[0], -1))),
    ("values|S2 @ W_V", cross_bug(values=lambda S1, S2, W_K, W_V: S2 @ W_K if W_K.shape == W_V.shape else S2 @ W_V * 2)),
    ("one row per key|queries", lambda S1, S2, Q, K, V: torch.softmax((S2 @ Q) @ (S1 @ K).T / math.sqrt(K.shape[1]), -1) @ (S1 @ V)),
    ("should have shape \\(n1, d_v\\)", lambda S1, S2, Q, K, V: torch.softmax((S1 @ Q) @ (S2 @ K).T / math.sqrt(K.shape[1]), -1)[:, :V.shape[1]]),
    ("returns a NumPy array", lambda *matrices: cross(*matrices).numpy()),
    ("returns torch.float64 for float32 inputs", lambda *matrices: cross(*(m.double() for m in matrices))),
    ("half precision", cross_bug(softmax=lambda s: torch.softmax(s.half(), dim=-1).float())),
    ("changes its argument\\(s\\) \\['S1'\\] in place", lambda S1, *rest: (cross(S1, *rest), S1.mul_(2))[0]),
    ("one torch tensor of shape .*, got a tuple", lambda *matrices: (cross(*matrices), None)),
    ("divided by sqrt\\(n1\\), the number of queries",
     cross_bug(scores=lambda Q, K, W_Q, W_K, W_V, S1: Q @ K.T / math.sqrt(S1.shape[0]))),
    ("divided by sqrt\\(n2\\), the number of keys",
     cross_bug(scores=lambda Q, K, *_: Q @ K.T / math.sqrt(K.shape[0]))),
    ("one query .* has shape \\(\\d+,\\), expected \\(n1, d_v\\) = \\(1, \\d+\\): a dimension of size 1 was dropped",
     lambda *matrices: cross(*matrices).squeeze()),
    ("returns torch.float32 for float64 inputs: expected torch.float64",
     lambda *matrices: cross(*(m.float() for m in matrices))),
    ("copied from the notebook's printed output \\(a hard-coded tensor\\)",  # 03's printed worked example
     lambda *matrices: torch.tensor([[0.3543, 0.9121, 0.7337, 2.0], [1.5093, 0.3272, 0.1636, 2.0]])),
    ("raised RuntimeError: mat1 and mat2 shapes cannot be multiplied.*does K or V come from S1",
     lambda S1, S2, W_Q, W_K, W_V: torch.softmax((S1 @ W_Q) @ (S1 @ W_K).T / math.sqrt(W_K.shape[1]), -1) @ (S2 @ W_V)),
    ("raised RuntimeError: mat1 and mat2 shapes cannot be multiplied.*does K or V come from S1",
     lambda S1, S2, W_Q, W_K, W_V: torch.softmax((S1 @ W_Q) @ (S2 @ W_K).T / math.sqrt(W_K.shape[1]), -1) @ (S1 @ W_V)),
]


def cross_transposed(S1, S2, W_Q, W_K, W_V):
    """Scores computed key-major, softmaxed over the keys (dim 0 there), transposed back."""
    return F.softmax((S2 @ W_K) @ (S1 @ W_Q).T / W_K.size(1) ** 0.5, dim=0).T @ (S2 @ W_V)


def cross_batched(S1, S2, W_Q, W_K, W_V):
    """A batch dimension added and removed; matmul and mT."""
    Q, K, V = (S.unsqueeze(0) @ W for S, W in ((S1, W_Q), (S2, W_K), (S2, W_V)))
    return torch.matmul(torch.softmax(Q @ K.mT * W_K.shape[-1] ** -0.5, dim=-1), V).squeeze(0)


def cross_float64_inside(S1, S2, W_Q, W_K, W_V):
    """Computed in float64, returned in the inputs' dtype."""
    return cross(*(m.double() for m in (S1, S2, W_Q, W_K, W_V))).to(S1.dtype)


def cross_logsumexp(S1, S2, W_Q, W_K, W_V):
    scores = torch.einsum("id,jd->ij", S1 @ W_Q, S2 @ W_K) / math.sqrt(W_K.shape[1])
    return (scores - scores.logsumexp(1, keepdim=True)).exp() @ (S2 @ W_V)


# ---------------------------------------------------------------- CausalSelfAttention


class Causal(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        size = config.block_size
        self.register_buffer("bias", torch.tril(torch.ones(size, size)).view(1, 1, size, size))

    def split(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]

    def attend(self, q, k, v):
        T = q.size(-2)
        att = q @ k.transpose(-2, -1) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, NEG_INF), dim=-1)
        return self.attn_dropout(att) @ v

    def merge(self, y):
        B, nh, T, hs = y.shape
        return y.transpose(1, 2).contiguous().view(B, T, nh * hs)

    def forward(self, x):
        return self.resid_dropout(self.c_proj(self.merge(self.attend(*self.split(x)))))


def causal_bug(**methods):
    return type("StudentCausal", (Causal,), methods)


def split_without_transpose(self, x):
    B, T, C = x.shape
    return [t.reshape(B, self.n_head, T, C // self.n_head) for t in self.c_attn(x).split(C, dim=2)]


def split_keys_first(self, x):
    B, T, C = x.shape
    k, q, v = self.c_attn(x).split(C, dim=2)
    return [t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v)]


def split_four_heads(self, x):
    B, T, C = x.shape
    return [t.view(B, T, 4, C // 4).transpose(1, 2) for t in self.c_attn(x).split(C, dim=2)]


def split_interleaved(self, x):
    B, T, C = x.shape
    qkv = self.c_attn(x).view(B, T, self.n_head, 3 * (C // self.n_head)).transpose(1, 2)
    return list(qkv.chunk(3, dim=-1))


def attend_with(scores=None, weights=None, mask_full=False):
    def attend(self, q, k, v):
        T = q.size(-2)
        att = scores(self, q, k) if scores else q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))
        mask = self.bias if mask_full else self.bias[:, :, :T, :T]
        att = att.masked_fill(mask == 0, NEG_INF)
        return (weights(self, att) if weights else self.attn_dropout(F.softmax(att, dim=-1))) @ v
    return attend


def causal_init(change):
    def __init__(self, config):
        Causal.__init__(self, config)
        change(self, config)
    return __init__


def merge_heads_last(self, y):
    B, nh, T, hs = y.shape
    return y.permute(0, 2, 3, 1).reshape(B, T, nh * hs)


def attend_fused(self, q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                          dropout_p=self.attn_dropout.p if self.training else 0.0)


def attend_fused_imported(self, q, k, v):
    """The kernel imported by name, out of reach of a patched F.scaled_dot_product_attention."""
    return scaled_dot_product_attention(q, k, v, is_causal=True,
                                        dropout_p=self.attn_dropout.p if self.training else 0.0)


CAUSAL_BUGS = [
    ("without the transpose", causal_bug(split=split_without_transpose)),
    ("merged with .view\\(B, T, C\\) straight from", causal_bug(merge=lambda self, y: y.reshape(
        y.shape[0], y.shape[2], -1))),
    ("queries and keys are swapped", causal_bug(split=split_keys_first)),
    ("before the softmax", causal_bug(attend=attend_with(weights=lambda self, s: F.softmax(self.attn_dropout(s), -1)))),
    ("the attention weights get no dropout|training mode gives the same output as eval mode",
     causal_bug(attend=attend_with(weights=lambda self, s: F.softmax(s, -1)))),
    ("training mode gives the same output|the output gets no dropout",
     causal_bug(forward=lambda self, x: self.c_proj(self.merge(self.attend(*self.split(x)))))),
    ("about \\d+% of the output entries|after the output projection", causal_bug(
        forward=lambda self, x: self.c_proj(self.resid_dropout(self.merge(self.attend(*self.split(x))))))),
    ("never a fixed probability", causal_bug(__init__=causal_init(
        lambda self, c: setattr(self, "attn_dropout", nn.Dropout(0.1))))),
    ("divided by sqrt\\(n_embd\\)|sqrt\\(head_size\\)", causal_bug(attend=attend_with(
        scores=lambda self, q, k: q @ k.transpose(-2, -1) / math.sqrt(q.size(-1) * self.n_head)))),
    ("not finite", causal_bug(attend=attend_with(weights=lambda self, s: self.attn_dropout(
        s.exp() / s.exp().sum(-1, keepdim=True))))),
    ("mask|\\[:T, :T\\]", causal_bug(attend=attend_with(mask_full=True))),
    ("softmax runs over the wrong axis", causal_bug(attend=attend_with(
        weights=lambda self, s: self.attn_dropout(F.softmax(s, dim=-2))))),
    ("dropout is still active", causal_bug(attend=attend_with(
        weights=lambda self, s: F.dropout(F.softmax(s, dim=-1), self.attn_dropout.p)))),
    ("computes attention with 4 head|splits the channels into 4 heads", causal_bug(split=split_four_heads)),
    ("another layout than \\[all queries", causal_bug(split=split_interleaved)),
    ("they use attn_pdrop|belongs to", causal_bug(__init__=causal_init(lambda self, c: (
        setattr(self, "attn_dropout", nn.Dropout(c.resid_pdrop)), setattr(self, "resid_dropout", nn.Dropout(c.attn_pdrop)))))),
    ("c_attn = nn.Linear\\(\\d+, \\d+, bias=False\\) has no bias", causal_bug(__init__=causal_init(
        lambda self, c: setattr(self, "c_attn", nn.Linear(c.n_embd, 3 * c.n_embd, bias=False))))),
    ("bias has shape \\(1, 1, 32, 32\\), expected .*: the mask's size is hard-coded", causal_bug(
        __init__=causal_init(lambda self, c: self.register_buffer("bias", torch.ones(32, 32).tril().view(1, 1, 32, 32))))),
    ("is a plain tensor attribute, not a registered buffer", causal_bug(__init__=causal_init(
        lambda self, c: (delattr(self, "bias"), setattr(self, "bias", torch.ones(1, 1, c.block_size, c.block_size).tril()))))),
    ("calls F.scaled_dot_product_attention.*write the attention yourself", causal_bug(attend=attend_fused)),
    ("calls F.scaled_dot_product_attention.*write the attention yourself", causal_bug(attend=attend_fused_imported)),
    ("merged channel by channel", causal_bug(merge=merge_heads_last)),
    ("returns float64 for a float32 x", causal_bug(forward=lambda self, x: Causal.forward(self, x).double())),
    ("batch of one, expected \\(1, \\d+, \\d+\\): the batch axis was dropped",
     causal_bug(forward=lambda self, x: Causal.forward(self, x).squeeze())),
    ("dropout is applied to the queries or keys", causal_bug(attend=lambda self, q, k, v: attend_with(
        weights=lambda self, s: F.softmax(s, dim=-1))(self, self.attn_dropout(q), k, v))),
]


class ChunkCausal(Causal):
    """chunk instead of split, reshape instead of contiguous().view, a boolean buffer and masked_fill(-1e4 * 1e5)."""

    def split(self, x):
        B, T, C = x.shape
        return [t.reshape(B, T, self.n_head, -1).permute(0, 2, 1, 3) for t in self.c_attn(x).chunk(3, dim=-1)]

    def merge(self, y):
        return y.permute(0, 2, 1, 3).reshape(y.shape[0], y.shape[2], -1)


class EinsumCausal(Causal):
    """einsum for both products and an additive -inf mask."""

    def attend(self, q, k, v):
        T = q.size(-2)
        additive = torch.zeros(T, T).masked_fill(self.bias[0, 0, :T, :T] == 0, NEG_INF)
        att = torch.einsum("bhid,bhjd->bhij", q, k) / math.sqrt(q.shape[-1]) + additive
        return torch.einsum("bhij,bhjd->bhid", self.attn_dropout(att.softmax(dim=-1)), v)


class Float64InsideCausal(Causal):
    """The attention computed in float64, the merged heads cast back to float32."""

    def attend(self, q, k, v):
        return Causal.attend(self, q.double(), k.double(), v.double()).float()


class SquareMaskCausal(Causal):
    """A 2-D (block_size, block_size) boolean buffer, cut to (T, T): it broadcasts over batch and heads."""

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("bias", torch.ones(config.block_size, config.block_size, dtype=torch.bool).tril())

    def attend(self, q, k, v):
        T = q.size(-2)
        att = (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))).masked_fill(~self.bias[:T, :T], NEG_INF)
        return self.attn_dropout(F.softmax(att, dim=-1)) @ v


class QKVLayersCausal(nn.Module):
    """Three separate (C, C) projections, registered v, k, q, dropout via F.dropout(training=self.training)."""

    def __init__(self, config):
        super().__init__()
        C = config.n_embd
        self.v, self.k, self.q = nn.Linear(C, C), nn.Linear(C, C), nn.Linear(C, C)
        self.out = nn.Linear(C, C)
        self.n_head, self.pa, self.pr = config.n_head, config.attn_pdrop, config.resid_pdrop

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (layer(x).view(B, T, self.n_head, -1).transpose(1, 2) for layer in (self.q, self.k, self.v))
        future = torch.ones(T, T, dtype=torch.bool).triu(1)
        att = (q @ k.transpose(-1, -2) / math.sqrt(C // self.n_head)).masked_fill(future, -1e9).softmax(-1)
        y = F.dropout(att, self.pa, self.training) @ v
        return F.dropout(self.out(y.transpose(1, 2).reshape(B, T, C)), self.pr, self.training)


CHECKS = {check.exercise: check for check in (checks.check_attention_head, checks.check_multi_head_attention,
                                              checks.check_cross_attention, checks.check_causal_self_attention)}
STUDENT_BUGS = {"attention_head": HEAD_BUGS, "multi_head_attention": MULTI_BUGS, "cross_attention": CROSS_BUGS,
                "causal_self_attention": CAUSAL_BUGS}
MORE_VALID = {"attention_head": [Head, SDPAHead, WhereHead, TriuHead, QueryLoopHead, SquareMaskHead, FinfoMinHead],
              "multi_head_attention": [Multi, EinsumMulti, SequentialOutMulti,
                                       type("SDPAHeadsMulti", (Multi,), {"__init__": lambda self, e, h, b, d=0.0:
                                                                         Multi.__init__(self, e, h, b, d, SDPAHead)})],
              "cross_attention": [cross, cross_transposed, cross_batched, cross_logsumexp, cross_float64_inside],
              "causal_self_attention": [Causal, ChunkCausal, EinsumCausal, QKVLayersCausal, Float64InsideCausal,
                                        SquareMaskCausal]}

(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing, test_every_exercise_has_a_broad_set) = student_tests(
    CHECKS, STUDENT_BUGS, MORE_VALID, secret_seeds=(1, 2))  # two secret seeds keep the run short


# ---------------------------------------------------------------- the judge trusts only outputs for its own inputs


def forged(results, output_of):
    """probe_all's results with each values test's output replaced and all-zero weights claimed beside it."""
    out = []
    for name, data in results:
        if isinstance(data, dict) and "layout" in data:
            zeros = [np.zeros(shape, dtype=np.float32) for _, shape, _ in data["layout"]]
            data = {**data, "matrices": zeros, "weights": zeros,
                    "result": {"output": output_of(data["result"]["output"]), "error": None}}
        out.append((name, data))
    return out


@pytest.mark.parametrize("check, answer", [(checks.check_attention_head, Head), (checks.check_multi_head_attention, Multi),
                                           (checks.check_causal_self_attention, Causal)])
def test_weights_claimed_by_the_sandbox_do_not_change_the_verdict(check, answer):
    """Zero weights with a zero output would be consistent attention; the judge redraws the weights from the seed,
    so the claim is ignored: the forged zeros fail, the honest output still passes beside the same claim."""
    for seed in (0, 3):
        results = check.probe_all((answer,), seed)
        values = [o for o in check.judge(forged(results, np.zeros_like), seed) if "layout" in dict(results)[o.test]]
        assert values and not any(o.passed for o in values), seed
        assert all(o.passed for o in check.judge(forged(results, lambda output: output), seed)), seed


# ---------------------------------------------------------------- each module's messages speak its own vocabulary


@pytest.mark.parametrize("check, answer, foreign", [
    (checks.check_multi_head_attention, multi_bug(forward=joined_over_time), ("transpose(1, 2)", ".view(")),
    (checks.check_multi_head_attention, multi_bug(head=TupleHead), ("transpose(1, 2)", ".view(")),
    (checks.check_causal_self_attention, causal_bug(merge=merge_heads_last), ("self.heads", "torch.stack")),
])
def test_messages_name_only_what_the_module_has(check, answer, foreign):
    with pytest.raises(AssertionError) as raised:
        check(answer)
    assert not [word for word in foreign if word in str(raised.value)], str(raised.value)


def test_a_wrong_output_message_shows_numbers_that_differ():
    """A small difference (a finite mask value no replay names) is shown where it is largest, with enough digits."""
    with pytest.raises(AssertionError, match=r"should be (-?[\d.e-]+) .*got (-?[\d.e-]+)") as raised:
        checks.check_attention_head(head_bug(masked=lambda self, s, T: s.masked_fill(self.mask[:T, :T] == 0, -7.0)))
    expected, got = re.search(r"should be (-?[\d.e-]+) .*got (-?[\d.e-]+)", str(raised.value)).groups()
    assert expected != got
