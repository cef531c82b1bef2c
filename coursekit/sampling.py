"""Choosing the next token from a model's logits: greedy, temperature, top-k, top-p (nucleus), and entropy.

Every function takes logits of shape (..., vocab) and works on the last dimension, so the same code serves one
distribution or a batch of them. The order of the filters follows common practice (and Hugging Face): temperature
first, then top-k, then top-p.

The filters themselves live next to `GPT.generate` in `coursekit.gpt` (one implementation: notebook 04's `generate`
exercise teaches them, and the model must not depend on notebook 05's module); this module is the sampling API that
notebook 05's exercises are graded against, and adds the entropy of a distribution.

>>> sample_next_token(torch.tensor([[0.0, 5.0, 1.0]]), temperature=0)
tensor([1])
"""

from __future__ import annotations

import torch

from coursekit.gpt import (apply_temperature, check_sampling_arguments, greedy, sample_next_token, top_k_filter,
                           top_p_filter)

__all__ = ["apply_temperature", "check_sampling_arguments", "entropy", "greedy", "sample_next_token", "top_k_filter",
           "top_p_filter"]


def entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of distributions over the last dimension, with 0 * log 0 taken as 0.

    >>> entropy(torch.tensor([0.5, 0.5]))
    tensor(0.6931)
    >>> entropy(torch.tensor([[1.0, 0.0], [0.25, 0.75]]))
    tensor([0.0000, 0.5623])
    """
    return torch.special.xlogy(probs, probs.reciprocal()).sum(dim=-1)  # sum of p * log(1 / p)
