"""The reference GPT: a decoder-only transformer with GPT-2's layout, small enough to read in one sitting.

Data flows through the classes in the order they appear: token ids -> embeddings -> Blocks (attention, then MLP,
each with a residual connection around a LayerNorm) -> final LayerNorm -> logits over the vocabulary.

Parameter names follow GPT-2 (transformer.wte, transformer.h.0.attn.c_attn, ...) so pretrained GPT-2 weights can be
copied in by name. GPT-2 stores its linear layers as Conv1D, i.e. transposed relative to nn.Linear; a loader must
transpose c_attn, c_proj and c_fc weights.

Generation keeps a key/value cache: each layer remembers the keys and values of the positions it has already seen,
so a new token costs one position of work instead of recomputing the whole sequence. The next token is chosen by
`coursekit.sampling` (temperature, top-k, top-p), imported inside `generate` only: sampling is notebook 05's
exercise, and a notebook that loads this model must not be handed its answers.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit.gpt_config import GPTConfig


def best_device() -> torch.device:
    """The fastest device available here: CUDA, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


# ---------------------------------------------------------------- the model


class KVCache:
    """One layer's keys and values for the positions processed so far, preallocated for block_size positions."""

    def __init__(self, batch_size: int, config: GPTConfig, device=None, dtype=None):
        head_size = config.n_embd // config.n_head
        shape = (batch_size, config.n_head, config.block_size, head_size)
        self.keys = torch.empty(shape, device=device, dtype=dtype)
        self.values = torch.empty(shape, device=device, dtype=dtype)
        self.length = 0  # positions filled so far

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nh, T, hs) after the cached positions; return keys and values of all positions so far."""
        start, end = self.length, self.length + k.size(2)
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]  # (B, nh, end, hs)


def causal_mask(T: int, S: int, device=None) -> torch.Tensor:
    """(T, S) booleans, True where one of T queries may attend to one of S keys.

    The queries are the last T of the S positions, so query i sees keys 0 .. S - T + i (T == S: lower triangle).

    >>> causal_mask(2, 3)
    tensor([[ True,  True, False],
            [ True,  True,  True]])
    """
    return torch.ones(T, S, dtype=torch.bool, device=device).tril(diagonal=S - T)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        if config.n_embd % config.n_head != 0:
            raise ValueError(f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})")
        # Queries, keys and values of all heads come from one matmul: one big product is faster than three.
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x, kv_cache: KVCache | None = None, return_attention: bool = False):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)  # each (B, T, C)
        # Split channels into heads; each head attends independently over its own C // n_head channels.
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)  # (B, nh, T, hs)
        if kv_cache is not None:
            k, v = kv_cache.append(k, v)  # (B, nh, S, hs): S = cached positions + T
        S = k.size(2)
        weights = None
        if return_attention:
            # Explicit softmax, slower than the fused kernel but it lets us look at the attention pattern.
            scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.size(-1))  # (B, nh, T, S)
            weights = scores.masked_fill(~causal_mask(T, S, x.device), float("-inf")).softmax(dim=-1)
            y = self.attn_dropout(weights) @ v  # (B, nh, T, hs)
        else:
            dropout = self.dropout if self.training else 0.0
            if S == T:  # no cache: the usual lower-triangular mask, which the fused kernel builds itself
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
            elif T == 1:  # one new token after the cache sees every key: no mask (and the fastest kernel)
                y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
            else:
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=causal_mask(T, S, x.device), dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # heads side by side again: (B, T, C)
        return self.resid_dropout(self.c_proj(y)), weights


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU(approximate="tanh")  # the approximation GPT-2 was trained with
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))  # (B, T, C) -> (B, T, 4C) -> (B, T, C)


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, kv_cache: KVCache | None = None, return_attention: bool = False):
        # Pre-LayerNorm: normalise the input of each sub-layer, leave the residual stream itself untouched.
        attended, weights = self.attn(self.ln_1(x), kv_cache, return_attention)
        x = x + attended  # tokens exchange information
        x = x + self.mlp(self.ln_2(x))  # each token thinks on its own
        return x, weights


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),  # token embeddings
                wpe=nn.Embedding(config.block_size, config.n_embd),  # position embeddings
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Weight tying: reading a token in and writing it out use the same vectors (fewer parameters, as GPT-2).
        self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        # Each block adds two projections to the residual stream; scaling them by 1/sqrt(2 * n_layer) keeps the
        # stream's variance from growing with depth (GPT-2 paper, section 2.3).
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self) -> int:
        """Number of parameters, counting the tied embedding / LM-head matrix once."""
        return sum(parameter.numel() for parameter in self.parameters())

    def forward(self, idx, targets=None, kv_cache: list[KVCache] | None = None, return_attentions: bool = False):
        """Logits (B, T, vocab) for token ids idx (B, T), and the cross-entropy loss when targets (B, T) are given.

        Returns (logits, loss), loss None without targets. With kv_cache (from empty_kv_cache) idx continues the
        positions already cached, and its keys and values are added to the cache. With return_attentions=True
        it returns (logits, loss, attentions): one (B, n_head, T, T + cached) tensor of weights per layer.
        """
        self._check_idx(idx)
        past = kv_cache[0].length if kv_cache else 0
        room = self.config.block_size - past
        if idx.size(1) > room:
            cached = f" and the KV cache already holds {past} positions" if past else ""
            raise ValueError(f"idx has {idx.size(1)} tokens but block_size is {self.config.block_size}{cached}: "
                             f"pass at most the last {room} (idx[:, -{room}:])")
        x, attentions = self._hidden_states(idx, kv_cache, return_attentions)
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = None
        if targets is not None:
            if targets.shape != idx.shape:
                raise ValueError(f"targets must have idx's shape {tuple(idx.shape)}, got {tuple(targets.shape)}")
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        if return_attentions:
            return logits, loss, attentions
        return logits, loss

    def _hidden_states(self, idx, kv_cache: list[KVCache] | None = None, return_attentions: bool = False):
        """Final-LayerNorm output (B, T, C) for idx, continuing after the positions already in kv_cache."""
        past = kv_cache[0].length if kv_cache else 0
        positions = torch.arange(past, past + idx.size(1), device=idx.device)  # (T,)
        x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(positions))  # (B, T, C)
        attentions = []
        for layer, block in enumerate(self.transformer.h):
            x, weights = block(x, kv_cache[layer] if kv_cache else None, return_attentions)
            attentions.append(weights)
        return self.transformer.ln_f(x), tuple(attentions) if return_attentions else None

    def empty_kv_cache(self, batch_size: int) -> list[KVCache]:
        """One empty KVCache per layer, on the model's device and dtype."""
        weight = self.lm_head.weight
        return [KVCache(batch_size, self.config, weight.device, weight.dtype) for _ in range(self.config.n_layer)]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True, generator: torch.Generator | None = None):
        """Continue idx (B, T) by max_new_tokens tokens; returns (B, T + max_new_tokens).

        temperature=0 is greedy decoding (always the most likely token; top_k and top_p are then ignored).
        With use_cache the keys and values of past positions are kept, and greedy output is token-for-token the
        same as recomputing the whole sequence (use_cache=False). The model only sees the last block_size tokens:
        once the cache is full it is refilled from the last block_size tokens (a sliding window). That costs a
        full forward pass per token, because with learned absolute positions every cached key changes when the
        window moves.
        """
        self._check_idx(idx)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be an integer >= 0, got {max_new_tokens!r}")
        from coursekit import sampling  # here, not at the top: see the module docstring

        sampling.check_sampling_arguments(temperature, top_k, top_p)
        block_size = self.config.block_size
        kv_cache = None
        for _ in range(max_new_tokens):
            if not use_cache:
                hidden, _ = self._hidden_states(idx[:, -block_size:])
            elif kv_cache is None or kv_cache[0].length == block_size:
                kv_cache = self.empty_kv_cache(idx.size(0))  # (re)fill the cache from the last block_size tokens
                hidden, _ = self._hidden_states(idx[:, -block_size:], kv_cache)
            else:
                hidden, _ = self._hidden_states(idx[:, -1:], kv_cache)  # only the newest token is new
            logits = self.lm_head(hidden[:, -1, :])  # (B, vocab): only the last position predicts the next token
            next_token = sampling.sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
            idx = torch.cat([idx, next_token[:, None]], dim=1)  # (B, T + 1)
        return idx

    def _check_idx(self, idx) -> None:
        if not isinstance(idx, torch.Tensor) or idx.dtype not in (torch.long, torch.int):
            got = idx.dtype if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise ValueError(f"idx must be a tensor of token ids with dtype torch.long, got {got}")
        if idx.ndim != 2 or idx.size(1) == 0:
            raise ValueError(f"idx must have shape (batch, sequence) with sequence >= 1, got {tuple(idx.shape)}; "
                             f"for a single sequence use idx[None]")
        if idx.min() < 0 or idx.max() >= self.config.vocab_size:
            raise ValueError(f"idx must hold token ids in [0, {self.config.vocab_size}), "
                             f"got values from {idx.min().item()} to {idx.max().item()}")
