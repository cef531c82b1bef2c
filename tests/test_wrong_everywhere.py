"""Points follow what a test proves (notebooks 01 and 02; 03-06 have theirs in tests/test_checks_*.py): "wrong
everywhere but it runs" notebooks earn (almost) nothing, and one
typical bug costs that exercise its core points.

Scored as the grader scores: for each exercise, `check.fraction(check.judge(check.probe_all(args)))` times the
exercise's points from the solution notebook's cell metadata.
"""

import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from coursekit import build, checks

ROOT = Path(__file__).resolve().parents[1]


def points(stem: str) -> dict[str, float]:
    cells = json.loads((ROOT / "solutions" / f"{stem}.ipynb").read_text())["cells"]
    return {meta["exercise"]: meta["points"] for meta in map(build.exercise_of, cells) if meta}


def score(exercise: str, *student, run_seed: int = 0) -> float:
    check = next(c for c in checks.CHECKS.values() if c.exercise == exercise)
    return check.fraction(check.judge(check.probe_all(student, run_seed), run_seed))


def notebook_score(stem: str, answers: dict) -> tuple[float, float]:
    table = points(stem)
    assert set(answers) == set(table), f"write a wrong answer for every exercise of {stem}"
    earned = sum(table[exercise] * score(exercise, *make()) for exercise, make in answers.items())
    return earned, sum(table.values())


# ---------------------------------------------------------------- notebooks 01 and 02 (checks01: verified)

def zeros_model(base):
    """The reference architecture whose forward returns zeros of the right shape and whose generate repeats."""
    def forward(self, x):
        return torch.zeros(x.shape[0], self.vocab_size)

    def generate(self, start_id, num_new, generator=None):
        return [start_id] + [0] * num_new
    return type("Zeros", (base,), {"forward": forward, "generate": generate})


def untrained():
    from coursekit import bigram

    torch.manual_seed(0)
    return bigram.BigramOneHotMLP(65), [4.17] * 1000  # a loop that did nothing: flat losses


def hf_untrained():
    from tokenizers import Tokenizer, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    return tokenizer


def characters(variant: int) -> dict:
    if variant == 0:
        return {"chars": lambda: (list("abcdefgh"),), "encode": lambda: (lambda text: [0] * len(text),),
                "decode": lambda: (lambda ids: "a" * len(ids),)}
    return {"chars": lambda: (sorted(set("hello world")),), "encode": lambda: (lambda text: [ord(c) for c in text],),
            "decode": lambda: (lambda ids: "".join(str(int(i)) for i in ids),)}


WRONG_01 = [
    {**characters(0),
     "pair_counts": lambda: (lambda ids: {},), "merge_pair": lambda: (lambda ids, pair, new_id: list(ids),),
     "train_bpe": lambda: (lambda text, size: {(0, 0): i for i in range(256, size)},),
     "bpe_encode": lambda: (lambda text, merges: list(text.encode("utf-8")),),
     "bpe_decode": lambda: (lambda ids, merges: "",), "hf_tokenizer": lambda: (hf_untrained(),),
     "gpt2_encode": lambda: (lambda text: [0] * len(text),)},
    {**characters(1),
     "pair_counts": lambda: (lambda ids: {(a, b): 1 for a, b in zip(ids, ids[2:])},),
     "merge_pair": lambda: (lambda ids, pair, new_id: [new_id if i in pair else i for i in ids],),
     "train_bpe": lambda: (lambda text, size: {(i % 256, (i + 1) % 256): i for i in range(256, size)},),
     "bpe_encode": lambda: (lambda text, merges: [256] * len(text),),
     "bpe_decode": lambda: (lambda ids, merges: " ".join(map(str, ids)),), "hf_tokenizer": lambda: (hf_untrained(),),
     "gpt2_encode": lambda: (lambda text: list(text.encode("utf-8")),)},
]


