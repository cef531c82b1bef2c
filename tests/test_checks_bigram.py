"""The notebook 02 checks: they pass the reference and valid alternatives, and name each plausible mistake."""

import copy
import time

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit import bigram
from coursekit.checks import bigram as checks
from coursekit.checks.core import ProbeError

# ---------------------------------------------------------------- one_hot_pairs


def one_hot_by_eye(ids, vocab_size):
    eye = torch.eye(vocab_size)
    return eye[ids[:-1]], eye[ids[1:]]


def one_hot_by_scatter(ids, vocab_size):
    def rows(which):
        return torch.zeros(len(which), vocab_size).scatter_(1, which[:, None], 1.0)
    return rows(ids[:-1]), rows(ids[1:])


@pytest.mark.parametrize("implementation", [bigram.one_hot_pairs, one_hot_by_eye, one_hot_by_scatter])
def test_one_hot_pairs_accepts_valid_implementations(implementation):
    checks.check_one_hot_pairs(implementation)


ONE_HOT_BUGS = {
    "the last pair .* is missing": lambda ids, v: (F.one_hot(ids[:-2], v).float(), F.one_hot(ids[1:-1], v).float()),
    "equals inputs_one_hot": lambda ids, v: (F.one_hot(ids[:-1], v).float(), F.one_hot(ids[:-1], v).float()),
    "F.one_hot returns integers": lambda ids, v: (F.one_hot(ids[:-1], v), F.one_hot(ids[1:], v)),
    "num_classes=vocab_size": lambda ids, v: (F.one_hot(ids[:-1]).float(), F.one_hot(ids[1:]).float()),
    "swapped": lambda ids, v: (F.one_hot(ids[1:], v).float(), F.one_hot(ids[:-1], v).float()),
    "one row per character": lambda ids, v: (F.one_hot(ids, v).float(), F.one_hot(ids.roll(-1), v).float()),
    r"\(4, 6\)": lambda ids, v: (F.one_hot(ids[:-1], v).float().T, F.one_hot(ids[1:], v).float().T),
    "should return two tensors": lambda ids, v: torch.stack([F.one_hot(ids[:-1], v), F.one_hot(ids[1:], v)]),
    "dtype float64.*float32": lambda ids, v: (F.one_hot(ids[:-1], v).double(), F.one_hot(ids[1:], v).double()),
    "dtype float64.*not .double": lambda ids, v: (torch.eye(v, dtype=torch.float64)[ids[:-1]],
                                                  torch.eye(v, dtype=torch.float64)[ids[1:]]),
    "F.one_hot returns integers, so add .float": lambda ids, v: (F.one_hot(ids[:-1], v).long(), F.one_hot(ids[1:], v)),
    r"should have shape \(4, 6\)": lambda ids, v: (F.one_hot(ids[:-1], 65).float(), F.one_hot(ids[1:], 65).float()),
    "the \(input, output\) pairs should be": lambda ids, v: (F.one_hot(ids[:-1], v).float(),
                                                                F.one_hot(ids[1:].roll(1), v).float()),
    "inputs and outputs are swapped": lambda ids, v: (F.one_hot(ids[1:], v).float(), F.one_hot(ids[:-1], v).float()),
}


@pytest.mark.parametrize("mistake", ONE_HOT_BUGS)
def test_one_hot_pairs_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_one_hot_pairs(ONE_HOT_BUGS[mistake])


# ---------------------------------------------------------------- the two models


class OneHotSequential(nn.Module):
    """An nn.Sequential with other names, and its own generate loop."""

    def __init__(self, vocab_size, hidden_size=8):
        super().__init__()
        self.vocab_size = vocab_size
        self.net = nn.Sequential(nn.Linear(vocab_size, hidden_size), nn.LeakyReLU(), nn.Linear(hidden_size, vocab_size))

    def forward(self, x):
        return self.net(x)

    @torch.no_grad()
    def generate(self, start_id, num_new, generator=None):
        ids = torch.tensor([start_id])
        for _ in range(num_new):
            probs = self(F.one_hot(ids[-1:], self.vocab_size).float()).softmax(-1)
            ids = torch.cat([ids, torch.multinomial(probs, 1, generator=generator)[0]])
        return ids  # a tensor is fine too


