"""The notebook 03 checks: they accept any valid layout of the weights and name each plausible mistake."""

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from check_family import answer_like_code, mistake_tests, named_under_secret_seeds
from coursekit import attention
from coursekit import checks
from coursekit.grading import references

CHECKS_DIR = Path(checks.__file__).parent

# ---------------------------------------------------------------- single heads: valid alternatives


class FusedEinsumHead(nn.Module):
    """One fused projection, einsum, and an additive -inf matrix instead of masked_fill."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.qkv = nn.Linear(n_embd, 3 * head_size, bias=False)
        self.drop = nn.Dropout(dropout)
        self.register_buffer("bias", torch.full((block_size, block_size), float("-inf")).triu(1))

    def forward(self, x):
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = torch.einsum("btd,bsd->bts", q, k) * q.size(-1) ** -0.5 + self.bias[: x.size(1), : x.size(1)]
        return self.drop(F.softmax(scores, dim=2)) @ v


class RawParameterHead(nn.Module):
    """Raw matrices used as x @ W, registered value-first, mask built on the fly."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.W_V = nn.Parameter(torch.randn(n_embd, head_size) / n_embd ** 0.5)
        self.W_K = nn.Parameter(torch.randn(n_embd, head_size) / n_embd ** 0.5)
        self.W_Q = nn.Parameter(torch.randn(n_embd, head_size) / n_embd ** 0.5)
        self.dropout = dropout

    def forward(self, x):
        T = x.size(1)
        scores = (x @ self.W_Q) @ (x @ self.W_K).transpose(1, 2) / math.sqrt(self.W_K.size(1))
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        weights = F.dropout(scores.masked_fill(future, -math.inf).softmax(-1), self.dropout, training=self.training)
        return weights @ (x @ self.W_V)


@pytest.mark.parametrize("head_class", [attention.AttentionHead, FusedEinsumHead, RawParameterHead])
def test_attention_head_accepts_valid_implementations(head_class):
    checks.check_attention_head(head_class)


# ---------------------------------------------------------------- single heads: mistakes


def buggy_head(scores_to_weights=None, scale=None, dropout_always=False, cut_mask=True):
    """The reference head with one step replaced."""

    class Buggy(attention.AttentionHead):
        def forward(self, x):
            T = x.size(1)
            q, k, v = self.query(x), self.key(x), self.value(x)
            scores = q @ k.transpose(-2, -1) * (scale(k.size(-1)) if scale else k.size(-1) ** -0.5)
            mask = self.mask[:T, :T] if cut_mask else self.mask
            if scores_to_weights:
                weights = scores_to_weights(scores, mask)
            else:
                weights = scores.masked_fill(~mask, float("-inf")).softmax(-1)
            if dropout_always:
                return F.dropout(weights, self.dropout.p) @ v  # F.dropout defaults to training=True
            return self.dropout(weights) @ v
    return Buggy


class NoDropoutHead(attention.AttentionHead):
    def forward(self, x):
        return attention.attention_weights(self.query(x), self.key(x)) @ self.value(x)


HEAD_BUGS = {
    "not scaled": buggy_head(scale=lambda d: 1.0),
    "divided by head_size": buggy_head(scale=lambda d: 1.0 / d),
    "divided by sqrt\\(n_embd\\)": buggy_head(scale=lambda d: 12 ** -0.5),
    "softmax runs over the wrong axis": buggy_head(lambda s, m: s.masked_fill(~m, float("-inf")).softmax(dim=1)),
    "applied after the softmax": buggy_head(lambda s, m: s.softmax(-1).masked_fill(~m, 0.0)),
    "instead of -inf": buggy_head(lambda s, m: s.masked_fill(~m, 0.0).softmax(-1)),
    "there is no causal mask": buggy_head(lambda s, m: s.softmax(-1)),
    "off by one": buggy_head(lambda s, m: s.masked_fill(~torch.ones_like(m).tril(1), float("-inf")).softmax(-1)),
    "contains NaN": buggy_head(lambda s, m: s.masked_fill(~torch.ones_like(m).tril(-1), float("-inf")).softmax(-1)),
    "mask\\[:T, :T\\]": buggy_head(cut_mask=False),
    "dropout is still active": buggy_head(dropout_always=True),
    "same output as eval mode": NoDropoutHead,
}


