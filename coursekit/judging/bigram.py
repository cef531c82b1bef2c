"""Notebook 02's models replayed from the weights a probe loaded: the reference's logits and those of the usual
mistakes, keyed by the mistake's name ("" is the right one), the logits table generate samples from, and
torch.multinomial's draws from it; and tinyshakespeare as ids (input_ids' answer) with its pair counts. The weights are [first weight, first bias, output weight, output bias] (see
coursekit.checks.bigram_layers.seeded_weights); the embedding model has no first bias and ignores it.

>>> weights = [torch.zeros(2, 3), torch.zeros(2), torch.ones(3, 2), torch.arange(3.0)]
>>> forward_candidates("one_hot", weights, torch.tensor([1]))[""].tolist()
[[0.0, 1.0, 2.0]]
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch.nn import functional as F

from coursekit import data
from coursekit.bigram import BigramEmbeddingMLP, BigramOneHotMLP, bigram_counts


def reference_model(kind: str, weights: list[torch.Tensor], dtype: torch.dtype = torch.float64):
    """The reference BigramOneHotMLP ("one_hot") or BigramEmbeddingMLP ("embedding") holding `weights`."""
    first_weight, first_bias, out_weight, out_bias = weights
    vocab, hidden = out_weight.shape
    model = (BigramOneHotMLP if kind == "one_hot" else BigramEmbeddingMLP)(vocab, hidden_size=hidden).to(dtype)
    first = model.hidden if kind == "one_hot" else model.embedding
    with torch.no_grad():
        first.weight.copy_(first_weight)
        model.output.weight.copy_(out_weight)
        model.output.bias.copy_(out_bias)
        if kind == "one_hot":
            first.bias.copy_(first_bias)
    return model.eval()


def _inputs(kind: str, ids: torch.Tensor, vocab: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(ids, vocab).to(dtype) if kind == "one_hot" else ids


@torch.no_grad()
def forward_candidates(kind: str, weights: list[torch.Tensor], ids: torch.Tensor) -> dict[str, np.ndarray]:
    """The logits (len(ids), vocab) of the reference ("") and of each usual mistake, as float64 arrays."""
    model = reference_model(kind, weights)
    vocab = weights[2].shape[0]
    x = _inputs(kind, ids, vocab, torch.float64)
    first = model.hidden if kind == "one_hot" else model.embedding
    hidden, output = first(x), model.output
    right = model(x)
    candidates = {
        "": right,
        "ReLU": output(F.relu(hidden)),
        "no activation": output(hidden),
        "softmax": F.softmax(right, dim=-1),
        "activation after the last layer": model.activation(right),
        "log_softmax": F.log_softmax(right, dim=-1),
        "no output bias": F.linear(model.activation(hidden), output.weight),
    }
    if kind == "one_hot":
        candidates["no first bias"] = output(model.activation(hidden - first.bias))
    return {name: value.numpy() for name, value in candidates.items()}


@torch.no_grad()
def logits_table(kind: str, weights: list[torch.Tensor]) -> np.ndarray:
    """(vocab, vocab) float32: row a holds the reference's logits for the id after a (what generate samples from)."""
    vocab = weights[2].shape[0]
    model = reference_model(kind, weights, torch.float32)
    return model(_inputs(kind, torch.arange(vocab), vocab, torch.float32)).numpy()


def disagreements(table: np.ndarray, ids: list[int], seed: int, temperature: float = 1.0) -> int:
    """How many sampled ids differ from what torch.multinomial(softmax(logits / temperature), 1, generator) draws
    after the id before each (the same generator stream, all steps at once: torch draws them in the same order)."""
    rows = torch.from_numpy(table)[torch.tensor(ids[:-1])]
    probs = torch.softmax(rows if temperature == 1.0 else rows / temperature, dim=-1)
    drawn = torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(seed))[:, 0]
    return int((drawn != torch.tensor(ids[1:])).sum())


@lru_cache(maxsize=1)
def corpus_ids() -> np.ndarray:
    """tinyshakespeare as character ids (ids = positions in the sorted vocabulary)."""
    text = data.read_text("tinyshakespeare")
    index = {char: i for i, char in enumerate(sorted(set(text)))}
    return np.array([index[char] for char in text], dtype=np.int64)


@lru_cache(maxsize=1)
def corpus_counts() -> torch.Tensor:
    """counts[a, b]: how often character b follows character a in tinyshakespeare."""
    ids = torch.from_numpy(corpus_ids())
    return bigram_counts(ids, int(ids.max()) + 1)
