"""Checks for notebook 06 (inside GPT-2), part 1: cosine_similarity_matrix.

The checks of notebook 06 (this module, gpt2_table.py and gpt2.py) feed small tensors to the student's function,
never a model, so a check takes well under a second and does not depend on whether GPT-2's weights are on the
machine. In a notebook the tensors are the hand-made public ones; in a grading run they are drawn from the test's
rng (other sizes, values, k and n), and the judges recompute the answers from the reference in `reference`, which
probes never touch (it is the answer to these exercises).

Dtypes, as in notebook 05 (sampling_filters.dtype_tests): what feeds the next step keeps the dtype it was given (05's
filters hand logits on to the sampler); what is computed for a reader to look at may come back in any floating dtype,
so a similarity matrix returned as float64 (.double(), or a loop in Python floats) passes, and a table holds Python
floats anyway. The values must be right to float32 precision whatever the dtype: half precision is too coarse.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, array_mistake, describe, is_public, probe_rng
from coursekit.checks.sampling_filters import rounded


def reference():
    """The answers to notebook 06's exercises: judge-side only (the grader keeps this module out of the sandbox)."""
    from coursekit import gpt2_inspection
    return gpt2_inspection


# ---------------------------------------------------------------- cosine similarity matrix

# Rows of very different lengths: only a correct normalisation makes the result independent of them.
VECTORS_OF_MANY_LENGTHS = (torch.tensor([[1.0, 2.0, 0.0, -1.0], [0.5, -1.0, 2.0, 0.0], [3.0, 0.0, -1.0, 1.0],
                                         [-1.0, 1.0, 1.0, 2.0], [2.0, 2.0, -2.0, 0.5]])
                           * torch.tensor([[1.0], [10.0], [0.1], [3.0], [0.5]]))
RANDOM_VECTORS = torch.randn(6, 16, generator=torch.Generator().manual_seed(6))


def _many_lengths() -> torch.Tensor:
    if is_public():
        return VECTORS_OF_MANY_LENGTHS.clone()
    rng = probe_rng()
    n = int(rng.integers(4, 8))
    c = n + int(rng.choice([-1, 1])) * int(rng.integers(1, 3))  # never n: unit.T @ unit has another shape
    lengths = 10.0 ** rng.uniform(-1.5, 1.5, size=(n, 1))
    return torch.from_numpy(rng.normal(size=(n, c)) * lengths).float()


def _random_vectors() -> torch.Tensor:
    if is_public():
        return RANDOM_VECTORS.clone()
    rng = probe_rng()
    n, c = int(rng.integers(5, 10)), int(rng.integers(10, 24))  # c > n
    return torch.from_numpy(rng.normal(size=(n, c))).float()


def _as_array(value) -> np.ndarray | dict:
    """A probe's view of a returned matrix: a float64 array, or a description of what came back instead."""
    try:
        return torch.as_tensor(value).detach().to(torch.float64).numpy()
    except Exception:
        return {"returned": describe(value)}


def _similarity_probe(vectors):
    def probe(function):
        given = vectors()
        try:
            returned = function(given)
        except NotImplementedError:
            raise
        except RuntimeError as error:
            return {"error": f"RuntimeError: {error}"}
        return {"result": _as_array(returned), "given_after": given,  # the judge compares it with the input
                "tensor": isinstance(returned, torch.Tensor)}
    return probe