class MaskParameterHead(attention.AttentionHead):
    """The mask registered as a trainable parameter instead of a buffer."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        del self.mask
        self.mask = nn.Parameter(torch.tril(torch.ones(block_size, block_size)))

    def forward(self, x):
        T = x.size(1)
        scores = self.query(x) @ self.key(x).transpose(-2, -1) * self.key.out_features ** -0.5
        return self.dropout(scores.masked_fill(self.mask[:T, :T] == 0, float("-inf")).softmax(-1)) @ self.value(x)


HEAD_BUGS["an nn.Parameter, so the optimiser would train it"] = MaskParameterHead


def test_a_leak_the_weights_cannot_explain_is_caught_by_changing_the_future():
    """A structure the judge cannot read (scores from a hidden extra matrix) still fails the black-box leak test."""
    class Leaky(attention.AttentionHead):
        def forward(self, x):
            return attention.AttentionHead.forward(self, x) + x.mean(dim=1, keepdim=True)[..., :4]

    outcomes = checks.check_attention_head.judge(checks.check_attention_head.probe_all((Leaky,)))
    leak = next(o for o in outcomes if o.test.startswith("changing future tokens"))
    assert not leak.passed and "the past can see the future" in leak.message


# ---------------------------------------------------------------- several heads


class BatchedMultiHead(nn.Module):
    """Three (C, C) projections, the output projection registered first, a batched matmul over heads."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.out = nn.Linear(n_embd, n_embd)
        self.q, self.k, self.v = (nn.Linear(n_embd, n_embd, bias=False) for _ in range(3))
        self.n_head = n_head
        self.attn_drop, self.out_drop = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(self, x, merge_without_transpose=False, scale_by_n_embd=False):
        B, T, C = x.shape
        q, k, v = (layer(x).view(B, T, self.n_head, -1).transpose(1, 2) for layer in (self.q, self.k, self.v))
        scale = C if scale_by_n_embd else k.size(-1)
        scores = q @ k.transpose(-2, -1) / math.sqrt(scale)
        weights = scores.masked_fill(torch.ones(T, T).tril() == 0, float("-inf")).softmax(-1)
        y = self.attn_drop(weights) @ v  # (B, nh, T, hs)
        y = y.reshape(B, T, C) if merge_without_transpose else y.transpose(1, 2).reshape(B, T, C)
        return self.out_drop(self.out(y))


class FusedMultiHead(nn.Module):
    """The CausalSelfAttention layout behind the MultiHeadAttention signature."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        config = attention.AttentionConfig(n_embd, n_head, block_size, dropout, dropout)
        self.inner = attention.CausalSelfAttention(config)

    def forward(self, x):
        return self.inner(x)


@pytest.mark.parametrize("module_class", [attention.MultiHeadAttention, BatchedMultiHead, FusedMultiHead])
def test_multi_head_attention_accepts_valid_implementations(module_class):
    checks.check_multi_head_attention(module_class)


def multi_head_with(forward):
    return type("Buggy", (attention.MultiHeadAttention,), {"forward": forward})


MULTI_BUGS = {
    "concatenated in the order \\[3, 2, 1, 0\\]": multi_head_with(
        lambda self, x: self.dropout(self.proj(torch.cat([h(x) for h in reversed(self.heads)], dim=-1)))),
    "apply the output projection": multi_head_with(lambda self, x: torch.cat([h(x) for h in self.heads], dim=-1)),
    "should return shape \\(2, 6, 24\\)": multi_head_with(
        lambda self, x: torch.cat([h(x) for h in self.heads], dim=1)),
    "divided by sqrt\\(n_embd\\)": type("Buggy", (BatchedMultiHead,), {
        "forward": lambda self, x: BatchedMultiHead.forward(self, x, scale_by_n_embd=True)}),
    "mixes positions and heads": type("Buggy", (BatchedMultiHead,), {
        "forward": lambda self, x: BatchedMultiHead.forward(self, x, merge_without_transpose=True)}),
    "dropout is still active": multi_head_with(
        lambda self, x: F.dropout(self.proj(torch.cat([h(x) for h in self.heads], dim=-1)), self.dropout.p)),
}


class PlainListMultiHead(nn.Module):
    """The heads in a plain Python list: PyTorch never sees their parameters."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.heads = [attention.AttentionHead(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head)]
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([head(x) for head in self.heads], dim=-1)))


