"""Checks for notebook 06, part 2: top_k_table lists the k most likely tokens with their probabilities.

The probability of each row is the softmax over the whole vocabulary; a diagnosis (logits, log-probabilities, the
softmax of the k kept logits) is given only where the inputs tell it from the right answer. See gpt2_similarity.py
for how the notebook's checks are built.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng
from coursekit.checks.gpt2_similarity import reference
from coursekit.checks.probing import large_magnitudes
from coursekit.checks.sampling_filters import rounded


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
        got, given_after = [], []
        for logits in tables:
            given = logits.clone()
            result = function(given, k)
            given_after.append(given)  # the judge compares them with the logits it chose
            if not isinstance(result, (list, tuple)):
                return {"not_a_list": type(result).__name__, "given_after": given_after}
            try:
                got.append([[_as_sent(token), _as_sent(probability)] for token, probability in result])
            except (TypeError, ValueError) as error:
                return {"error": f"{describe(result)} ({error})", "given_after": given_after}
        return {"tables": got, "given_after": given_after}
    return probe


def _container_mistake(got, tables) -> str | None:
    """The logits changed in place, or the rows not in a list: what every test of the table looks at first."""
    after = got.get("given_after")
    if not (isinstance(after, list) and len(after) >= 1 and all(
            isinstance(a, np.ndarray) and np.array_equal(a, logits.numpy()) for a, logits in zip(after, tables))):
        return ("top_k_table changed the logits it was given (an in-place operation such as logits.zero_(), "
                "logits /= ..., .softmax_ or assigning into logits[...]): the notebook uses the same logits again "
                "below (the least likely tokens); compute new tensors instead, e.g. torch.softmax(logits, dim=-1)")
    if "not_a_list" in got:
        return (f"top_k_table returned a {got['not_a_list']}, not a list of (token id, probability) pairs (zip(...) "
                f"and map(...) give iterators, read only once, with no len() or indexing): return a list, e.g. "
                f"list(zip(ids, probabilities)) or [(int(token), float(p)) for ...]")
    return None


def _as_sent(value):
    """A table entry as returned, for the judge to read its number and its type from: a numpy scalar goes as a 0-d
    array (plain data would turn np.float32 into a Python float)."""
    return np.asarray(value) if isinstance(value, np.generic) else value


def _kind(value) -> str:
    """The type of a table entry as the judge sees it in the data: int, float, or a tensor / numpy number."""
    return f"a 0-d tensor or numpy {value.dtype}" if isinstance(value, np.ndarray) else type(value).__name__


def _numbers(table) -> list[list[float]] | None:
    """The rows as floats, or None when an entry is no single number."""
    try:
        return [[float(np.asarray(token).item()), float(np.asarray(probability).item())]
                for token, probability in table]
    except (TypeError, ValueError):
        return None


def _table_judge(inputs):
    def judge(got):
        tables, k = inputs()
        mistake = _container_mistake(got, tables)
        if mistake:
            return mistake
        if "error" in got:
            return f"top_k_table should return a list of (token id, probability) pairs, got {got['error']}"
        for logits, table in zip(tables, got["tables"]):
            rows = _numbers(table)
            if rows is None:
                return f"each row of top_k_table should be two numbers, (token id, probability); got {table[:2]}"
            message = _table_mistake(rows, logits, k)
            if message:
                if np.isnan(np.array(rows, dtype=float)).any() and float(logits.abs().max()) > 50:
                    return (f"top_k_table gives NaN for logits around {round(float(logits.max()))}: exp of such logits "
                            f"overflows (or underflows to 0 / 0). Use torch.softmax, which subtracts the maximum first")
                return message
        return None
    return judge


def _table_mistake(rows, logits: torch.Tensor, k: int) -> str | None:
    expected = reference().top_k_table(logits, k)
    if len(rows) != k:
        return f"top_k_table(logits, k={k}) should return {k} rows, got {len(rows)}"
    if not all(first.is_integer() for first, _ in rows):
        if all(second.is_integer() for _, second in rows):
            return ("each row is (probability, token id): put the token id first, (token id, probability), e.g. "
                    "(int(index), float(probability)) for each of torch.topk's indices and values")
        return f"the first entry of each row should be a token id (an int), got {rounded([r[0] for r in rows])}"
    tokens, probabilities = [int(token) for token, _ in rows], np.array([p for _, p in rows])
    expected_tokens = [token for token, _ in expected]
    if sorted(tokens) == sorted(expected_tokens) and tokens != expected_tokens:
        return f"the rows should be sorted most likely first: expected tokens {expected_tokens}, got {tokens}"
    if tokens != expected_tokens:
        bottom = torch.topk(logits, k, largest=False).indices.tolist()
        if sorted(tokens) == sorted(bottom):
            return "these are the k least likely tokens: take the k largest logits (torch.topk's default)"
        if k > 1 and np.ptp(probabilities) < 1e-9 < np.ptp([p for _, p in expected]):
            return (f"top_k_table(logits, k={k}) gave all {k} rows the same probability, so it listed tokens "
                    f"{tokens} instead of {expected_tokens}: were the logits clamped? torch.softmax needs no "
                    f"clamping (it subtracts the maximum first)")
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
        return (f"the probabilities should be {rounded(expected_probabilities, 4)}, "
                f"got {rounded(probabilities, 4)}")
    return None


def _tied_case():
    """([logits], k): two tokens with equal logits inside the top k (not at its edge, so the k tokens are clear):
    the public 40 logits with the 3rd largest set to the 2nd, k = 5, or a random vocabulary in a grading run."""
    if is_public():
        logits, k, rank = TABLE_LOGITS.clone(), 5, 1
    else:
        rng = probe_rng()
        k = int(rng.integers(3, 9))
        logits = torch.from_numpy(rng.normal(0, 2, size=int(rng.integers(3 * k + 10, 3 * k + 40)))).float()
        rank = int(rng.integers(0, k - 2))
    order = logits.argsort(descending=True)
    logits[order[rank + 1]] = logits[order[rank]]
    return [logits], k


def _tied_judge(got) -> str | None:
    tables, k = _tied_case()
    mistake = _container_mistake(got, tables)
    if mistake or "error" in got:
        return mistake or "there are no rows to look at (see the tests above)"
    rows, logits = _numbers(got["tables"][0]), tables[0]
    if rows is None or len(rows) != k or not all(token.is_integer() for token, _ in rows):
        return f"top_k_table(logits, k={k}) should return {k} rows of (token id, probability) (see the tests above)"
    tokens, probabilities = [int(token) for token, _ in rows], np.array([p for _, p in rows])
    expected = torch.softmax(logits.double(), -1)
    wanted = sorted(torch.topk(logits, k).indices.tolist())
    if sorted(tokens) != wanted:
        missing = [token for token in wanted if token not in tokens]
        tied = [(token, other) for token in missing for other in tokens if logits[other] == logits[token]]
        if tied:
            token, other = tied[0]
            return (f"tokens {other} and {token} have the same logit, so the same probability "
                    f"({float(expected[token]):.4f}), but only {other} was listed: both belong among the {k} most "
                    f"likely (tied tokens are different tokens; do not skip a probability already listed)")
        return f"top_k_table(logits with two tied, k={k}) should list tokens {wanted} (in some order), got {tokens}"
    if not np.allclose(probabilities, expected[tokens].numpy(), atol=1e-5):
        return (f"the probabilities of tokens {tokens} should be {rounded(expected[tokens], 4)}, got "
                f"{rounded(probabilities, 4)}")
    if (np.diff(probabilities) > 1e-6).any():
        return f"the rows should be sorted most likely first, got probabilities {rounded(probabilities, 4)}"
    return None


def _types_mistake(got) -> str | None:
    if "tables" not in got:
        return "there are no rows to look at (see the tests above)"
    kinds = sorted({f"{_kind(token)}, {_kind(probability)}" for token, probability in got["tables"][0]})
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
    + [Test("two tokens with the same probability are both listed", _table_probe(_tied_case), _tied_judge,
            weight=0.3),
       Test("rows are (int, float) pairs", _table_probe(_table_case(3, (2, 5))), _types_mistake, weight=0.1)],
)
