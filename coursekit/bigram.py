"""Reference bigram models (notebook 02): what the checks compare against, and the count-based yardstick.

A bigram model predicts the next token from the current one only, so the whole model is one table: for each of
the V current tokens, a distribution over the V next tokens. Counting the pairs in a text and normalising each row
gives the table with the lowest possible cross-entropy on that text; no bigram model, however it is trained, can
do better. `count_model_loss` is that floor, and `table_loss` measures any bigram model against it.

Both neural models below are the same function of the current token (LeakyReLU of a learned 8-number vector, then a
linear map to V logits); they differ only in how the vector is looked up: a matrix product with a one-hot row, or
indexing an embedding table.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn import functional as F


def bigram_pairs(ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every consecutive pair of a 1-D id tensor, as (current ids, next ids).

    >>> bigram_pairs(torch.tensor([7, 4, 11, 11, 14]))  # "hello": he, el, ll, lo
    (tensor([ 7,  4, 11, 11]), tensor([ 4, 11, 11, 14]))
    """
    _require_ids(ids)
    return ids[:-1], ids[1:]


def one_hot_pairs(ids: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The pairs of bigram_pairs as one-hot float rows, each of shape (len(ids) - 1, vocab_size).

    >>> inputs, outputs = one_hot_pairs(torch.tensor([2, 0, 1]), vocab_size=4)
    >>> inputs
    tensor([[0., 0., 1., 0.],
            [1., 0., 0., 0.]])
    >>> outputs.argmax(dim=1)
    tensor([0, 1])
    """
    current, following = bigram_pairs(ids)
    return F.one_hot(current, vocab_size).float(), F.one_hot(following, vocab_size).float()


def bigram_counts(ids: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """counts[a, b] = how often token b follows token a, as a (vocab_size, vocab_size) float64 tensor.

    >>> bigram_counts(torch.tensor([0, 1, 0, 1, 1]), vocab_size=2)
    tensor([[0., 2.],
            [1., 1.]], dtype=torch.float64)
    """
    current, following = bigram_pairs(ids)
    flat = torch.bincount(current * vocab_size + following, minlength=vocab_size * vocab_size)
    return flat.view(vocab_size, vocab_size).double()


def table_loss(logits_table: torch.Tensor, counts: torch.Tensor) -> float:
    """Mean cross-entropy (nats per token) over all pairs of a text, for a bigram model given as a logits table.

    logits_table[a] are the model's logits for the token after a; counts comes from bigram_counts. This equals
    F.cross_entropy over every pair of the text, without building one row per pair.

    >>> round(table_loss(torch.zeros(2, 2), torch.tensor([[0.0, 2.0], [1.0, 1.0]])), 4)  # uniform: log 2
    0.6931
    """
    if logits_table.shape != counts.shape:
        raise ValueError(f"logits_table should have shape {tuple(counts.shape)} (vocab, vocab), "
                         f"got {tuple(logits_table.shape)}")
    log_probs = F.log_softmax(logits_table.double(), dim=-1)
    return float(-(counts * log_probs).sum() / counts.sum())


def count_model_loss(counts: torch.Tensor) -> float:
    """The cross-entropy of the count table itself: the lowest loss any bigram model can reach on this text.

    Rows that never occur contribute nothing; zero counts are skipped (0 * log 0 = 0).

    >>> round(count_model_loss(torch.tensor([[0.0, 2.0], [1.0, 1.0]])), 4)  # 2 sure pairs, 2 coin flips
    0.3466
    """
    probs = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
    seen = counts > 0
    return float(-(counts[seen] * probs[seen].log()).sum() / counts.sum())


def uniform_loss(vocab_size: int) -> float:
    """The loss of guessing uniformly: log(vocab_size). An untrained model starts near here."""
    return math.log(vocab_size)


class BigramOneHotMLP(nn.Module):
    """One-hot current token (N, V) -> Linear(V, hidden) -> LeakyReLU -> Linear(hidden, V) -> logits (N, V)."""

    def __init__(self, vocab_size: int, hidden_size: int = 8):
        super().__init__()
        self.vocab_size = vocab_size
        self.hidden = nn.Linear(vocab_size, hidden_size)
        self.activation = nn.LeakyReLU()
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.hidden(x)))  # logits: no softmax, cross_entropy does it

    def encode_input(self, token_id: int) -> torch.Tensor:
        return F.one_hot(torch.tensor([token_id]), self.vocab_size).float()  # (1, V)

    @torch.no_grad()
    def generate(self, start_id: int, num_new: int, generator: torch.Generator | None = None) -> list[int]:
        return generate_bigram(self, start_id, num_new, generator)


class BigramEmbeddingMLP(nn.Module):
    """Current token ids (N,) -> Embedding(V, hidden) -> LeakyReLU -> Linear(hidden, V) -> logits (N, V)."""

    def __init__(self, vocab_size: int, hidden_size: int = 8):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden_size)  # row i == Linear(V, hidden) applied to one_hot(i)
        self.activation = nn.LeakyReLU()
        self.output = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.output(self.activation(self.embedding(ids)))

    def encode_input(self, token_id: int) -> torch.Tensor:
        return torch.tensor([token_id])  # (1,)

    @torch.no_grad()
    def generate(self, start_id: int, num_new: int, generator: torch.Generator | None = None) -> list[int]:
        return generate_bigram(self, start_id, num_new, generator)


def generate_bigram(model, start_id: int, num_new: int, generator: torch.Generator | None = None) -> list[int]:
    """start_id followed by num_new sampled ids; each is drawn from the model's distribution given the one before.

    >>> model = BigramEmbeddingMLP(5)
    >>> ids = model.generate(3, num_new=4, generator=torch.Generator().manual_seed(0))
    >>> len(ids), ids[0]
    (5, 3)
    """
    ids = [start_id]
    for _ in range(num_new):
        logits = model(model.encode_input(ids[-1]))  # (1, V)
        probs = F.softmax(logits, dim=-1)
        ids.append(int(torch.multinomial(probs, num_samples=1, generator=generator)))
    return ids


def train_on_batches(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, batches,
                     learning_rate: float) -> list[float]:
    """Notebook 02's training loop on batches of pair indices drawn beforehand: one Adam step per batch on
    F.cross_entropy(model(inputs[batch]), targets[batch]). Returns the loss of every step. (The check of `train`
    replays a student's own batches with it.)

    >>> model = nn.Linear(3, 3)
    >>> losses = train_on_batches(model, torch.eye(3), torch.eye(3), [torch.tensor([0, 1, 2])] * 50, 0.1)
    >>> len(losses), losses[-1] < losses[0]
    (50, True)
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    for batch in batches:
        loss = F.cross_entropy(model(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def _require_ids(ids) -> None:
    if not isinstance(ids, torch.Tensor) or ids.ndim != 1 or ids.dtype not in (torch.long, torch.int):
        got = f"shape {tuple(ids.shape)} and dtype {ids.dtype}" if isinstance(ids, torch.Tensor) else type(ids).__name__
        raise ValueError(f"ids should be a 1-D tensor of token ids with dtype torch.long, shape (N,); got {got}")
