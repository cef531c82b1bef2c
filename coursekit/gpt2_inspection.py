"""The reference answers to notebook 06's exercises: cosine similarities, a top-k table, top-n sampling.

They live apart from `coursekit.gpt2` (loading GPT-2, its tokenizer, the parameter tree, the fallback model), which
notebook 06 imports: the grader keeps this module out of notebook 06's sandbox, and the checks compute expected
values from it.
"""

from __future__ import annotations

import torch


def cosine_similarity_matrix(vectors: torch.Tensor) -> torch.Tensor:
    """(N, C) vectors -> (N, N) cosine similarities: entry (i, j) is cos(angle between vector i and vector j).

    >>> cosine_similarity_matrix(torch.tensor([[1.0, 0.0], [2.0, 2.0], [0.0, -3.0]])).round(decimals=3)
    tensor([[ 1.0000,  0.7070,  0.0000],
            [ 0.7070,  1.0000, -0.7070],
            [ 0.0000, -0.7070,  1.0000]])
    """
    unit = vectors / vectors.norm(dim=-1, keepdim=True)  # each row scaled to length 1
    return unit @ unit.T


def top_k_table(logits: torch.Tensor, k: int) -> list[tuple[int, float]]:
    """The k most likely next tokens for logits (vocab,), most likely first, as (token id, probability) pairs.

    Probabilities are the softmax over the whole vocabulary, so the k of them sum to at most 1.

    >>> [(token, round(probability, 3)) for token, probability in top_k_table(torch.tensor([0.0, 2.0, 1.0]), 2)]
    [(1, 0.665), (2, 0.245)]
    """
    probabilities = torch.softmax(logits, dim=-1)
    top = torch.topk(probabilities, k)
    return [(int(token), float(probability)) for token, probability in zip(top.indices, top.values)]


def sample_top_n(logits: torch.Tensor, n: int, generator: torch.Generator | None = None) -> int:
    """One token id drawn from the n most likely tokens, in proportion to their probabilities.

    >>> sample_top_n(torch.tensor([0.0, 5.0, 1.0]), 1)
    1
    """
    top = torch.topk(logits, n)
    probabilities = torch.softmax(top.values, dim=-1)  # renormalised over the n kept tokens
    choice = torch.multinomial(probabilities, num_samples=1, generator=generator)
    return int(top.indices[choice])