class OneHeadRepeated(attention.MultiHeadAttention):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout)
        self.heads = nn.ModuleList([self.heads[0]] * n_head)


class FullSizeHeads(attention.MultiHeadAttention):
    """Every head of size n_embd instead of n_embd // n_head: the concatenation is n_head times too wide."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout)
        self.heads = nn.ModuleList(attention.AttentionHead(n_embd, n_embd, block_size, dropout) for _ in range(n_head))


MULTI_BUGS.update({
    "an nn.ModuleList \\(a plain Python list hides them": PlainListMultiHead,
    "found the weights of only 1 head\\(s\\), not 4": OneHeadRepeated,
    "each head must have head_size = n_embd // n_head = 6": FullSizeHeads,
})


# ---------------------------------------------------------------- all heads in one matmul


class SDPACausalSelfAttention(nn.Module):
    """PyTorch's fused kernel, separate q/k/v layers, dropout passed to the kernel only while training: the same
    function, but the exercise asks for the attention written out (the notebook compares it with this kernel)."""

    def __init__(self, config):
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(config.n_embd, config.n_embd) for _ in range(3))
        self.projection = nn.Linear(config.n_embd, config.n_embd)
        self.config = config
        self.residual_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        B, T, C = x.shape
        heads = self.config.n_head
        q, k, v = (f(x).view(B, T, heads, C // heads).transpose(1, 2) for f in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True,
                                           dropout_p=self.config.attn_pdrop if self.training else 0.0)
        return self.residual_dropout(self.projection(y.transpose(1, 2).reshape(B, T, C)))


class HeadListCausalSelfAttention(nn.Module):
    """A ModuleList of single heads behind the config signature (valid, if not batched)."""

    def __init__(self, config):
        super().__init__()
        size = config.n_embd // config.n_head
        self.heads = nn.ModuleList(attention.AttentionHead(config.n_embd, size, config.block_size, config.attn_pdrop)
                                   for _ in range(config.n_head))
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        return self.resid_dropout(self.c_proj(torch.cat([head(x) for head in self.heads], dim=-1)))


@pytest.mark.parametrize("module_class", [attention.CausalSelfAttention, HeadListCausalSelfAttention])
def test_causal_self_attention_accepts_valid_implementations(module_class):
    checks.check_causal_self_attention(module_class)


class FourHeadsAlways(attention.CausalSelfAttention):
    def __init__(self, config):
        super().__init__(config)
        self.n_head = 4


class NoResidualDropout(attention.CausalSelfAttention):
    def __init__(self, config):
        super().__init__(config)
        self.resid_dropout = nn.Identity()


class DropoutBeforeProjection(attention.CausalSelfAttention):
    """Residual dropout on the merged heads instead of on the projected output."""

    def forward(self, x):
        B, T, C = x.shape
        projection, self.c_proj = self.c_proj, nn.Identity()
        merged = attention.CausalSelfAttention.forward(self, x)
        self.c_proj = projection
        return projection(merged)


class NoMaskCausalSelfAttention(SDPACausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        heads = self.config.n_head
        q, k, v = (f(x).view(B, T, heads, C // heads).transpose(1, 2) for f in (self.query, self.key, self.value))
        return self.projection(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(B, T, C))


class UnscaledCausalSelfAttention(SDPACausalSelfAttention):
    def forward(self, x):
        B, T, C = x.shape
        heads = self.config.n_head
        q, k, v = (f(x).view(B, T, heads, C // heads).transpose(1, 2) for f in (self.query, self.key, self.value))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=1.0)
        return self.projection(y.transpose(1, 2).reshape(B, T, C))


class KeysFirstSplit(attention.CausalSelfAttention):
    """c_attn's output read as [keys | queries | values]: the same function family, but not GPT-2's layout."""

    def forward(self, x):
        B, T, C = x.shape
        k, q, v = self.c_attn(x).split(C, dim=-1)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


class HeadsBeforePositions(attention.CausalSelfAttention):
    """view(B, n_head, T, hs) straight from (B, T, C): a stride error, not a mask problem."""

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = (t.view(B, self.n_head, T, C // self.n_head) for t in self.c_attn(x).split(C, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.c_proj(y.view(B, T, C))


CAUSAL_BUGS = {
    "queries and keys are swapped: the scores are k @ q": KeysFirstSplit,
    "view\\(B, T, 4, 6\\).transpose\\(1, 2\\)": HeadsBeforePositions,
    "computes attention with 4 head": FourHeadsAlways,
    "resid_pdrop = 0.4, training mode gives the same output": NoResidualDropout,
    "about 40% of the output entries": DropoutBeforeProjection,
    "there is no causal mask": NoMaskCausalSelfAttention,
    "not scaled": UnscaledCausalSelfAttention,
    "calls F.scaled_dot_product_attention, which this exercise asks you not to use.*write the attention yourself":
        SDPACausalSelfAttention,
}


def test_an_instance_instead_of_the_class_is_refused_with_what_was_expected():
    with pytest.raises(TypeError, match="the class CausalSelfAttention itself"):
        checks.check_causal_self_attention(attention.CausalSelfAttention(attention.AttentionConfig()))


def test_the_reference_matches_the_fused_kernel():
    torch.manual_seed(0)
    module = attention.CausalSelfAttention(attention.AttentionConfig(n_embd=32, n_head=4, block_size=16)).eval()
    x = torch.randn(3, 16, 32)
    assert torch.allclose(module(x), attention.sdpa_reference(module, x), atol=1e-6)


# ---------------------------------------------------------------- cross-attention


def cross_einsum(S1, S2, W_Q, W_K, W_V):
    scores = torch.einsum("id,jd->ij", S1 @ W_Q, S2 @ W_K) / W_K.shape[1] ** 0.5
    return torch.softmax(scores, dim=1) @ (S2 @ W_V)


def cross_sdpa(S1, S2, W_Q, W_K, W_V):
    return F.scaled_dot_product_attention((S1 @ W_Q)[None], (S2 @ W_K)[None], (S2 @ W_V)[None])[0]


@pytest.mark.parametrize("function", [attention.cross_attention, cross_einsum, cross_sdpa])
def test_cross_attention_accepts_valid_implementations(function):
    checks.check_cross_attention(function)


CROSS_BUGS = {
    "not scaled": lambda S1, S2, Q, K, V: torch.softmax((S1 @ Q) @ (S2 @ K).T, -1) @ (S2 @ V),
    "one row per key": lambda S1, S2, Q, K, V: torch.softmax((S2 @ Q) @ (S1 @ K).T / K.shape[1] ** 0.5, -1) @ (S1 @ V),
    "wrong axis": lambda S1, S2, Q, K, V: torch.softmax((S1 @ Q) @ (S2 @ K).T / K.shape[1] ** 0.5, 0) @ (S2 @ V),
    "sqrt\\(d_v\\)": lambda S1, S2, Q, K, V: torch.softmax((S1 @ Q) @ (S2 @ K).T / V.shape[1] ** 0.5, -1) @ (S2 @ V),
    "causal mask": lambda S1, S2, Q, K, V: torch.softmax(((S1 @ Q) @ (S2 @ K).T / K.shape[1] ** 0.5).masked_fill(
        torch.ones(len(S1), len(S2)).tril() == 0, float("-inf")), -1) @ (S2 @ V),
}


# ---------------------------------------------------------------- the grader's path, inputs unchanged, speed


@pytest.mark.parametrize("check, reference", [
    (checks.check_attention_head, attention.AttentionHead),
    (checks.check_multi_head_attention, attention.MultiHeadAttention),
    (checks.check_causal_self_attention, attention.CausalSelfAttention),
    (checks.check_cross_attention, attention.cross_attention),
])
def test_probe_all_then_judge_passes_the_references(check, reference):
    outcomes = check.judge(check.probe_all((reference,)))
    assert outcomes and all(outcome.passed for outcome in outcomes), [o for o in outcomes if not o.passed]


# ---------------------------------------------------------------- issue 12's named cases and more student mistakes


def head_forward(weights_of=None, dropout_at="weights", swap=False):
    """A head whose forward takes the reference's steps with one changed."""
    def forward(self, x):
        T = x.size(1)
        q, k, v = self.query(x), self.key(x), self.value(x)
        scores = (k @ q.transpose(-2, -1) if swap else q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))
        if dropout_at == "unmasked scores":
            scores = self.dropout(scores)
        scores = scores.masked_fill(self.mask[:T, :T] == 0, float("-inf"))
        if dropout_at == "scores":
            scores = self.dropout(scores)
        weights = weights_of(scores) if weights_of else scores.softmax(-1)
        if dropout_at == "output":
            return self.dropout(weights @ v)
        return self.dropout(weights) @ v
    return type("Buggy", (attention.AttentionHead,), {"forward": forward})