def _similarity_mistake(got, vectors: torch.Tensor) -> str | None:
    n, c = vectors.shape
    if "error" in got:
        if "must match the size" in got["error"]:
            return (f"cosine_similarity_matrix of a ({n}, {c}) tensor raised {got['error']}: divide by "
                    f"vectors.norm(dim=-1, keepdim=True), a ({n}, 1) column; without keepdim the {n} lengths are "
                    f"lined up with the {c} columns")
        return f"cosine_similarity_matrix of a ({n}, {c}) tensor raised {got['error']}"
    if not (isinstance(got["given_after"], np.ndarray) and np.array_equal(got["given_after"], vectors.numpy())):
        return ("your function changed the tensor it was given (an in-place operation such as /= or .div_()); "
                "the embeddings you pass it must stay as they are: compute new tensors instead")
    result = got["result"]
    if isinstance(result, dict):
        return f"cosine_similarity_matrix should return an (N, N) tensor, got {result['returned']}"
    if not got["tensor"]:
        return ("cosine_similarity_matrix should return a torch.Tensor (the cells below call .numpy() on it and "
                "index it like one); compute it with torch operations on the tensor you are given")
    vectors = vectors.double()
    if result.shape == (n,):
        return (f"you returned {n} numbers, each vector's similarity with itself (F.cosine_similarity(v, v) pairs "
                f"row i with row i only); the matrix compares every pair: shape ({n}, {n})")
    if result.shape == (c, c):
        return (f"you returned a ({c}, {c}) matrix, one entry per pair of *columns* (unit.T @ unit); the rows are the "
                f"vectors: unit @ unit.T has shape ({n}, {n})")
    expected = reference().cosine_similarity_matrix(vectors).numpy()
    if result.shape == expected.shape and not np.allclose(result, expected, atol=1e-5):
        norms = vectors.norm(dim=1, keepdim=True)
        unit = vectors / norms
        column_unit = vectors / vectors.norm(dim=0, keepdim=True)
        one_side = ("only one side is normalised: divide by the lengths of both vectors (normalise the rows, "
                    "then unit @ unit.T)")
        suspects = [
            ("you computed plain dot products: divide by the lengths too (normalise every vector to length 1 "
             "first), or the longest vectors look the most similar", vectors @ vectors.T),
            ("you divided by the length of the whole matrix (vectors.norm() without dim); each vector needs its own "
             "length: vectors.norm(dim=-1, keepdim=True)", vectors @ vectors.T / vectors.norm() ** 2),
            ("you normalised each column (dim=0); each vector is a row, so normalise along dim=1 (dim=-1)",
             column_unit @ column_unit.T),
            (one_side, unit @ vectors.T),
            (one_side, vectors @ unit.T),
            ("you divided by the squared lengths; a vector's length is the square root of the sum of its squares "
             "(.norm())", vectors @ vectors.T / (norms ** 2 @ (norms ** 2).T)),
            ("you divided by the sum of the entries' absolute values (the L1 norm, .norm(p=1)); the length is the L2 "
             "norm, .norm(dim=-1, keepdim=True)",
             (vectors / vectors.abs().sum(-1, keepdim=True)) @ (vectors / vectors.abs().sum(-1, keepdim=True)).T),
            ("this is the cosine distance (1 - similarity); return the similarity itself", 1 - unit @ unit.T),
            ("these are the angles (arccos of the similarity); return the cosine itself",
             torch.arccos((unit @ unit.T).clamp(-1, 1))),
        ]
        for message, wrong in suspects:  # loosely: float32 rounding grows through arccos and squares
            if np.allclose(result, wrong.numpy(), atol=1e-3):
                return message
    return array_mistake(result, expected, f"the similarity matrix of {n} vectors")


def _diagonal_mistake(got) -> str | None:
    result = got.get("result")
    if not isinstance(result, np.ndarray) or result.ndim != 2:
        return "there is no (N, N) matrix to look at (see the tests above)"
    if _similarity_mistake(got, _random_vectors()):  # a diagonal of ones alone (an identity matrix) earns nothing
        return "the similarities themselves are not right yet (see the tests above)"
    if not np.allclose(np.diag(result), 1.0, atol=1e-5):
        return f"every vector has similarity 1 with itself, but the diagonal is {rounded(np.diag(result))}"
    if not np.allclose(result, result.T, atol=1e-6):
        return "the matrix should be symmetric: the similarity of i and j is that of j and i"
    return None


check_cosine_similarity_matrix = Check(
    exercise="cosine_similarity_matrix",
    expects=["a function cosine_similarity_matrix(vectors) -> (N, N) tensor"],
    tests=[
        Test("similarities of vectors of very different lengths", _similarity_probe(_many_lengths),
             lambda got: _similarity_mistake(got, _many_lengths()), weight=3),
        Test("similarities of random vectors", _similarity_probe(_random_vectors),
             lambda got: _similarity_mistake(got, _random_vectors()), weight=3),
        Test("ones on the diagonal, symmetric", _similarity_probe(_random_vectors), _diagonal_mistake, weight=0.1),
    ],
)
