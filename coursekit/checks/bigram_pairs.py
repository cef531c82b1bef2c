"""Checks for notebook 02's training pairs: `one_hot_pairs` (one-hot rows) and `input_ids` (ids of the corpus).

Both ask for the same thing, every consecutive pair (current character, next character), in two forms. The
one_hot_pairs probes use a made-up vocabulary in the notebook ("hello" spelt with six characters); in a grading run
the cases that carry the points draw their ids, lengths and vocabulary sizes from the test's rng. The corpus as
ids (input_ids' answer) and its pair counts are the judges' (coursekit.judging.bigram, never in the sandbox).
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng


def reference():
    """The reference (coursekit.bigram), for judges only: it is never in notebook 02's sandbox."""
    from coursekit import bigram

    return bigram


CORPUS_VOCAB = 65  # len(sorted(set(tinyshakespeare))); a literal so probes need not read the corpus

# ---------------------------------------------------------------- one_hot_pairs

# A made-up six-character vocabulary, so "hello" can be spelt: h=2, e=1, l=3, o=4.
TINY_VOCAB = [" ", "e", "h", "l", "o", "!"]


def _pairs(current: list[int], following: list[int], vocab: int) -> str:
    """(current, next) pairs in words: spelt in the tiny vocabulary, else as id->id.

    >>> _pairs([2, 1], [1, 3], 6), _pairs([7], [0], 9)
    ('he, el', '7->0')
    """
    def spelt(i):
        return TINY_VOCAB[i] if vocab == len(TINY_VOCAB) and 0 <= i < vocab else None

    return ", ".join(spelt(a) + spelt(b) if spelt(a) and spelt(b) else f"{a}->{b}" for a, b in zip(current, following))


def _many_ids() -> tuple[list[int], int]:
    """Fixed ids of the tiny vocabulary in a notebook; random ones (any length) when grading."""
    if is_public():
        return [2, 1, 3, 3, 4, 0, 2, 1, 5, 5, 0, 4], len(TINY_VOCAB)
    rng = probe_rng()
    return [int(i) for i in rng.integers(0, len(TINY_VOCAB), size=int(rng.integers(5, 40)))], len(TINY_VOCAB)


def _other_vocabulary() -> tuple[list[int], int]:
    """Ids of a nine-id vocabulary in a notebook; any vocabulary size from 7 to 30 when grading."""
    if is_public():
        return [8, 0, 7, 7, 3, 8, 1, 2], 9
    rng = probe_rng()
    vocab = int(rng.integers(7, 31))
    return [int(i) for i in rng.integers(0, vocab, size=int(rng.integers(6, 30)))], vocab


ONE_HOT_CASES = [  # (description, () -> (ids, vocab_size), weight): the random cases carry the points
    ("'hello'", lambda: ([2, 1, 3, 3, 4], len(TINY_VOCAB)), 1.0),
    ("'oh!'", lambda: ([4, 2, 5], len(TINY_VOCAB)), 0.5),
    ("a single character 'h' (no pairs)", lambda: ([2], len(TINY_VOCAB)), 0.1),
    ("many ids", _many_ids, 3.0),
    ("another vocabulary size", _other_vocabulary, 2.0),
]


def _one_hot_probe(case):
    def probe(one_hot_pairs):
        ids, vocab = case()
        result = one_hot_pairs(torch.tensor(ids), vocab)
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return {"pair": False, "got": describe(result)}
        return {"pair": True, "inputs": result[0], "outputs": result[1],
                "types": [type(part).__name__ for part in result]}
    return probe


def _one_hot_rows(name: str, got, ids: list[int], vocab: int) -> str | None:
    """None when `got` is a (len(ids) - 1, vocab) float32 tensor of one-hot rows, else what is wrong with it."""
    rows = len(ids) - 1
    expected = f"({rows}, {vocab}), i.e. (len(ids) - 1, vocab_size)"
    if not isinstance(got, np.ndarray):
        return f"{name} should be a tensor of shape {expected}, got {describe(got)}"
    if got.ndim != 2:
        return f"{name} should be 2-D with shape {expected}, got shape {tuple(got.shape)}"
    if got.shape[1] != vocab:
        if got.shape[0] == rows and got.shape[1] < vocab and got.shape[1] <= max(ids) + 1:
            return (f"{name} has {got.shape[1]} columns (largest id + 1) but should have vocab_size = {vocab}: "
                    f"pass num_classes=vocab_size to F.one_hot, or every batch could get a different width")
        return f"{name} should have shape {expected}, got {tuple(got.shape)}"
    if got.shape[0] == rows + 1:
        return (f"{name} has one row per character ({rows + 1}), but {len(ids)} characters make only {rows} "
                f"pairs: the inputs are ids[:-1] and the targets ids[1:]")
    if got.shape[0] == rows - 1 and rows > 0:
        return (f"{name} has {got.shape[0]} rows but there are {rows} pairs ({_pairs(ids[:-1], ids[1:], vocab)}): "
                f"the last pair is missing; use ids[:-1] and ids[1:], not ids[:-2]")
    if got.shape[0] != rows:
        return f"{name} should have shape {expected}, got {tuple(got.shape)}"
    if not np.issubdtype(got.dtype, np.floating):
        return (f"{name} has dtype {got.dtype}, but nn.Linear multiplies floats: F.one_hot returns integers, "
                f"so add .float()")
    if got.dtype != np.float32:
        return (f"{name} has dtype {got.dtype}, but the model's weights are float32 (torch.float32) and training "
                f"would stop with a dtype error: use .float(), not .double() or dtype=torch.float64")
    if rows and not (np.isin(got, (0.0, 1.0)).all() and (got.sum(axis=1) == 1).all()):
        return f"every row of {name} should be one-hot: a single 1.0, every other entry 0.0"
    return None