class BiasHead(attention.AttentionHead):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.query, self.key, self.value = (nn.Linear(n_embd, head_size) for _ in range(3))


class FixedDropoutHead(attention.AttentionHead):
    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__(n_embd, head_size, block_size, dropout)
        self.dropout = nn.Dropout(0.1)


def manual_softmax(scores):
    return scores.exp() / scores.exp().sum(-1, keepdim=True)


NAMED_HEAD_BUGS = {
    "before the softmax": head_forward(dropout_at="scores"),
    "scores before the softmax \\(a dropped": head_forward(dropout_at="unmasked scores"),
    "queries and keys are swapped": head_forward(swap=True),
    "head's output \\(weights @ v\\) instead of the attention weights": head_forward(dropout_at="output"),
    "the head has bias parameters": BiasHead,
    "never a fixed probability": FixedDropoutHead,
    "not finite": head_forward(weights_of=manual_softmax),
}


def test_a_max_subtracting_manual_softmax_is_valid():
    checks.check_attention_head(head_forward(
        weights_of=lambda s: manual_softmax(s - s.max(-1, keepdim=True).values)))


class NoOutputDropoutMulti(attention.MultiHeadAttention):
    def forward(self, x):
        return self.proj(torch.cat([head(x) for head in self.heads], dim=-1))


