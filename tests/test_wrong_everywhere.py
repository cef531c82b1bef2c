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
from coursekit.judging import bigram as judged

ROOT = Path(__file__).resolve().parents[1]


def points(stem: str) -> dict[str, float]:
    cells = json.loads((ROOT / "solutions" / f"{stem}.ipynb").read_text())["cells"]
    return {meta["exercise"]: meta["points"] for meta in map(build.exercise_of, cells) if meta}


def score(exercise: str, *student, run_seed: int = 0) -> float:
    check = next(c for c in checks.CHECKS.values() if c.exercise == exercise)
    return check.fraction(check.judge(check.probe_all(student, run_seed), run_seed))


def notebook_score(stem: str, answers: dict, run_seed: int = 0) -> tuple[float, float]:
    table = points(stem)
    assert set(answers) == set(table), f"write a wrong answer for every exercise of {stem}"
    earned = sum(table[exercise] * score(exercise, *make(), run_seed=run_seed) for exercise, make in answers.items())
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

    def train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        return [4.17] * num_steps  # a loop that does nothing: flat losses

    torch.manual_seed(0)
    return train, bigram.BigramOneHotMLP(65), train(None, None, None)


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


def wrong_bpe_decode(ids, merges):
    return bytes(i % 256 for i in ids).decode("latin-1")  # every id read as one byte, merges never used


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
    # A student who read each exercise's first line only: right types, plausible-looking numbers, no real work.
    {"chars": lambda: (sorted("etaoin shrdlu"),), "encode": lambda: (lambda text: [ord(c) - 32 for c in text],),
     "decode": lambda: (lambda ids: "".join(chr(int(i) + 32) for i in ids),),
     "pair_counts": lambda: (lambda ids: {(ids[i], ids[i + 1]): i for i in range(len(ids) - 1)},),
     "merge_pair": lambda: (lambda ids, pair, new_id: [i for i in ids if i not in pair] + [new_id],),
     "train_bpe": lambda: (lambda text, size: dict(zip(zip(text.encode("utf-8"), text.encode("utf-8")[1:]),
                                                       range(256, size))),),
     "bpe_encode": lambda: (lambda text, merges: [merges.get(p, p[0]) for p in zip(text.encode(), text.encode()[1:])],),
     "bpe_decode": lambda: (wrong_bpe_decode,), "hf_tokenizer": lambda: (hf_untrained(),),
     "gpt2_encode": lambda: (lambda text: [ord(c) for c in text],)},
    # The same shortcut everywhere: treat everything as characters (code points), never as bytes or ranks.
    {"chars": lambda: (list(dict.fromkeys("First Citizen: Before we proceed")),),
     "encode": lambda: (lambda text: [ord(c) for c in text],), "decode": lambda: (lambda ids: "".join(map(chr, ids)),),
     "pair_counts": lambda: (lambda ids: {(a, b): ids.count(a) for a, b in zip(ids, ids[1:])},),
     "merge_pair": lambda: (lambda ids, pair, new_id: [int(i) for i in " ".join(map(str, ids)).replace(
         " ".join(map(str, pair)), str(new_id)).split()],),
     "train_bpe": lambda: (lambda text, size: {(ord(a), ord(b)): 256 + i for i, (a, b) in
                                               enumerate(list(zip(text, text[1:]))[:size - 256])},),
     "bpe_encode": lambda: (lambda text, merges: [ord(c) for c in text],),
     "bpe_decode": lambda: (lambda ids, merges: "".join(chr(i) for i in ids if i < 256),),
     "hf_tokenizer": lambda: (hf_untrained(),), "gpt2_encode": lambda: (lambda text: [ord(c) for c in text],)},
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


@pytest.mark.parametrize("variant", range(len(WRONG_01)))
@pytest.mark.parametrize("run_seed", [0, 1])
def test_wrong_everywhere_01_scores_at_most_5_percent(variant, run_seed):
    earned, possible = notebook_score("01_tokenization", WRONG_01[variant], run_seed)
    assert earned <= 0.05 * possible, f"{earned:.2f} / {possible}"


