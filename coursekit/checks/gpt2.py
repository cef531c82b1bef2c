"""Checks for notebook 06 (inside GPT-2): cosine similarities, the top-k next-token table, a top-n sampler.

Every probe feeds small hand-made tensors to the student's function, never a model, so a check takes milliseconds
and does not depend on whether GPT-2's weights are on the machine.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, array_mistake, describe
from coursekit.gpt2_inspection import cosine_similarity_matrix, top_k_table

# ---------------------------------------------------------------- cosine similarity matrix

# Rows of very different lengths: only a correct normalisation makes the result independent of them.
VECTORS_OF_MANY_LENGTHS = (torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, -1.0, 2.0, 0.0], [3.0, 0.0, -1.0, 1.0],
                                         [-1.0, 1.0, 1.0, 2.0], [2.0, 2.0, -2.0, 0.5]])
                           * torch.tensor([[1.0], [10.0], [0.1], [3.0], [0.5]]))
RANDOM_VECTORS = torch.randn(6, 16, generator=torch.Generator().manual_seed(6))


def _as_array(value) -> np.ndarray | dict:
    """A probe's view of a returned matrix: a float64 array, or a description of what came back instead."""
    try:
        return torch.as_tensor(value).detach().to(torch.float64).numpy()
    except Exception:
        return {"returned": describe(value)}


def _similarity_probe(vectors: torch.Tensor):
    def probe(function):
        given = vectors.clone()
        returned = function(given)
        return {"result": _as_array(returned), "input_changed": not torch.equal(given, vectors),
                "tensor": isinstance(returned, torch.Tensor)}
    return probe


def _similarity_mistake(got, vectors: torch.Tensor) -> str | None:
    if got["input_changed"]:
        return ("your function changed the tensor it was given (an in-place operation such as /= or .div_()); "
                "the embeddings you pass it must stay as they are: compute new tensors instead")
    result = got["result"]
    if isinstance(result, dict):
        return f"cosine_similarity_matrix should return an (N, N) tensor, got {result['returned']}"
    if not got["tensor"]:
        return ("cosine_similarity_matrix should return a torch.Tensor (the cells below call .numpy() on it and "
                "index it like one); compute it with torch operations on the tensor you are given")
    vectors = vectors.double()
    n = len(vectors)
    if result.shape == (n,):
        return (f"you returned {n} numbers, each vector's similarity with itself (F.cosine_similarity(v, v) pairs "
                f"row i with row i only); the matrix compares every pair: shape ({n}, {n})")
    expected = cosine_similarity_matrix(vectors).numpy()
    if result.shape == expected.shape and not np.allclose(result, expected, atol=1e-5):
        norms = vectors.norm(dim=1, keepdim=True)
        unit = vectors / norms
        column_unit = vectors / vectors.norm(dim=0, keepdim=True)
        one_side = ("only one side is normalised: divide by the lengths of both vectors (normalise the rows, "
                    "then unit @ unit.T)")
        suspects = [
            ("you computed plain dot products: divide by the lengths too (normalise every vector to length 1 "
             "first), or the longest vectors look the most similar", vectors @ vectors.T),
            ("you normalised each column (dim=0); each vector is a row, so normalise along dim=1 (dim=-1)",
             column_unit @ column_unit.T),
            (one_side, unit @ vectors.T),
            (one_side, vectors @ unit.T),
            ("you divided by the squared lengths; a vector's length is the square root of the sum of its squares "
             "(.norm())", vectors @ vectors.T / (norms ** 2 @ (norms ** 2).T)),
            ("this is the cosine distance (1 - similarity); return the similarity itself", 1 - unit @ unit.T),
        ]
        for message, wrong in suspects:
            if np.allclose(result, wrong.numpy(), atol=1e-5):
                return message
    return array_mistake(result, expected, f"the similarity matrix of {n} vectors")


def _diagonal_mistake(got) -> str | None:
    result = got["result"]
    if isinstance(result, dict) or result.ndim != 2:
        return None  # the first test already explains the shape
    if not np.allclose(np.diag(result), 1.0, atol=1e-5):
        return f"every vector has similarity 1 with itself, but the diagonal is {np.round(np.diag(result), 3)}"
    if not np.allclose(result, result.T, atol=1e-6):
        return "the matrix should be symmetric: the similarity of i and j is that of j and i"
    return None