def _one_hot_judge(description, case):
    def judge(got):
        ids, vocab = case()
        if not got["pair"]:
            return f"one_hot_pairs should return two tensors (inputs_one_hot, outputs_one_hot), got {got['got']}"
        for name, kind in zip(("inputs", "outputs"), got["types"]):
            if kind != "Tensor":
                return (f"{name}_one_hot for {description} is of type {kind}, but nn.Linear takes torch tensors: build it "
                        f"with F.one_hot(...).float()")
            problem = _one_hot_rows(f"{name}_one_hot for {description}", got[name], ids, vocab)
            if problem:
                return problem
        rows = len(ids) - 1
        current = got["inputs"].argmax(axis=1).tolist() if rows else []
        following = got["outputs"].argmax(axis=1).tolist() if rows else []
        if current == ids[:-1] and following == ids[1:]:
            return None
        hint = ""
        if current == following:
            hint = " outputs_one_hot equals inputs_one_hot: the target is the next character, ids[1:]."
        elif current == ids[1:] and following == ids[:-1]:
            hint = " inputs and outputs are swapped: the input is the current character, the output the next one."
        return (f"for {description} the (input, output) pairs should be {_pairs(ids[:-1], ids[1:], vocab)}; yours "
                f"are {_pairs(current, following, vocab)}.{hint}")
    return judge


check_one_hot_pairs = Check(
    exercise="one_hot_pairs",
    expects=["a function one_hot_pairs(ids, vocab_size) -> (inputs_one_hot, outputs_one_hot)"],
    tests=[Test(f"one_hot_pairs on {description}", _one_hot_probe(case), _one_hot_judge(description, case), weight)
           for description, case, weight in ONE_HOT_CASES],
)

# ---------------------------------------------------------------- input_ids


def _tensor_summary(value) -> dict:
    if not isinstance(value, torch.Tensor):
        return {"tensor": False, "got": describe(value)}
    return {"tensor": True, "dtype": str(value.dtype).replace("torch.", ""), "values": value}


def _ids_probe(input_ids, target_ids):
    return {"input_ids": _tensor_summary(input_ids), "target_ids": _tensor_summary(target_ids)}


def _ids_judge(got):
    from coursekit.judging.bigram import corpus_ids  # the encoded corpus is this exercise's answer: never shipped

    ids = corpus_ids()
    n = len(ids) - 1
    for name in ("input_ids", "target_ids"):
        item = got[name]
        if not item["tensor"]:
            return f"{name} should be a tensor of shape ({n},), got {item['got']}"
        values = item["values"]
        if values.shape != (n,):
            if values.shape == (n + 1,):
                return f"{name} has one entry per character ({n + 1}), but there are {n} pairs: use ids[:-1] and ids[1:]"
            if values.shape == (n - 1,):
                return f"{name} has {n - 1} entries, one pair too few: use ids[:-1] and ids[1:] (not ids[:-2])"
            return f"{name} should have shape ({n},): one entry per consecutive pair of the text, got {values.shape}"
        if item["dtype"] != "int64":
            return (f"{name} has dtype {item['dtype']}, but nn.Embedding and F.cross_entropy want ids of dtype "
                    f"torch.long (int64): convert with .long(), and use ids, not one-hot rows or floats")
    inputs, targets = got["input_ids"]["values"], got["target_ids"]["values"]
    if np.array_equal(inputs, ids[:-1]) and np.array_equal(targets, ids[1:]):
        return None
    if np.array_equal(inputs, targets):
        return "input_ids equals target_ids: the target of each pair is the next character, ids[1:]"
    if np.array_equal(inputs, ids[1:]) and np.array_equal(targets, ids[:-1]):
        return "input_ids and target_ids are swapped: inputs are ids[:-1], targets ids[1:]"
    return (f"for the text 'First' the pairs should start {ids[:4].tolist()} -> {ids[1:5].tolist()}, got "
            f"{inputs[:4].tolist()} -> {targets[:4].tolist()}: encode the whole text with encode, then "
            f"input_ids = ids[:-1], target_ids = ids[1:]")


check_input_ids = Check(
    exercise="input_ids",
    expects=["input_ids: a 1-D tensor of ids (every character but the last)",
             "target_ids: a 1-D tensor of ids (every character but the first)"],
    accepts=[lambda value: isinstance(value, torch.Tensor)] * 2,
    tests=[Test("input_ids and target_ids are the consecutive pairs of tinyshakespeare", _ids_probe, _ids_judge)],
)