def plausible_wrong_02() -> dict:
    """Wrong at the core of every exercise, the way a hurried student errs, and it all runs."""
    from coursekit import bigram

    one_hot = nn.functional.one_hot

    def start_only_generate(self, start_id, num_new, generator=None):  # the start id fed back, global RNG
        probs = self(self.encode_input(start_id)).softmax(-1)
        return [start_id] + [int(torch.multinomial(probs, 1)) for _ in range(num_new)]

    def careless_train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-2)  # no zero_grad, the global RNG, fixed lr
        losses = []
        for _ in range(num_steps):
            batch = torch.randint(len(inputs), (batch_size,))
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        return losses

    linear = type("Linear", (bigram.BigramOneHotMLP,), {
        "forward": lambda self, x: self.output(self.hidden(x)), "generate": torch.no_grad()(start_only_generate)})
    relu = type("Relu", (bigram.BigramEmbeddingMLP,), {
        "forward": lambda self, x: self.output(torch.relu(self.embedding(x))),
        "generate": torch.no_grad()(start_only_generate)})
    corpus = torch.arange(1115394) % 65
    return {
        **characters(1),
        "one_hot_pairs": lambda: (lambda ids, v: (one_hot(ids[:-1]).float(), one_hot(ids[:-1]).float()),),
        "bigram_one_hot_mlp": lambda: (linear,),
        "train_one_hot": lambda: (careless_train, *untrained()[1:]),
        "input_ids": lambda: (corpus[1:], corpus[:-1]),
        "bigram_embedding_mlp": lambda: (relu,),
    }


@pytest.mark.parametrize("variant", [0, 1, 2])
def test_wrong_everywhere_02_scores_at_most_5_percent(variant):
    answers = wrong_02(variant) if variant < 2 else plausible_wrong_02()
    earned, possible = notebook_score("02_bigram_mlp", answers)
    assert earned <= 0.05 * possible, f"{earned:.2f} / {possible}"


def one_bug_02_cases() -> dict:
    """Notebook 02's exercises, each with one typical bug and everything else right."""
    from coursekit import bigram

    def no_zero_grad_train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
        losses = []
        for _ in range(num_steps):
            batch = torch.randint(len(inputs), (batch_size,), generator=generator)
            loss = nn.functional.cross_entropy(model(inputs[batch]), targets[batch])
            loss.backward()  # optimizer.zero_grad() forgotten: the gradients add up
            optimizer.step()
            losses.append(loss.item())
        return losses

    torch.manual_seed(0)
    model = bigram.BigramOneHotMLP(65)
    counts = judged.corpus_counts().float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(1000):  # a well-trained model, fast: full-batch Adam on the pair counts
        loss = -(counts * nn.functional.log_softmax(model(torch.eye(65)), dim=-1)).sum() / counts.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    no_activation = type("Linear", (bigram.BigramEmbeddingMLP,), {
        "forward": lambda self, ids: self.output(self.embedding(ids))})
    swapped = (lambda ids, v: (nn.functional.one_hot(ids[1:], v).float(), nn.functional.one_hot(ids[:-1], v).float()))
    return {
        "train_one_hot": (no_zero_grad_train, model, losses),
        "bigram_embedding_mlp": (no_activation,),
        "one_hot_pairs": (swapped,),
    }


@pytest.mark.parametrize("exercise", ["train_one_hot", "bigram_embedding_mlp", "one_hot_pairs"])
def test_one_typical_02_bug_loses_the_core_points(exercise):
    student = one_bug_02_cases()[exercise]
    for run_seed in (0, 1):
        assert score(exercise, *student, run_seed=run_seed) <= 0.3, exercise


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


@pytest.mark.parametrize("exercise", ["encode", "pair_counts", "merge_pair", "train_bpe", "bpe_encode", "bpe_decode",
                                      "one_hot_pairs", "bigram_one_hot_mlp"])
def test_one_typical_bug_loses_the_core_points(exercise):
    student = one_bug_cases()[exercise]
    for run_seed in (0, 1):
        assert score(exercise, *student, run_seed=run_seed) <= 0.3, exercise
