"""The reference GPT: a decoder-only transformer with GPT-2's layout, small enough to read in one sitting.

Data flows through the classes in the order they appear: token ids -> embeddings -> Blocks (attention, then MLP,
each with a residual connection around a LayerNorm) -> final LayerNorm -> logits over the vocabulary.

Parameter names follow GPT-2 (transformer.wte, transformer.h.0.attn.c_attn, ...) so pretrained GPT-2 weights can be
copied in by name. GPT-2 stores its linear layers as Conv1D, i.e. transposed relative to nn.Linear; a loader must
transpose c_attn, c_proj and c_fc weights.

Generation keeps a key/value cache: each layer remembers the keys and values of the positions it has already seen,
so a new token costs one position of work instead of recomputing the whole sequence. The next token is chosen by the
functions at the top (temperature, top-k, top-p): notebook 04's `generate` exercise teaches them, notebook 05 studies
them, and `coursekit.sampling` is their public home.
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


# ---------------------------------------------------------------- choosing the next token (GPT.generate)


def check_sampling_arguments(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """Raise ValueError naming the argument and its allowed range when a sampling setting is out of range.

    >>> check_sampling_arguments(temperature=-1.0, top_k=None, top_p=None)
    Traceback (most recent call last):
    ...
    ValueError: temperature must be >= 0 (0 means greedy), got -1.0
    """
    if not temperature >= 0:  # also rejects NaN
        raise ValueError(f"temperature must be >= 0 (0 means greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be None or an integer >= 1, got {top_k!r}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be None or in the interval (0, 1], got {top_p!r}")


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token: argmax over the last dimension (the first one on ties).

    >>> greedy(torch.tensor([[0.1, 2.0, -1.0]]))
    tensor([1])
    """
    return logits.argmax(dim=-1)


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Divide logits by a temperature > 0: below 1 sharpens the distribution, above 1 flattens it.

    >>> apply_temperature(torch.tensor([2.0, 4.0]), 2.0)
    tensor([1., 2.])
    """
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 here (use greedy() for temperature 0), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits and set the rest to -inf (tokens tied with the k-th largest are kept too).

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0, 0.0]), 2)
    tensor([-inf, 3., 2., -inf])
    """
    k = min(k, logits.size(-1))
    kth_largest = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1)
    return logits.masked_fill(logits < kth_largest, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose total probability reaches p (the "nucleus"); -inf the rest.

    The most likely token is always kept, so p close to 0 becomes greedy and p = 1 keeps everything.

    >>> probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    >>> top_p_filter(probs.log(), 0.75).exp()
    tensor([0.5000, 0.3000, 0.0000, 0.0000])
    """
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    sorted_probs = torch.softmax(sorted_logits, dim=-1)
    # A token is dropped when the tokens ranked above it already hold probability >= p.
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    drop_sorted = mass_before >= p
    drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
    return logits.masked_fill(drop, float("-inf"))


def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token id per row of logits (B, vocab) -> (B,). temperature 0 is greedy (top_k and top_p then do nothing).

    >>> sample_next_token(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)
    tensor([1])
    >>> sample_next_token(torch.tensor([[0.0, 5.0, 1.0]]), top_k=1, generator=torch.Generator().manual_seed(0))
    tensor([1])
    """
    check_sampling_arguments(temperature, top_k, top_p)
    if temperature == 0:
        return greedy(logits)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    probs = torch.softmax(logits, dim=-1)  # (B, vocab)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)  # (B,)


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
        check_sampling_arguments(temperature, top_k, top_p)
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
            next_token = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B,)
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