class FullSizeHeadsWideProjection(attention.MultiHeadAttention):
    """Full-size heads in an nn.ModuleList, the projection widened to fit: it runs, and is wrong."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout)
        self.heads = nn.ModuleList(attention.AttentionHead(n_embd, n_embd, block_size, dropout) for _ in range(n_head))
        self.proj = nn.Linear(n_head * n_embd, n_embd)


class SwappedHeadsMulti(attention.MultiHeadAttention):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__(n_embd, n_head, block_size, dropout)
        swapped = head_forward(swap=True)
        self.heads = nn.ModuleList(swapped(n_embd, n_embd // n_head, block_size, dropout) for _ in range(n_head))


NAMED_MULTI_BUGS = {
    "the output gets no dropout": NoOutputDropoutMulti,
    "every head has size n_embd": FullSizeHeadsWideProjection,
    "queries and keys are swapped": SwappedHeadsMulti,
}


def causal_forward(split_transpose=True, merge_transpose=True, drop_scores=False, exp=False, swap=False):
    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        hs = C // self.n_head
        if split_transpose:
            q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        else:
            q, k, v = (t.reshape(B, self.n_head, T, hs) for t in (q, k, v))
        scores = (k @ q.transpose(-2, -1) if swap else q @ k.transpose(-2, -1)) / math.sqrt(hs)
        scores = scores.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        if drop_scores:
            weights = F.softmax(self.attn_dropout(scores), dim=-1)
        else:
            weights = self.attn_dropout(manual_softmax(scores) if exp else F.softmax(scores, dim=-1))
        y = weights @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C) if merge_transpose else y.reshape(B, T, C)
        return self.resid_dropout(self.c_proj(y))
    return type("Buggy", (attention.CausalSelfAttention,), {"forward": forward})


class SwappedProbabilities(attention.CausalSelfAttention):
    def __init__(self, config):
        super().__init__(config)
        self.attn_dropout, self.resid_dropout = nn.Dropout(config.resid_pdrop), nn.Dropout(config.attn_pdrop)


NAMED_CAUSAL_BUGS = {
    "reshaped to \\(B, n_head, T, head_size\\) straight from \\(B, T, C\\) without the transpose":
        causal_forward(split_transpose=False),
    "merged with .view\\(B, T, C\\) straight from": causal_forward(merge_transpose=False),
    "before the softmax": causal_forward(drop_scores=True),
    "not finite": causal_forward(exp=True),
    "queries and keys are swapped": causal_forward(swap=True),
    "the two dropouts are swapped": SwappedProbabilities,
}


def test_cross_attention_without_the_maximum_overflows_on_large_scores():
    def manual(S1, S2, Q, K, V):
        return manual_softmax((S1 @ Q) @ (S2 @ K).T / K.shape[1] ** 0.5) @ (S2 @ V)
    with pytest.raises(AssertionError, match="not finite"):
        checks.check_cross_attention(manual)


# ---------------------------------------------------------------- secret grading inputs

VALID = [
    (checks.check_attention_head, [attention.AttentionHead, FusedEinsumHead, RawParameterHead]),
    (checks.check_multi_head_attention, [attention.MultiHeadAttention, BatchedMultiHead, FusedMultiHead]),
    (checks.check_causal_self_attention, [attention.CausalSelfAttention, HeadListCausalSelfAttention]),
    (checks.check_cross_attention, [attention.cross_attention, cross_einsum, cross_sdpa]),
]


def grade(check, answer, run_seed):
    return check.fraction(check.judge(check.probe_all((answer,), run_seed), run_seed))


@pytest.mark.parametrize("check, answers", VALID, ids=lambda v: getattr(v, "exercise", ""))
def test_valid_answers_pass_under_secret_seeds(check, answers):
    for answer in answers:
        for seed in (1, 2, 3):
            assert grade(check, answer, seed) == 1.0, (answer, seed)


class NotebookSizesHead(attention.AttentionHead):
    """Scales by sqrt(4), the notebook's head size: right in the notebook, wrong for any other head size."""

    def forward(self, x):
        T = x.size(1)
        scores = self.query(x) @ self.key(x).transpose(-2, -1) / 2.0
        return self.dropout(scores.masked_fill(self.mask[:T, :T] == 0, float("-inf")).softmax(-1)) @ self.value(x)


