"""Notebook 02's model checks against forgers: submissions with no bigram model of their own, probed as the grader
probes them (the modules notebook 02's sandbox lacks cannot be imported) under a secret run seed, then judged.

- a "model" that takes its answers from whatever code the sandbox holds: the layers have the right shapes (the
  probes load them) but forward ignores them and returns what the checks' own code computes for the probe's
  seeded case, and generate follows the probe's cycle or samples from the logits the checks compute;
- a "model" that returns the probe's own expected values where the probe can compute them itself (the rigged
  cycle) and zeros elsewhere;
- a model with the right parameter shapes but constant outputs (an untrained model that never uses its layers).
Each earns (close to) nothing, while the reference earns every point under the same conditions."""

import importlib

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from check_family import probe_without
from coursekit import bigram, checks
from coursekit.checks import bigram_generate, bigram_models
from coursekit.grading import containment, references

NOTEBOOK = "02_bigram_mlp"
SECRETS = (977, 31337, 2**40 + 7)
POINTS = {"one_hot": (checks.check_bigram_one_hot_mlp, 10), "embedding": (checks.check_bigram_embedding_mlp, 5)}
SANDBOX_LACKS = sorted(references.forbidden_modules(NOTEBOOK))
# Where a forger looks for code that computes a bigram MLP from the probe's seeded weights: the reference, the
# judges' replays, the checks' own helpers; the first one the sandbox lets it import wins.
SOURCES = {
    "logits": [("coursekit.bigram", "BigramOneHotMLP"), ("coursekit.judging.bigram", "forward_candidates"),
               ("coursekit.checks.bigram_layers", "hidden_and_output")],
    "table": [("coursekit.judging.bigram", "logits_table"), ("coursekit.checks.bigram_generate", "_logits_table")],
}


def shipped(what: str):
    """(module name, function) of the first source of `what` the sandbox can import; ImportError if none."""
    for module, name in SOURCES[what]:
        try:
            return module, getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"no code that computes {what} is importable")


def shipped_logits(kind: str) -> torch.Tensor:
    """The logits the forward judge expects for the probe's own seeded case, from shipped code."""
    vocab, hidden, ids, weights = bigram_models._forward_case(kind)
    module, function = shipped("logits")
    if module == "coursekit.bigram":  # the reference itself, loaded with the probe's weights
        model = (bigram.BigramOneHotMLP if kind == "one_hot" else bigram.BigramEmbeddingMLP)(vocab, hidden)
        first = model.hidden if kind == "one_hot" else model.embedding
        with torch.no_grad():
            first.weight.copy_(weights[0])
            model.output.weight.copy_(weights[2])
            model.output.bias.copy_(weights[3])
            if kind == "one_hot":
                first.bias.copy_(weights[1])
            x = F.one_hot(ids, vocab).float() if kind == "one_hot" else ids
            return model(x)
    if module == "coursekit.judging.bigram":
        return torch.as_tensor(function(kind, weights, ids)[""]).float()
    h, out_w, out_b = function(kind, weights, ids)
    return torch.as_tensor(bigram_models.leaky_relu(h) @ out_w.T + out_b).float()


def followed_cycle(start_id: int, num_new: int) -> list[int]:
    successor = bigram_generate._cycle()
    ids = [start_id]
    for _ in range(num_new):
        ids.append(successor[ids[-1] % len(successor)])
    return ids


def forger(kind: str, forward, generate):
    """A class with the two layers the probes look for (so they can load weights) and the given forward/generate."""
    class Forged(nn.Module):
        def __init__(self, vocab_size, hidden_size=8):
            super().__init__()
            self.vocab_size = vocab_size
            self.first = nn.Linear(vocab_size, hidden_size) if kind == "one_hot" else \
                nn.Embedding(vocab_size, hidden_size)
            self.last = nn.Linear(hidden_size, vocab_size)

        def forward(self, x):
            return forward(self, x)

        @torch.no_grad()
        def generate(self, start_id, num_new, generator=None):
            return generate(self, start_id, num_new, generator)
    return Forged


def from_shipped_code(kind: str):
    def forward(self, x):
        return shipped_logits(kind)

    def generate(self, start_id, num_new, generator):
        if num_new == bigram_generate.CYCLE_STEPS:
            return followed_cycle(start_id, num_new)
        module, table = shipped("table")
        weights = bigram_generate._sampling_weights(kind, self.vocab_size)
        table = torch.as_tensor(table(kind, weights if module == "coursekit.judging.bigram" else self.vocab_size))
        ids = [start_id]
        for _ in range(num_new):
            ids.append(int(torch.multinomial(F.softmax(table[ids[-1]], -1), 1, generator=generator)))
        return ids
    return forger(kind, forward, generate)