def wrong_02(variant: int) -> dict:
    from coursekit import bigram

    zeros = torch.zeros
    return {
        **characters(variant),
        "one_hot_pairs": lambda: ((lambda ids, v: (zeros(len(ids) - 1, v), zeros(len(ids) - 1, v))) if variant == 0
                                  else (lambda ids, v: (torch.eye(v)[ids[1:]], torch.eye(v)[ids[1:]])),),
        "bigram_one_hot_mlp": lambda: (zeros_model(bigram.BigramOneHotMLP),),
        "train_one_hot": untrained,
        "input_ids": lambda: ((zeros(1115393, dtype=torch.long), zeros(1115393, dtype=torch.long)) if variant == 0
                              else (torch.arange(1115393), torch.arange(1115393))),
        "bigram_embedding_mlp": lambda: (zeros_model(bigram.BigramEmbeddingMLP),),
    }


KNOWN_GAP = "issue 12, still open: the weights of 01's edge cases are not yet low enough for this case"


@pytest.mark.parametrize("variant", [0, pytest.param(1, marks=pytest.mark.xfail(reason=KNOWN_GAP, strict=True))])
def test_wrong_everywhere_01_scores_at_most_5_percent(variant):
    earned, possible = notebook_score("01_tokenization", WRONG_01[variant])
    assert earned <= 0.05 * possible, f"{earned:.2f} / {possible}"


@pytest.mark.parametrize("variant", [0, 1])
def test_wrong_everywhere_02_scores_at_most_5_percent(variant):
    earned, possible = notebook_score("02_bigram_mlp", wrong_02(variant))
    assert earned <= 0.05 * possible, f"{earned:.2f} / {possible}"


def one_bug_cases():
    from coursekit import bigram, bpe

    def shifted(text):
        return [i + 1 for i in checks.characters._char_ids(text)]

    def least_frequent(text, size):
        ids, merges = list(text.encode("utf-8")), {}
        for new_id in range(256, size):
            counts = bpe.pair_counts(ids)
            pair = min(counts, key=counts.get)
            merges[pair] = new_id
            ids = bpe.merge_pair(ids, pair, new_id)
        return merges

    def most_frequent_encode(text, merges):
        ids = list(text.encode("utf-8"))
        while True:
            counts = {p: n for p, n in bpe.pair_counts(ids).items() if p in merges}
            if not counts:
                return ids
            pair = max(counts, key=counts.get)
            ids = bpe.merge_pair(ids, pair, merges[pair])

    relu = type("Relu", (bigram.BigramOneHotMLP,), {"forward": lambda self, x: self.output(torch.relu(self.hidden(x)))})
    return {
        "encode": (shifted,),
        "pair_counts": (lambda ids: {p: 1 for p in zip(ids, ids[1:])},),
        "merge_pair": (lambda ids, pair, new_id: [new_id if (a, b) == pair else a for a, b in zip(ids, ids[1:] + [None])],),
        "train_bpe": (least_frequent,),
        "bpe_encode": (most_frequent_encode,),
        "bpe_decode": (lambda ids, merges: "".join(bpe.BPETokenizer(merges).vocab[i].decode("utf-8", "replace")
                                                   for i in ids),),
        "one_hot_pairs": (lambda ids, v: (nn.functional.one_hot(ids[:-1], v).double(),
                                          nn.functional.one_hot(ids[1:], v).double()),),
        "bigram_one_hot_mlp": (relu,),
    }


@pytest.mark.parametrize("exercise", ["encode", "pair_counts", "train_bpe", "one_hot_pairs", "bigram_one_hot_mlp", *(
    pytest.param(name, marks=pytest.mark.xfail(reason=KNOWN_GAP, strict=True))
    for name in ("merge_pair", "bpe_encode", "bpe_decode"))])
def test_one_typical_bug_loses_the_core_points(exercise):
    student = one_bug_cases()[exercise]
    for run_seed in (0, 1):
        assert score(exercise, *student, run_seed=run_seed) <= 0.3, exercise