def test_sizes_hard_coded_to_the_notebook_fail_in_the_notebook_and_in_grading():
    with pytest.raises(AssertionError, match=r"another size|AttentionHead\(10, 5, 16\)"):
        checks.check_attention_head(NotebookSizesHead)
    assert max(grade(checks.check_attention_head, NotebookSizesHead, seed) for seed in (1, 2, 3)) < 0.5


def test_replaying_the_public_outputs_passes_public_but_fails_secret():
    """A fake that returns the reference's public outputs (matched by shape) instead of computing."""
    public = [got["value"] for _, got in checks.check_cross_attention.probe_all((attention.cross_attention,))]

    def replay(S1, S2, W_Q, W_K, W_V):
        return next((torch.from_numpy(output) for output in public
                     if output.shape == (S1.shape[0], W_V.shape[1])), torch.zeros(S1.shape[0], W_V.shape[1]))

    assert grade(checks.check_cross_attention, replay, 0) > 0.8
    assert max(grade(checks.check_cross_attention, replay, seed) for seed in (3, 4)) < 0.3


def wrong_everywhere_notebook():
    """Runs, and computes no attention: every exercise answered with a plausible shape-only stand-in."""
    class Head(nn.Module):
        def __init__(self, n_embd, head_size, block_size, dropout=0.0):
            super().__init__()
            self.value = nn.Linear(n_embd, head_size, bias=False)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.value(x))

    class Multi(nn.Module):
        def __init__(self, n_embd, n_head, block_size, dropout=0.0):
            super().__init__()
            self.proj = nn.Linear(n_embd, n_embd)
            self.dropout = nn.Dropout(dropout)

        def forward(self, x):
            return self.dropout(self.proj(x))

    class Causal(Multi):
        def __init__(self, config):
            super().__init__(config.n_embd, config.n_head, config.block_size, config.resid_pdrop)

    return [(checks.check_attention_head, Head), (checks.check_multi_head_attention, Multi),
            (checks.check_causal_self_attention, Causal),
            (checks.check_cross_attention, lambda S1, S2, Q, K, V: S1 @ Q[:, :1] * torch.ones(1, V.shape[1]))]