def the_probes_own_expectations(kind: str):
    def forward(self, x):
        return torch.zeros(len(x), self.vocab_size)

    def generate(self, start_id, num_new, generator):
        if num_new == bigram_generate.CYCLE_STEPS:
            return followed_cycle(start_id, num_new)
        return [start_id] + torch.randint(self.vocab_size, (num_new,), generator=generator).tolist()
    return forger(kind, forward, generate)


def constant_outputs(kind: str):
    def forward(self, x):
        return torch.ones(len(x), self.vocab_size)

    def generate(self, start_id, num_new, generator):
        return bigram.generate_bigram(self, start_id, num_new, generator)

    forged = forger(kind, forward, generate)
    forged.encode_input = (lambda self, token_id: F.one_hot(torch.tensor([token_id]), self.vocab_size).float()) \
        if kind == "one_hot" else (lambda self, token_id: torch.tensor([token_id]))
    return forged


FORGERS = {"from shipped code": from_shipped_code, "the probe's own expectations": the_probes_own_expectations,
           "constant outputs": constant_outputs}


def points(kind: str, answer, seed: int) -> float:
    check, worth = POINTS[kind]
    return check.fraction(check.judge(probe_without(SANDBOX_LACKS, check, answer, seed), seed)) * worth


@pytest.mark.parametrize("kind", POINTS)
@pytest.mark.parametrize("seed", SECRETS)
def test_the_reference_earns_every_point_without_the_modules_the_sandbox_lacks(kind, seed):
    answer = bigram.BigramOneHotMLP if kind == "one_hot" else bigram.BigramEmbeddingMLP
    assert points(kind, answer, seed) == POINTS[kind][1]


@pytest.mark.parametrize("kind", POINTS)
@pytest.mark.parametrize("forgery", FORGERS)
def test_a_forged_model_earns_nothing_under_a_secret_seed(kind, forgery):
    earned = [round(points(kind, FORGERS[forgery](kind), seed), 2) for seed in SECRETS]
    assert earned == [0.0] * len(SECRETS), earned


def test_the_forger_really_reaches_the_answers_when_the_sandbox_lacks_nothing():
    """The forgery is no straw man: with every module importable (the reference too), it earns the forward
    points, so it fails above only because the sandbox holds nothing that computes the answers."""
    check, _ = POINTS["one_hot"]
    judged = check.judge(check.probe_all((from_shipped_code("one_hot"),), SECRETS[0]), SECRETS[0])
    assert [o.passed for o in judged if o.test.startswith("forward")] == [True]


def test_the_code_the_model_judges_replay_is_not_in_the_sandbox(tmp_path):
    staged = containment.stage(NOTEBOOK, [], tmp_path / "02")
    assert not (staged / "coursekit/bigram.py").exists()
    assert not (staged / "coursekit/judging/bigram.py").exists()
    assert "coursekit.judging.bigram" in containment.unavailable(NOTEBOOK)
    layers = (staged / "coursekit/checks/bigram_layers.py").read_text(encoding="utf-8")
    generate = (staged / "coursekit/checks/bigram_generate.py").read_text(encoding="utf-8")
    assert "def hidden_and_output" not in layers and "def _logits_table" not in generate


def corpus_ids_from_shipped_code() -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and target_ids without encoding anything: the corpus ids that the checks' own code computes."""
    for module in ("coursekit.judging.bigram", "coursekit.checks.bigram_pairs"):
        try:
            ids = torch.from_numpy(importlib.import_module(module).corpus_ids())
        except (ImportError, AttributeError):
            continue
        return ids[:-1], ids[1:]
    return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)  # nothing to copy: it hands in nothing


class InputIdsInTheSandbox:
    """check_input_ids as probe_without runs a check, the forged arguments made inside (under its blocker)."""

    def probe_all(self, arguments, seed):
        return checks.check_input_ids.probe_all(corpus_ids_from_shipped_code(), seed)


@pytest.mark.parametrize("seed", SECRETS[:2])
def test_input_ids_taken_from_the_checks_own_corpus_ids_earn_nothing(seed):
    check = checks.check_input_ids
    assert check.fraction(check.judge(probe_without(SANDBOX_LACKS, InputIdsInTheSandbox(), None, seed), seed)) == 0.0
    with_everything = check.judge(check.probe_all(corpus_ids_from_shipped_code(), seed), seed)
    assert check.fraction(with_everything) == 1.0  # no straw man: the ids are right, only out of reach
