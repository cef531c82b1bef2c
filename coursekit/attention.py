"""Reference attention (notebook 03): one head, several heads, cross-attention, and all heads in one matmul.

Attention lets every position build its output from the values of the positions it may see, weighted by how well
its query matches their keys: softmax(q k^T / sqrt(head_size)) v. In a language model a position may see only itself
and the past (the causal mask), because at generation time the future does not exist yet.

The checks compare student code with these classes; coursekit/gpt.py has the production version (with a key/value
cache and the fused kernel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F


@dataclass
class AttentionConfig:
    n_embd: int = 64  # channels of the residual stream (C)
    n_head: int = 4  # heads; each gets n_embd // n_head channels
    block_size: int = 32  # longest sequence (the size of the causal mask)
    attn_pdrop: float = 0.0  # dropout on the attention weights
    resid_pdrop: float = 0.0  # dropout on the output, before it is added back to the residual stream


def attention_weights(q: torch.Tensor, k: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """softmax(q k^T / sqrt(d)) over the keys, for q (..., T, d), k (..., S, d); causal hides keys after the query.

    >>> w = attention_weights(torch.zeros(3, 2), torch.zeros(3, 2))  # equal scores: uniform over the visible past
    >>> w
    tensor([[1.0000, 0.0000, 0.0000],
            [0.5000, 0.5000, 0.0000],
            [0.3333, 0.3333, 0.3333]])
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (..., T, S)
    if causal:
        T, S = scores.shape[-2:]
        visible = torch.ones(T, S, dtype=torch.bool, device=q.device).tril(diagonal=S - T)
        scores = scores.masked_fill(~visible, float("-inf"))  # -inf: exp(-inf) = 0, so no weight at all
    return scores.softmax(dim=-1)  # each query's weights over the keys sum to 1


def cross_attention(S1: torch.Tensor, S2: torch.Tensor, W_Q: torch.Tensor, W_K: torch.Tensor,
                    W_V: torch.Tensor) -> torch.Tensor:
    """Queries from S1 (n1, d), keys and values from S2 (n2, d); W_Q, W_K (d, d_k), W_V (d, d_v) -> (n1, d_v).

    No mask: in cross-attention every query may look at every position of the other sequence.

    >>> cross_attention(torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2), torch.eye(2)).round(decimals=3)
    tensor([[0.6700, 0.3300],
            [0.3300, 0.6700]])
    """
    q, k, v = S1 @ W_Q, S2 @ W_K, S2 @ W_V
    return attention_weights(q, k, causal=False) @ v


class AttentionHead(nn.Module):
    """One causal self-attention head: (B, T, n_embd) -> (B, T, head_size)."""

    def __init__(self, n_embd: int, head_size: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size, dtype=torch.bool)))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        T = x.size(1)
        q, k, v = self.query(x), self.key(x), self.value(x)  # (B, T, hs) each
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, T, T)
        scores = scores.masked_fill(~self.mask[:T, :T], float("-inf"))
        weights = scores.softmax(dim=-1)  # (B, T, T): row t = how much position t takes from each position
        out = self.dropout(weights) @ v  # (B, T, hs)
        return (out, weights) if return_weights else out


class MultiHeadAttention(nn.Module):
    """n_head AttentionHeads side by side, concatenated, then an output projection: (B, T, C) -> (B, T, C)."""

    def __init__(self, n_embd: int, n_head: int, block_size: int, dropout: float = 0.0):
        super().__init__()
        head_size = n_embd // n_head
        self.heads = nn.ModuleList([AttentionHead(n_embd, head_size, block_size, dropout) for _ in range(n_head)])
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.cat([head(x) for head in self.heads], dim=-1)  # (B, T, n_head * hs) = (B, T, C)
        return self.dropout(self.proj(out))


class CausalSelfAttention(nn.Module):
    """All heads at once: one matmul makes every query, key and value; heads become a batch dimension."""

    def __init__(self, config: AttentionConfig):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)  # [queries | keys | values], heads contiguous
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        mask = torch.tril(torch.ones(config.block_size, config.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask.view(1, 1, config.block_size, config.block_size))

    def forward(self, x: torch.Tensor, return_weights: bool = False):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)  # (B, T, C) each
        # (B, T, C) -> (B, T, nh, hs) -> (B, nh, T, hs): head h owns channels h*hs ... (h+1)*hs - 1
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / math.sqrt(k.size(-1))  # (B, nh, T, T)
        scores = scores.masked_fill(~self.mask[:, :, :T, :T], float("-inf"))
        weights = scores.softmax(dim=-1)
        out = self.attn_dropout(weights) @ v  # (B, nh, T, hs)
        out = out.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again, in order
        out = self.resid_dropout(self.c_proj(out))
        return (out, weights) if return_weights else out


def sdpa_reference(module: CausalSelfAttention, x: torch.Tensor) -> torch.Tensor:
    """The same computation through PyTorch's fused F.scaled_dot_product_attention (no dropout)."""
    B, T, C = x.shape
    q, k, v = module.c_attn(x).split(C, dim=-1)
    q, k, v = (t.view(B, T, module.n_head, C // module.n_head).transpose(1, 2) for t in (q, k, v))
    out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return module.c_proj(out.transpose(1, 2).reshape(B, T, C))