def test_a_wrong_everywhere_notebook_scores_at_most_5_percent():
    for seed in (0, 1):
        earned = [grade(check, answer, seed) for check, answer in wrong_everywhere_notebook()]
        assert sum(earned) / len(earned) <= 0.05, (seed, earned)


# ---------------------------------------------------------------- no answer where student code can reach it


FAMILY_03 = ["attention.py", "attention_probes.py", "attention_readings.py", "attention_judges.py",
             "attention_spec.py", "cross_attention.py", "probing.py"]


def test_the_checks_modules_hold_no_attention_code():
    """Every coursekit/checks module is in 03's sandbox: none of 03's may compute attention as the reference does."""
    sources = {name: (CHECKS_DIR / name).read_text(encoding="utf-8") for name in FAMILY_03}
    assert answer_like_code([attention.__file__], sources) == []


def test_the_answer_detector_finds_attention_code():
    handwritten = {"probe": "def weights(q, k):\n    return (q @ k.transpose(-2, -1) / math.sqrt(k.size(-1)))"
                            ".masked_fill(~mask, float('-inf')).softmax(dim=-1)"}
    assert len(answer_like_code([attention.__file__], handwritten)) >= 2


def test_the_replays_of_the_answers_stay_out_of_the_03_sandbox():
    assert "coursekit.judging.attention" in references.forbidden_modules("03_attention")


# ---------------------------------------------------------------- every buggy set: named, in public and secret runs

CHECKS = {check.exercise: check for check in (checks.check_attention_head, checks.check_multi_head_attention,
                                              checks.check_causal_self_attention, checks.check_cross_attention)}
NAMED = {"attention_head": NAMED_HEAD_BUGS, "multi_head_attention": NAMED_MULTI_BUGS,
         "causal_self_attention": NAMED_CAUSAL_BUGS}
BUGS = {"attention_head": {**HEAD_BUGS, **NAMED_HEAD_BUGS}, "multi_head_attention": {**MULTI_BUGS, **NAMED_MULTI_BUGS},
        "causal_self_attention": {**CAUSAL_BUGS, **NAMED_CAUSAL_BUGS}, "cross_attention": CROSS_BUGS}
test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too, _ = mistake_tests(CHECKS, BUGS)
test_issue_12s_mistakes_are_named_under_secret_seeds = named_under_secret_seeds(CHECKS, NAMED)


def test_no_two_buggy_sets_of_an_exercise_share_a_mistake():
    """BUGS merges the tables: a message regex in two of them would hide one of the bugs."""
    assert not set(CAUSAL_BUGS) & set(NAMED_CAUSAL_BUGS) and not set(HEAD_BUGS) & set(NAMED_HEAD_BUGS)
    assert not set(MULTI_BUGS) & set(NAMED_MULTI_BUGS)