class OneHotReversed(nn.Module):
    """Layers registered output-first, functional activation, sampling through torch.distributions-free cumsum."""

    def __init__(self, vocab_size, hidden_size=8):
        super().__init__()
        self.vocab_size = vocab_size
        self.to_logits = nn.Linear(hidden_size, vocab_size)
        self.to_hidden = nn.Linear(vocab_size, hidden_size)

    def forward(self, x):
        return self.to_logits(F.leaky_relu(self.to_hidden(x)))

    @torch.no_grad()
    def generate(self, start_id, num_new, generator=None):
        ids = [start_id]
        for _ in range(num_new):
            probs = torch.softmax(self(torch.eye(self.vocab_size)[ids[-1]]), dim=0)
            ids.append(int(torch.searchsorted(probs.cumsum(0), torch.rand(1, generator=generator)).clamp(max=len(probs) - 1)))
        return ids


class EmbeddingSequential(nn.Module):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__()
        self.layers = nn.Sequential(nn.Embedding(vocab_size, hidden_size), nn.LeakyReLU(), nn.Linear(hidden_size, vocab_size))

    def forward(self, ids):
        return self.layers(ids)

    @torch.no_grad()
    def generate(self, start_id, num_new, generator=None):
        ids = [start_id]
        for _ in range(num_new):
            probs = F.softmax(self(torch.tensor(ids[-1:]))[0], dim=-1)
            ids.append(torch.multinomial(probs, 1, generator=generator).item())
        return ids


class EmbeddingFunctional(bigram.BigramEmbeddingMLP):
    def forward(self, ids):
        return F.linear(F.leaky_relu(self.embedding(ids), 0.01), self.output.weight, self.output.bias)


@pytest.mark.parametrize("model_class", [bigram.BigramOneHotMLP, OneHotSequential, OneHotReversed])
def test_one_hot_mlp_accepts_valid_implementations(model_class):
    checks.check_bigram_one_hot_mlp(model_class)


@pytest.mark.parametrize("model_class", [bigram.BigramEmbeddingMLP, EmbeddingSequential, EmbeddingFunctional])
def test_embedding_mlp_accepts_valid_implementations(model_class):
    checks.check_bigram_embedding_mlp(model_class)


def with_forward(base, forward):
    return type("Buggy", (base,), {"forward": forward})


def with_generate(base, generate):
    return type("Buggy", (base,), {"generate": torch.no_grad()(generate)})


def relu_forward(self, x):
    first = self.hidden if hasattr(self, "hidden") else self.embedding
    return self.output(torch.relu(first(x)))


def greedy_generate(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        ids.append(int(self(self.encode_input(ids[-1])).argmax()))
    return ids


def start_only_generate(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = self(self.encode_input(start_id)).softmax(-1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return ids


def global_rng_generate(self, start_id, num_new, generator=None):
    return bigram.generate_bigram(self, start_id, num_new, generator=None)


def wrong_axis_generate(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = self(self.encode_input(ids[-1])).softmax(0)  # (1, V): every entry becomes 1
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return ids


def temperature_generate(temperature):
    def generate(self, start_id, num_new, generator=None):
        ids = [start_id]
        for _ in range(num_new):
            probs = (self(self.encode_input(ids[-1])) / temperature).softmax(-1)
            ids.append(int(torch.multinomial(probs, 1, generator=generator)))
        return ids
    return generate


def new_ids_only_generate(self, start_id, num_new, generator=None):
    return bigram.generate_bigram(self, start_id, num_new, generator=generator)[1:]


class NoBias(bigram.BigramOneHotMLP):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, hidden_size)
        self.hidden = nn.Linear(vocab_size, hidden_size, bias=False)
        self.output = nn.Linear(hidden_size, vocab_size, bias=False)


class FixedHidden(bigram.BigramOneHotMLP):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, 8)


class LinearFirstLayer(bigram.BigramOneHotMLP):
    """An 'embedding' model that still multiplies one-hot rows."""


MODEL_BUGS = {
    "one_hot": {
        "uses ReLU": with_forward(bigram.BigramOneHotMLP, relu_forward),
        "returns probabilities": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(self.activation(self.hidden(x))).softmax(-1)),
        "no activation between": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(self.hidden(x))),
        "activation after the last layer": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.activation(self.output(self.activation(self.hidden(x))))),
        "most likely id \\(argmax\\)": with_generate(bigram.BigramOneHotMLP, greedy_generate),
        "not the start id": with_generate(bigram.BigramOneHotMLP, start_only_generate),
        "pass generator=generator": with_generate(bigram.BigramOneHotMLP, global_rng_generate),
        "softmax over the vocabulary \\(dim=-1\\)": with_generate(bigram.BigramOneHotMLP, wrong_axis_generate),
        "use the hidden_size argument": FixedHidden,
        "softmax\\(logits / 0.8\\).*no temperature": with_generate(bigram.BigramOneHotMLP, temperature_generate(0.8)),
        "softmax\\(logits / 1.5\\).*no temperature": with_generate(bigram.BigramOneHotMLP, temperature_generate(1.5)),
        "the start id followed by": with_generate(bigram.BigramOneHotMLP, new_ids_only_generate),
        "keep the biases": NoBias,
        "Linear -> LeakyReLU -> Linear": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(torch.tanh(self.hidden(x)))),
        "log-probabilities": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(self.activation(self.hidden(x))).log_softmax(-1)),
    },
    "embedding": {
        "uses ReLU": with_forward(bigram.BigramEmbeddingMLP, relu_forward),
        "log-probabilities": with_forward(bigram.BigramEmbeddingMLP, lambda self, x: self.output(self.activation(self.embedding(x))).log_softmax(-1)),
        "no activation between": with_forward(bigram.BigramEmbeddingMLP, lambda self, x: self.output(self.embedding(x))),
        "most likely id \\(argmax\\)": with_generate(bigram.BigramEmbeddingMLP, greedy_generate),
        "not the start id": with_generate(bigram.BigramEmbeddingMLP, start_only_generate),
        "has no nn.Embedding": LinearFirstLayer,
        "softmax\\(logits / 0.7\\).*no temperature": with_generate(bigram.BigramEmbeddingMLP, temperature_generate(0.7)),
        "pass generator=generator": with_generate(bigram.BigramEmbeddingMLP, global_rng_generate),
        "softmax over the vocabulary \\(dim=-1\\)": with_generate(bigram.BigramEmbeddingMLP, wrong_axis_generate),
        "returns probabilities": with_forward(bigram.BigramEmbeddingMLP, lambda self, x: self.output(self.activation(self.embedding(x))).softmax(-1)),
        "the start id followed by": with_generate(bigram.BigramEmbeddingMLP, new_ids_only_generate),
    },
}