check_cosine_similarity_matrix = Check(
    exercise="cosine_similarity_matrix",
    expects=["a function cosine_similarity_matrix(vectors) -> (N, N) tensor"],
    tests=[
        Test("similarities of 5 vectors of very different lengths", _similarity_probe(VECTORS_OF_MANY_LENGTHS),
             lambda got: _similarity_mistake(got, VECTORS_OF_MANY_LENGTHS)),
        Test("similarities of 6 random 16-dimensional vectors", _similarity_probe(RANDOM_VECTORS),
             lambda got: _similarity_mistake(got, RANDOM_VECTORS)),
        Test("ones on the diagonal, symmetric", _similarity_probe(RANDOM_VECTORS), _diagonal_mistake),
    ],
)

# ---------------------------------------------------------------- top-k next-token table

TABLE_LOGITS = torch.randn(40, generator=torch.Generator().manual_seed(40)) * 3


def _table_probe(logits: torch.Tensor, k: int):
    def probe(function):
        result = function(logits.clone(), k)
        try:
            return {"rows": [[float(token), float(probability)] for token, probability in result]}
        except (TypeError, ValueError) as error:
            return {"error": f"{describe(result)} ({error})"}
    return probe


def _table_mistake(got, logits: torch.Tensor, k: int) -> str | None:
    if "error" in got:
        return f"top_k_table should return a list of (token id, probability) pairs, got {got['error']}"
    rows = got["rows"]
    expected = top_k_table(logits, k)
    if len(rows) != k:
        return f"top_k_table(logits, k={k}) should return {k} rows, got {len(rows)}"
    if not all(first.is_integer() for first, _ in rows):
        if all(second.is_integer() for _, second in rows):
            return ("each row is (probability, token id): put the token id first, (token id, probability), e.g. "
                    "(int(index), float(probability)) for each of torch.topk's indices and values")
        return f"the first entry of each row should be a token id (an int), got {[first for first, _ in rows]}"
    tokens, probabilities = [int(token) for token, _ in rows], np.array([p for _, p in rows])
    expected_tokens = [token for token, _ in expected]
    if sorted(tokens) == sorted(expected_tokens) and tokens != expected_tokens:
        return f"the rows should be sorted most likely first: expected tokens {expected_tokens}, got {tokens}"
    if tokens != expected_tokens:
        bottom = torch.topk(logits, k, largest=False).indices.tolist()
        if sorted(tokens) == sorted(bottom):
            return "these are the k least likely tokens: take the k largest logits (torch.topk's default)"
        return f"top_k_table(logits, k={k}) should list tokens {expected_tokens}, got {tokens}"
    kept = logits[expected_tokens]
    if np.allclose(probabilities, kept.numpy(), atol=1e-4):
        return "you returned the logits; the table shows probabilities: softmax over the whole vocabulary"
    if np.allclose(probabilities, torch.log_softmax(logits, -1)[expected_tokens].numpy(), atol=1e-4):
        return "these are log-probabilities (log_softmax); the table shows probabilities: use softmax"
    if np.allclose(probabilities, torch.softmax(kept, -1).numpy(), atol=1e-4):
        return ("the probabilities sum to 1 over the k rows: you took the softmax of the k kept logits only; each "
                "token's probability is the softmax over the whole vocabulary (the k rows sum to less than 1)")
    expected_probabilities = np.array([p for _, p in expected])
    if not np.allclose(probabilities, expected_probabilities, atol=1e-5):
        return (f"the probabilities should be {np.round(expected_probabilities, 4).tolist()}, "
                f"got {np.round(probabilities, 4).tolist()}")
    return None


check_top_k_table = Check(
    exercise="top_k_table",
    expects=["a function top_k_table(logits, k) -> list of (token id, probability)"],
    tests=[Test(f"top_k_table on 40 logits, k={k}", _table_probe(TABLE_LOGITS, k),
                lambda got, k=k: _table_mistake(got, TABLE_LOGITS, k)) for k in (5, 1, 12)],
)

# ---------------------------------------------------------------- top-n sampling

# Probabilities chosen so the three most likely tokens (ids 3, 0 and 5) differ clearly, and are not the first ids.
SAMPLER_PROBABILITIES = torch.tensor([0.20, 0.06, 0.03, 0.45, 0.04, 0.10, 0.07, 0.05])
SAMPLER_LOGITS = SAMPLER_PROBABILITIES.log() + 1.5  # logits are log-probabilities up to a constant
SAMPLER_N = 3
DRAWS = 3000
REPEAT_DRAWS = 100


