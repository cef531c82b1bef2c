"""Checks for notebook 06 (inside GPT-2): cosine similarities, the top-k next-token table, a top-n sampler.

Every probe feeds small tensors to the student's function, never a model, so a check takes well under a second and
does not depend on whether GPT-2's weights are on the machine. In a notebook the tensors are the hand-made public
ones; in a grading run they are drawn from the test's rng (other sizes, values, k and n), and the judges recompute
the answers from the reference in `_reference`, which probes never touch (it is the answer to these exercises).
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, array_mistake, describe, is_public, probe_rng
from coursekit.checks.probing import large_magnitudes, with_global_rng_perturbed


def _reference():
    """The answers to notebook 06's exercises: judge-side only (the grader keeps this module out of the sandbox)."""
    from coursekit import gpt2_inspection
    return gpt2_inspection


def _rounded(values, digits: int = 3) -> list[float]:
    """Numbers for a message as plain floats: [0.479], never [np.float64(0.479)].

    >>> _rounded(np.array([0.47912, 1.0]))
    [0.479, 1.0]
    """
    return [round(float(value), digits) for value in np.asarray(values).reshape(-1)]


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
        original = given.clone()
        try:
            returned = function(given)
        except NotImplementedError:
            raise
        except RuntimeError as error:
            return {"error": f"RuntimeError: {error}"}
        return {"result": _as_array(returned), "input_changed": not torch.equal(given, original),
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
    if result.shape == (n,):
        return (f"you returned {n} numbers, each vector's similarity with itself (F.cosine_similarity(v, v) pairs "
                f"row i with row i only); the matrix compares every pair: shape ({n}, {n})")
    if result.shape == (c, c):
        return (f"you returned a ({c}, {c}) matrix, one entry per pair of *columns* (unit.T @ unit); the rows are the "
                f"vectors: unit @ unit.T has shape ({n}, {n})")
    expected = _reference().cosine_similarity_matrix(vectors).numpy()
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
    if not np.allclose(np.diag(result), 1.0, atol=1e-5):
        return f"every vector has similarity 1 with itself, but the diagonal is {_rounded(np.diag(result))}"
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

# ---------------------------------------------------------------- top-k next-token table

TABLE_LOGITS = torch.randn(40, generator=torch.Generator().manual_seed(40)) * 3


def _table_case(public_k: int, k_range: tuple[int, int], magnitudes: bool = False):
    """inputs() -> (list of logits tensors, k): the public 40 logits, or another vocabulary in a grading run."""
    def inputs():
        if is_public():
            logits, k = TABLE_LOGITS.clone(), public_k
        else:
            rng = probe_rng()
            k = int(rng.integers(*k_range))  # a vocabulary of at least 3k tokens keeps mass outside the top k
            logits = torch.from_numpy(rng.normal(0, 2, size=int(rng.integers(3 * k + 10, 3 * k + 40)))).float()
        return (large_magnitudes(logits) if magnitudes else [logits]), k
    return inputs


def _table_probe(inputs):
    def probe(function):
        tables, k = inputs()
        got = []
        for logits in tables:
            result = function(logits.clone(), k)
            try:
                rows = [(token, probability) for token, probability in result]
                got.append({"rows": [[float(token), float(probability)] for token, probability in rows],
                            "types": sorted({f"{type(token).__name__}, {type(probability).__name__}"
                                             for token, probability in rows})})
            except (TypeError, ValueError) as error:
                return {"error": f"{describe(result)} ({error})"}
        return {"tables": got}
    return probe


def _table_judge(inputs):
    def judge(got):
        if "error" in got:
            return f"top_k_table should return a list of (token id, probability) pairs, got {got['error']}"
        tables, k = inputs()
        for logits, table in zip(tables, got["tables"]):
            message = _table_mistake(table["rows"], logits, k)
            if message:
                if np.isnan(np.array(table["rows"], dtype=float)).any() and float(logits.abs().max()) > 50:
                    return (f"top_k_table gives NaN for logits around {round(float(logits.max()))}: exp of such logits "
                            f"overflows (or underflows to 0 / 0). Use torch.softmax, which subtracts the maximum first")
                return message
        return None
    return judge


def _table_mistake(rows, logits: torch.Tensor, k: int) -> str | None:
    expected = _reference().top_k_table(logits, k)
    if len(rows) != k:
        return f"top_k_table(logits, k={k}) should return {k} rows, got {len(rows)}"
    if not all(first.is_integer() for first, _ in rows):
        if all(second.is_integer() for _, second in rows):
            return ("each row is (probability, token id): put the token id first, (token id, probability), e.g. "
                    "(int(index), float(probability)) for each of torch.topk's indices and values")
        return f"the first entry of each row should be a token id (an int), got {_rounded([r[0] for r in rows])}"
    tokens, probabilities = [int(token) for token, _ in rows], np.array([p for _, p in rows])
    expected_tokens = [token for token, _ in expected]
    if sorted(tokens) == sorted(expected_tokens) and tokens != expected_tokens:
        return f"the rows should be sorted most likely first: expected tokens {expected_tokens}, got {tokens}"
    if tokens != expected_tokens:
        bottom = torch.topk(logits, k, largest=False).indices.tolist()
        if sorted(tokens) == sorted(bottom):
            return "these are the k least likely tokens: take the k largest logits (torch.topk's default)"
        return f"top_k_table(logits, k={k}) should list tokens {expected_tokens}, got {tokens}"
    kept = logits[expected_tokens].double()
    expected_probabilities = np.array([p for _, p in expected])
    for message, wrong in (
            ("you returned the logits; the table shows probabilities: softmax over the whole vocabulary", kept),
            ("these are log-probabilities (log_softmax); the table shows probabilities: use softmax",
             torch.log_softmax(logits.double(), -1)[expected_tokens]),
            ("the probabilities sum to 1 over the k rows: you took the softmax of the k kept logits only; each "
             "token's probability is the softmax over the whole vocabulary (the k rows sum to less than 1)",
             torch.softmax(kept, -1))):
        if np.allclose(probabilities, wrong.numpy(), atol=1e-4) and not np.allclose(
                expected_probabilities, wrong.numpy(), atol=1e-4):  # a diagnosis only where it tells them apart
            return message
    if not np.allclose(probabilities, expected_probabilities, atol=1e-5):
        return (f"the probabilities should be {_rounded(expected_probabilities, 4)}, "
                f"got {_rounded(probabilities, 4)}")
    return None


def _types_mistake(got) -> str | None:
    if "error" in got:
        return "there are no rows to look at (see the tests above)"
    kinds = got["tables"][0]["types"]
    if kinds != ["int, float"]:
        return (f"each row should hold a Python int and a Python float, got ({' | '.join(kinds)}): tensors as "
                f"token ids break tokenizer.decode([token]); convert with int(index) and float(probability)")
    return None


check_top_k_table = Check(
    exercise="top_k_table",
    expects=["a function top_k_table(logits, k) -> list of (token id, probability)"],
    tests=[Test(name, _table_probe(inputs), _table_judge(inputs), weight=weight) for name, inputs, weight in (
        ("the k most likely tokens of a vocabulary, with their probabilities", _table_case(5, (3, 9)), 4),
        ("k=1: the most likely token", _table_case(1, (1, 2)), 0.5),
        ("a larger k", _table_case(12, (10, 20)), 1),
        ("logits around 100 and -120 (exp overflows)", _table_case(5, (3, 9), magnitudes=True), 1))]
    + [Test("rows are (int, float) pairs", _table_probe(_table_case(3, (2, 5))), _types_mistake, weight=0.1)],
)

# ---------------------------------------------------------------- top-n sampling

# Probabilities chosen so the three most likely tokens (ids 3, 0 and 5) differ clearly, and are not the first ids.
SAMPLER_PROBABILITIES = torch.tensor([0.20, 0.06, 0.03, 0.45, 0.04, 0.10, 0.07, 0.05])
SAMPLER_SHIFT = 3.0  # logits are log-probabilities up to a constant; +3 keeps the top ones positive
SAMPLER_LOGITS = SAMPLER_PROBABILITIES.log() + SAMPLER_SHIFT
SAMPLER_N = 3
DRAWS = 1500
REPEAT_DRAWS = 100
LARGE_DRAWS = 200  # per shift; the frequencies' noise is about 0.035


def _sampler_case() -> tuple[torch.Tensor, int]:
    """(logits, n): the public ones, or permuted, shifted logits and another n in a grading run."""
    if is_public():
        return SAMPLER_LOGITS.clone(), SAMPLER_N
    rng = probe_rng()
    permuted = SAMPLER_PROBABILITIES[torch.from_numpy(rng.permutation(len(SAMPLER_PROBABILITIES)))]
    return permuted.log() + float(rng.uniform(2.5, 4.0)), int(rng.integers(2, 5))


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
    """DRAWS tokens (seed 0), then REPEAT_DRAWS more with seed 0 after the global RNG moved, and with seed 1."""
    logits, n = _sampler_case()
    sizes = iter((DRAWS, REPEAT_DRAWS))
    drawn, again = with_global_rng_perturbed(lambda: _draw(function, logits, n, seed=0, draws=next(sizes)))
    if "error" in drawn:
        return drawn
    other = _draw(function, logits, n, seed=1, draws=REPEAT_DRAWS)
    return {"counts": np.bincount(drawn["tokens"], minlength=len(logits)).tolist(),
            "first": drawn["tokens"][:REPEAT_DRAWS], "again": again.get("tokens"), "other": other.get("tokens")}


def _sampler_mistake(got) -> str | None:
    if "error" in got:
        return ("torch.multinomial refused its input (" + got["error"] + "): it needs non-negative weights, so "
                "turn the kept logits into probabilities with softmax first")
    logits, n = _sampler_case()
    counts = np.array(got["counts"])
    if counts.sum() != DRAWS or len(counts) != len(logits):
        return f"sample_top_n should return one token id between 0 and {len(logits) - 1}"
    top = torch.topk(logits, n)
    kept = top.indices.tolist()
    seen = np.nonzero(counts)[0].tolist()
    outside = [token for token in seen if token not in kept]
    if outside:
        if set(seen) <= set(range(n)):
            return (f"you returned positions 0..{n - 1} among the kept tokens, not their token ids: map the "
                    f"sampled position back with top.indices[choice] (the kept tokens are {sorted(kept)})")
        bottom = torch.topk(logits, n, largest=False).indices.tolist()
        if set(seen) <= set(bottom):
            return f"you sample among the {n} least likely tokens; keep the {n} largest logits"
        if len(seen) == n + 1:
            return f"with n={n} you sampled {n + 1} different tokens ({seen}): off by one, keep exactly n tokens"
        return f"with n={n} only tokens {sorted(kept)} (the {n} most likely) may come out, but you also sampled {outside}"
    frequencies = counts[kept] / DRAWS
    expected = torch.softmax(top.values.double(), -1).numpy()
    if np.abs(frequencies - expected).max() <= 0.05:
        if got["again"] != got["first"]:
            return ("two runs with generators seeded alike gave different tokens once the global RNG had moved: "
                    "pass the generator on (torch.multinomial(..., generator=generator)) so results can be reproduced")
        if got["other"] == got["first"]:
            return ("generators seeded differently gave the same tokens: draw from the generator you are given (do "
                    "not reseed anything inside sample_top_n)")
        return None
    clamped = top.values.clamp(min=0).double()
    if clamped.sum() > 0 and np.abs(frequencies - (clamped / clamped.sum()).numpy()).max() < 0.05:
        return (f"the kept tokens come out in proportion to their logits ({_rounded(frequencies, 2)}), not to their "
                f"probabilities: torch.multinomial treats its input as weights, so give it "
                f"torch.softmax(top.values, dim=-1)")
    if seen == [kept[0]]:
        return ("you always return the most likely token: that is greedy decoding; draw at random among the n "
                "kept tokens with torch.multinomial")
    if len(seen) == 1:
        return (f"all {DRAWS} draws gave token {seen[0]}: the draws do not vary. Draw with torch.multinomial(..., "
                f"generator=generator) and do not reseed anything inside sample_top_n")
    if len(seen) < n:
        return (f"over {DRAWS} draws with n={n} only tokens {seen} came out; each of the {n} most likely tokens "
                f"{sorted(kept)} should appear (off by one?)")
    if np.abs(frequencies - 1 / n).max() < 0.05:
        return (f"the {n} kept tokens come out about equally often ({_rounded(frequencies, 2)}): sample in "
                f"proportion to their probabilities, softmax of the kept logits")
    return (f"the kept tokens {kept} should come out with frequencies near {_rounded(expected, 2)} (their "
            f"probabilities, renormalised to sum to 1); got {_rounded(frequencies, 2)}")


def _greedy_probe(function) -> dict:
    logits, _ = _sampler_case()
    return _draw(function, logits, 1, seed=1, draws=50)


def _greedy_mistake(got) -> str | None:
    if "error" in got:
        return "no token came out (see the first test)"
    best = int(_sampler_case()[0].argmax())
    if set(got["tokens"]) != {best}:
        return f"with n=1 only the most likely token ({best}) can come out, got {sorted(set(got['tokens']))}"
    return None


def _large_probe(function) -> dict:
    logits, n = _sampler_case()
    draws = []
    for shifted in large_magnitudes(logits):
        try:
            draws.append(_draw(function, shifted, n, seed=2, draws=LARGE_DRAWS))
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
    return {"draws": draws}


def _large_mistake(got) -> str | None:
    logits, n = _sampler_case()
    problems = [got.get("error")] + [draw.get("error") for draw in got.get("draws", [])]
    if any(problems):
        return (f"with logits around 100 or -120 sample_top_n failed ({next(p for p in problems if p)}): exp of such "
                f"logits overflows to inf (or underflows to 0); torch.softmax subtracts the maximum first")
    top = torch.topk(logits, n)
    expected = torch.softmax(top.values.double(), -1).numpy()
    for draw in got["draws"]:
        counts = np.bincount(draw["tokens"], minlength=len(logits))
        if counts.sum() != len(draw["tokens"]) or len(counts) != len(logits) or \
                np.abs(counts[top.indices.numpy()] / LARGE_DRAWS - expected).max() > 0.15:
            return (f"with logits around 100 or -120 the draws should still come from the {n} most likely tokens "
                    f"{sorted(top.indices.tolist())}, in proportion to their probabilities {_rounded(expected, 2)}; "
                    f"got tokens {sorted(set(draw['tokens']))}, {_rounded(counts / max(counts.sum(), 1), 2)}")
    return None


def _type_probe(function) -> dict:
    logits, n = _sampler_case()
    return {"type": type(function(logits.clone(), n, torch.Generator().manual_seed(0))).__name__}


def _type_mistake(got) -> str | None:
    if got["type"] != "int":
        return (f"sample_top_n should return the token id as a Python int, got a {got['type']}: int(top.indices[choice]) "
                f"(the prompt loop appends it to a list of ids that the tokenizer decodes)")
    return None


check_sample_top_n = Check(
    exercise="sample_top_n",
    expects=["a function sample_top_n(logits, n, generator) -> int"],
    tests=[
        Test(f"{DRAWS} draws with n of 8 tokens: which come out, how often, reproducibly with a generator",
             _sampler_probe, _sampler_mistake, weight=5),
        Test("n=1 always gives the most likely token", _greedy_probe, _greedy_mistake, weight=0.2),
        Test("logits around 100 and -120 (exp overflows)", _large_probe, _large_mistake, weight=1),
        Test("returns a Python int", _type_probe, _type_mistake, weight=0.1),
    ],
)
