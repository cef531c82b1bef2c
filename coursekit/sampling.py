"""Choosing the next token from a model's logits: greedy, temperature, top-k, top-p (nucleus), and entropy.

Every function takes logits of shape (..., vocab) and works on the last dimension, so the same code serves one
distribution or a batch of them. The order of the filters follows common practice (and Hugging Face): temperature
first, then top-k, then top-p.

This is the reference for notebook 05's exercises, so nothing a student notebook loads imports it at the top:
`GPT.generate` and the explorer's fallback import it where they use it.

>>> sample_next_token(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)
tensor([1])
"""

from __future__ import annotations

import torch


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
    check_sampling_arguments(1.0, k, None)
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
    check_sampling_arguments(1.0, None, p)
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


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions over the last dimension, with 0 * log 0 taken as 0.

    >>> entropy(torch.tensor([0.5, 0.5]))
    tensor(0.6931)
    >>> entropy(torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    tensor([0.0000, 0.5623])
    """
    return torch.special.xlogy(probs, probs.reciprocal()).sum(dim=-1)  # sum of p * log(1 / p)