def _draw(function, logits: torch.Tensor, n: int, seed: int, draws: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    tokens = []
    try:
        for _ in range(draws):
            tokens.append(int(function(logits.clone(), n, generator)))
    except RuntimeError as error:
        if "multinomial" in str(error) or "probability" in str(error):
            return {"error": f"multinomial: {error}"}
        raise
    return {"tokens": tokens}


def _sampler_probe(function) -> dict:
    first = _draw(function, SAMPLER_LOGITS, SAMPLER_N, seed=0, draws=DRAWS)
    if "error" in first:
        return first
    again = _draw(function, SAMPLER_LOGITS, SAMPLER_N, seed=0, draws=REPEAT_DRAWS)
    counts = np.bincount(first["tokens"], minlength=len(SAMPLER_LOGITS)).tolist()
    return {"counts": counts, "same_with_same_seed": again.get("tokens") == first["tokens"][:REPEAT_DRAWS]}


def _sampler_mistake(got) -> str | None:
    if "error" in got:
        return ("torch.multinomial refused its input (" + got["error"] + "): it needs non-negative weights, so "
                "turn the kept logits into probabilities with softmax first")
    counts = np.array(got["counts"])
    if counts.sum() != DRAWS or (counts < 0).any():
        return f"sample_top_n should return one token id between 0 and {len(counts) - 1}"
    top = torch.topk(SAMPLER_LOGITS, SAMPLER_N).indices.tolist()
    seen = np.nonzero(counts)[0].tolist()
    outside = [token for token in seen if token not in top]
    if outside:
        if set(seen) <= set(range(SAMPLER_N)):
            return (f"you returned positions 0..{SAMPLER_N - 1} among the kept tokens, not their token ids: map the "
                    f"sampled position back with top.indices[choice] (the kept tokens are {sorted(top)})")
        bottom = torch.topk(SAMPLER_LOGITS, SAMPLER_N, largest=False).indices.tolist()
        if set(seen) <= set(bottom):
            return f"you sample among the {SAMPLER_N} least likely tokens; keep the {SAMPLER_N} largest logits"
        if len(seen) == SAMPLER_N + 1:
            return (f"with n={SAMPLER_N} you sampled {SAMPLER_N + 1} different tokens ({seen}): off by one, keep "
                    f"exactly n tokens")
        return (f"with n={SAMPLER_N} only tokens {sorted(top)} (the {SAMPLER_N} most likely) may come out, but you "
                f"also sampled {outside}")
    if seen == [top[0]]:
        return ("you always return the most likely token: that is greedy decoding; draw at random among the n "
                "kept tokens with torch.multinomial")
    if len(seen) < SAMPLER_N:
        return (f"over {DRAWS} draws with n={SAMPLER_N} only tokens {seen} came out; each of the {SAMPLER_N} most "
                f"likely tokens {sorted(top)} should appear (off by one?)")
    frequencies = counts[top] / DRAWS
    expected = (SAMPLER_PROBABILITIES[top] / SAMPLER_PROBABILITIES[top].sum()).numpy()
    if np.abs(frequencies - expected).max() > 0.05:
        if np.abs(frequencies - 1 / SAMPLER_N).max() < 0.05:
            return (f"the {SAMPLER_N} kept tokens come out about equally often ({np.round(frequencies, 2).tolist()}): "
                    f"sample in proportion to their probabilities, softmax of the kept logits")
        return (f"the kept tokens {top} should come out with frequencies near {np.round(expected, 2).tolist()} "
                f"(their probabilities, renormalised to sum to 1); got {np.round(frequencies, 2).tolist()}")
    if not got["same_with_same_seed"]:
        return ("two runs with generators seeded alike gave different tokens: pass the generator on "
                "(torch.multinomial(..., generator=generator)) so results can be reproduced")
    return None


def _greedy_probe(function) -> dict:
    return _draw(function, SAMPLER_LOGITS, 1, seed=1, draws=50)


def _greedy_mistake(got) -> str | None:
    if "error" in got:
        return None  # the first test explains it
    best = int(SAMPLER_LOGITS.argmax())
    if set(got["tokens"]) != {best}:
        return f"with n=1 only the most likely token ({best}) can come out, got {sorted(set(got['tokens']))}"
    return None


check_sample_top_n = Check(
    exercise="sample_top_n",
    expects=["a function sample_top_n(logits, n, generator) -> int"],
    tests=[
        Test(f"{DRAWS} draws with n={SAMPLER_N} from 8 tokens: which come out, how often, reproducibly",
             _sampler_probe, _sampler_mistake),
        Test("n=1 always gives the most likely token", _greedy_probe, _greedy_mistake),
    ],
)