@pytest.mark.parametrize("kind, mistake", [(kind, mistake) for kind in MODEL_BUGS for mistake in MODEL_BUGS[kind]])
def test_model_checks_name_the_mistake(kind, mistake):
    check = checks.check_bigram_one_hot_mlp if kind == "one_hot" else checks.check_bigram_embedding_mlp
    with pytest.raises(AssertionError, match=mistake):
        check(MODEL_BUGS[kind][mistake])


def test_an_instance_instead_of_the_class_is_refused_with_what_was_expected():
    with pytest.raises(TypeError, match="the class BigramOneHotMLP itself"):
        checks.check_bigram_one_hot_mlp(bigram.BigramOneHotMLP(65))


# ---------------------------------------------------------------- train_one_hot


@pytest.fixture(scope="module")
def trained():
    """A reference model trained fast: full-batch Adam on the pair counts (same loss as every pair of the text)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add waiting on a busy machine
    model = bigram.BigramOneHotMLP(65)
    counts = checks.corpus_counts().float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(checks.TRAIN_STEPS):
        log_probs = F.log_softmax(model(torch.eye(65)), dim=-1)
        loss = -(counts * log_probs).sum() / counts.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    torch.set_num_threads(threads)
    return model, losses


def test_train_one_hot_accepts_a_trained_model_and_does_not_change_it(trained):
    model, losses = trained
    before = copy.deepcopy(model.state_dict())
    checks.check_train_one_hot(model, losses)
    checks.check_train_one_hot(model, torch.tensor(losses))  # a tensor of losses is fine too
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_train_one_hot_names_the_mistake(trained):
    model, losses = trained
    torch.manual_seed(1)
    untrained = bigram.BigramOneHotMLP(65)
    weight = torch.ones((), requires_grad=True)
    losses_with_graphs = [weight * loss for loss in losses]  # appended `loss` instead of `loss.item()`
    cases = [
        ((model, losses_with_graphs), "carry their computation graph: append loss.item"),
        ((model, losses[:10]), "one value per training step"),
        ((untrained, [4.2] * 1000), "barely moved"),
        ((untrained, losses), "cross-entropy on all of tinyshakespeare is 4.*optimizer.zero_grad"),
        ((bigram.BigramOneHotMLP(27), losses), r"shape \(65, 65\)"),
        ((model, [loss + 1.0 for loss in losses]), "pass the model you trained"),
    ]
    for arguments, message in cases:
        with pytest.raises(AssertionError, match=message):
            checks.check_train_one_hot(*arguments)


# ---------------------------------------------------------------- input_ids


@pytest.fixture(scope="module")
def corpus():
    return torch.from_numpy(checks.corpus_ids())


def test_input_ids_accepts_valid_tensors(corpus):
    checks.check_input_ids(corpus[:-1], corpus[1:])
    pairs = corpus.unfold(0, 2, 1)  # (N - 1, 2): every window of two
    checks.check_input_ids(pairs[:, 0].contiguous(), pairs[:, 1].contiguous())


def test_input_ids_names_the_mistake(corpus):
    cases = [
        ((corpus[:-1].float(), corpus[1:].float()), "want ids of dtype torch.long"),
        ((corpus[:-1], corpus[:-1]), "equals target_ids"),
        ((corpus[1:], corpus[:-1]), "swapped"),
        ((corpus[:-2], corpus[1:-1]), "one pair too few"),
        ((corpus, corpus), "one entry per character"),
        ((corpus[:-1].int(), corpus[1:].int()), r"dtype int32.*torch.long \(int64\): convert with .long\(\)"),
    ]
    for arguments, message in cases:
        with pytest.raises(AssertionError, match=message):
            checks.check_input_ids(*arguments)
    with pytest.raises(TypeError, match="a 1-D tensor of ids"):
        checks.check_input_ids(corpus[:-1].tolist(), corpus[1:])


# ---------------------------------------------------------------- the grader's path, and speed


def test_probe_all_then_judge_passes_the_references(trained, corpus):
    cases = [
        (checks.check_one_hot_pairs, (bigram.one_hot_pairs,)),
        (checks.check_bigram_one_hot_mlp, (bigram.BigramOneHotMLP,)),
        (checks.check_bigram_embedding_mlp, (bigram.BigramEmbeddingMLP,)),
        (checks.check_train_one_hot, trained),
        (checks.check_input_ids, (corpus[:-1], corpus[1:])),
    ]
    for check, arguments in cases:
        check.probe_all(tuple(arguments))  # the first call pays for one-time warm-up (torch, reading the corpus)
        start = time.perf_counter()
        outcomes = check.judge(check.probe_all(tuple(arguments)))
        assert all(outcome.passed for outcome in outcomes), [o for o in outcomes if not o.passed]
        assert time.perf_counter() - start < 2.5, f"{check.exercise} is too slow"


def test_a_stub_is_reported_as_not_implemented():
    def stub(ids, vocab_size):
        raise NotImplementedError()
    results = checks.check_one_hot_pairs.probe_all((stub,))
    assert all(isinstance(data, ProbeError) and "not implemented" in data.message for _, data in results)


# ---------------------------------------------------------------- secret run seeds (the grader's inputs)

SECRET_SEEDS = [1, 2, 3]


def grade(check, student, run_seed):
    outcomes = check.judge(check.probe_all(student, run_seed), run_seed)
    return check.fraction(outcomes), [o.message for o in outcomes if not o.passed]


@pytest.mark.parametrize("run_seed", SECRET_SEEDS)
def test_references_pass_under_secret_seeds(run_seed):
    assert grade(checks.check_one_hot_pairs, (bigram.one_hot_pairs,), run_seed) == (1.0, [])
    for implementation in (one_hot_by_eye, one_hot_by_scatter):
        assert grade(checks.check_one_hot_pairs, (implementation,), run_seed) == (1.0, [])
    for check, model in ((checks.check_bigram_one_hot_mlp, bigram.BigramOneHotMLP),
                         (checks.check_bigram_embedding_mlp, bigram.BigramEmbeddingMLP), 
                         (checks.check_bigram_one_hot_mlp, OneHotReversed)):
        assert grade(check, (model,), run_seed) == (1.0, [])


@pytest.mark.parametrize("run_seed", SECRET_SEEDS)
def test_bugs_fail_under_secret_seeds(run_seed):
    for mistake, bug in ONE_HOT_BUGS.items():
        assert grade(checks.check_one_hot_pairs, (bug,), run_seed)[0] < 1.0, mistake
    for kind, bugs in MODEL_BUGS.items():
        check = checks.check_bigram_one_hot_mlp if kind == "one_hot" else checks.check_bigram_embedding_mlp
        for mistake, bug in bugs.items():
            assert grade(check, (bug,), run_seed)[0] < 1.0, mistake


def test_replaying_the_public_outputs_passes_in_the_notebook_but_not_when_graded():
    public = {}
    for test in checks.check_one_hot_pairs.tests:
        probe_ids = checks._many_ids() if "many" in test.name else None
        if probe_ids:
            public[tuple(probe_ids)] = True

    def replay(ids, vocab_size):  # a lookup that only knows the notebook's inputs
        if tuple(ids.tolist()) in public or len(ids) <= 5:
            return bigram.one_hot_pairs(ids, vocab_size)
        return torch.zeros(len(ids) - 1, vocab_size), torch.zeros(len(ids) - 1, vocab_size)

    checks.check_one_hot_pairs(replay)  # the notebook's check passes
    fraction, _ = grade(checks.check_one_hot_pairs, (replay,), 1)
    assert fraction <= 0.5
