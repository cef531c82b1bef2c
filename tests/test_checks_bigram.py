"""The notebook 02 checks: they pass the reference and valid alternatives, and name each plausible mistake."""

import copy
import re

import numpy
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F
from tqdm.auto import tqdm, trange

from coursekit import bigram, checks
from coursekit.checks import bigram_pairs, bigram_training
from coursekit.checks.core import ProbeError, seeded
from coursekit.judging import bigram as judged

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
    r"the last pair is missing; use ids\[:-1\]": lambda ids, v: (F.one_hot(ids[:-2], v).float(), F.one_hot(ids[1:-1], v).float()),
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
    r"the \(input, output\) pairs should be": lambda ids, v: (F.one_hot(ids[:-1], v).float(),
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
        return ids.tolist()  # kept as a tensor along the way, returned as the list[int] the spec asks for


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
        "its most likely one: generate takes the argmax": with_generate(bigram.BigramOneHotMLP, greedy_generate),
        "not the start id": with_generate(bigram.BigramOneHotMLP, start_only_generate),
        "pass generator=generator": with_generate(bigram.BigramOneHotMLP, global_rng_generate),
        "softmax over the vocabulary \\(dim=-1\\)": with_generate(bigram.BigramOneHotMLP, wrong_axis_generate),
        "use the hidden_size argument": FixedHidden,
        "softmax\\(logits / 0.8\\).*no temperature": with_generate(bigram.BigramOneHotMLP, temperature_generate(0.8)),
        "softmax\\(logits / 1.5\\).*no temperature": with_generate(bigram.BigramOneHotMLP, temperature_generate(1.5)),
        "softmax\\(logits / 0.9\\).*no temperature": with_generate(bigram.BigramOneHotMLP, temperature_generate(0.9)),
        "the start id followed by": with_generate(bigram.BigramOneHotMLP, new_ids_only_generate),
        "keep the biases": NoBias,
        "Linear -> LeakyReLU -> Linear": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(torch.tanh(self.hidden(x)))),
        "log-probabilities": with_forward(bigram.BigramOneHotMLP, lambda self, x: self.output(self.activation(self.hidden(x))).log_softmax(-1)),
    },
    "embedding": {
        "uses ReLU": with_forward(bigram.BigramEmbeddingMLP, relu_forward),
        "log-probabilities": with_forward(bigram.BigramEmbeddingMLP, lambda self, x: self.output(self.activation(self.embedding(x))).log_softmax(-1)),
        "no activation between": with_forward(bigram.BigramEmbeddingMLP, lambda self, x: self.output(self.embedding(x))),
        "its most likely one: generate takes the argmax": with_generate(bigram.BigramEmbeddingMLP, greedy_generate),
        "not the start id": with_generate(bigram.BigramEmbeddingMLP, start_only_generate),
        "has no nn.Embedding": LinearFirstLayer,
        "softmax\\(logits / 0.7\\).*no temperature": with_generate(bigram.BigramEmbeddingMLP, temperature_generate(0.7)),
        "softmax\\(logits / 1.1\\).*no temperature": with_generate(bigram.BigramEmbeddingMLP, temperature_generate(1.1)),
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


def notebook_train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
    """The notebook's loop, with every batch drawn up front (the same random numbers as drawing them in the loop)."""
    generator = torch.Generator().manual_seed(seed)
    batches = [torch.randint(len(inputs), (batch_size,), generator=generator) for _ in tqdm(range(num_steps))]
    return bigram.train_on_batches(model, inputs, targets, batches, learning_rate)


def train_by_permutations(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
    """Batches without replacement (a fresh permutation each step), zero_grad first, float(loss)."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(params=model.parameters(), lr=learning_rate)
    losses = []
    for step in trange(num_steps):
        optimizer.zero_grad(set_to_none=True)
        batch = torch.randperm(len(inputs), generator=generator)[:batch_size]
        loss = F.cross_entropy(model(inputs[batch]), targets[batch], reduction="mean")
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def train_with_class_ids(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
    """One-hot targets turned into class ids, a while loop, losses kept as a tensor's list."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), learning_rate)
    losses, step = [], 0
    while step < num_steps:
        batch = torch.randint(0, len(inputs), size=(batch_size,), generator=generator)
        target = targets[batch]
        loss = F.cross_entropy(model(inputs[batch]), target.argmax(dim=1) if target.dim() == 2 else target)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        step += 1
    return torch.stack(losses).tolist()


VALID_TRAINS = [notebook_train, train_by_permutations, train_with_class_ids]


def buggy_train(*, optimizer="adam", lr=None, batch=None, steps=None, order="zero backward step", targets_batch=None,
                generator=True, returns="losses", per_step_generator=False):
    """The notebook's loop with one thing changed (each keyword names a typical mistake)."""
    def train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        made = torch.Generator().manual_seed(seed)
        rate = learning_rate if lr is None else lr
        opt = (torch.optim.Adam(model.parameters(), lr=rate) if optimizer in ("adam", "new every step") else
               torch.optim.SGD(model.parameters(), lr=rate) if optimizer == "sgd" else
               torch.optim.Adam(list(model.parameters())[:2], lr=rate))
        losses = []
        for _ in range(num_steps if steps is None else steps):
            if optimizer == "new every step":
                opt = torch.optim.Adam(model.parameters(), lr=rate)
            if per_step_generator:
                made = torch.Generator().manual_seed(seed)
            size = batch if isinstance(batch, int) else batch_size
            chosen = (torch.randint(len(inputs), (size,), generator=made) if generator else
                      torch.randint(len(inputs), (size,)))
            if batch == "fixed":
                chosen = torch.arange(batch_size)
            elif batch == "no last":
                chosen = torch.randint(len(inputs) - 1, (batch_size,), generator=made)
            other = chosen if targets_batch is None else torch.randint(len(inputs), (batch_size,), generator=made)
            loss = F.cross_entropy(model(inputs[chosen]), targets[other])
            for action in order.split():
                {"zero": opt.zero_grad, "backward": loss.backward, "step": opt.step}[action]()
            losses.append(loss.item())
        return None if returns is None else losses
    return train


TRAIN_BUGS = {
    "gradients add up across steps": buggy_train(order="backward step"),
    "the gradients are zero at optimizer.step": buggy_train(order="backward zero step"),
    "the gradients are zero at optimizer.step()": buggy_train(order="zero step backward"),
    "parameters never change": buggy_train(order="zero backward"),
    "use torch.optim.Adam": buggy_train(optimizer="sgd"),
    "does not hold all of the model's parameters": buggy_train(optimizer="part"),
    "learning rate should be the learning_rate argument": buggy_train(lr=1e-2),
    "use the batch_size argument": buggy_train(batch=1024),
    r"should take \d+ steps": buggy_train(steps=1000),
    r"draw pair indices from 0 to 38.*torch.randint\(len\(inputs\)": buggy_train(batch="no last"),
    "the same batch: draw a new random batch": buggy_train(batch="fixed"),
    "the losses differ from Adam": buggy_train(optimizer="new every step"),
    "use the same batch for inputs and targets": buggy_train(targets_batch="another"),
    "two runs with the same seed drew different batches": buggy_train(generator=False),
    "every step trained on the same batch": buggy_train(per_step_generator=True),
    "should return the list of losses": buggy_train(returns=None),
}


@pytest.fixture(scope="module")
def trained():
    """A reference model trained fast: full-batch Adam on the pair counts (same loss as every pair of the text)."""
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: extra threads only add waiting on a busy machine
    model = bigram.BigramOneHotMLP(65)
    counts = judged.corpus_counts().float()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-2)
    losses = []
    for _ in range(bigram_training.TRAIN_STEPS):
        log_probs = F.log_softmax(model(torch.eye(65)), dim=-1)
        loss = -(counts * log_probs).sum() / counts.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    torch.set_num_threads(threads)
    return model, losses


@pytest.mark.parametrize("train", VALID_TRAINS)
def test_train_one_hot_accepts_valid_loops_and_does_not_change_the_model(trained, train):
    model, losses = trained
    before = copy.deepcopy(model.state_dict())
    checks.check_train_one_hot(train, model, losses)
    checks.check_train_one_hot(train, model, torch.tensor(losses))  # a tensor of losses is fine too
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


@pytest.mark.parametrize("mistake", TRAIN_BUGS)
def test_train_one_hot_names_the_mistake_in_the_loop(trained, mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_train_one_hot(TRAIN_BUGS[mistake], *trained)


def test_train_one_hot_names_the_mistake_in_what_was_trained(trained):
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
            checks.check_train_one_hot(notebook_train, *arguments)


# ---------------------------------------------------------------- input_ids


@pytest.fixture(scope="module")
def corpus():
    return torch.from_numpy(judged.corpus_ids())


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


@pytest.mark.parametrize("convert", [list, numpy.asarray], ids=["list", "numpy"])
def test_input_ids_of_the_wrong_kind_are_graded_as_a_failed_check_that_says_so(corpus, convert):
    """In the notebook the check raises TypeError; the grader's sandbox reports the same text as why the exercise
    could not be probed (worker: argument_problem), and every test then fails with it: no crash, no points."""
    from coursekit.grading import grader, judging, rubric, sandbox

    arguments = (convert(corpus[:-1].tolist()), convert(corpus[1:].tolist()))
    problem = checks.check_input_ids.argument_problem(arguments)
    assert re.search(r"argument 1 of the 'input_ids' check should be input_ids: a 1-D tensor of ids", problem)
    item = rubric.Resolved("02.input_ids", "02_bigram_mlp", "input_ids", 5, "check_input_ids",
                           ("input_ids", "target_ids"))
    graded = grader.judge(item, sandbox.Run(missing={"input_ids": problem}), 1, judging.Judges([], 2**30, 10.0))
    assert graded.earned == 0 and graded.reason == problem
    assert graded.outcomes and all(not o.passed and o.message == problem for o in graded.outcomes)


# ---------------------------------------------------------------- the grader's path, and speed


def test_probe_all_then_judge_passes_the_references(trained, corpus):
    cases = [
        (checks.check_one_hot_pairs, (bigram.one_hot_pairs,)),
        (checks.check_bigram_one_hot_mlp, (bigram.BigramOneHotMLP,)),
        (checks.check_bigram_embedding_mlp, (bigram.BigramEmbeddingMLP,)),
        (checks.check_train_one_hot, (notebook_train, *trained)),
        (checks.check_input_ids, (corpus[:-1], corpus[1:])),
    ]
    for check, arguments in cases:
        outcomes = check.judge(check.probe_all(tuple(arguments)))
        assert all(outcome.passed for outcome in outcomes), [o for o in outcomes if not o.passed]


def test_a_stub_is_reported_as_not_implemented():
    def stub(ids, vocab_size):
        raise NotImplementedError()
    results = checks.check_one_hot_pairs.probe_all((stub,))
    assert all(isinstance(data, ProbeError) and "not implemented" in data.message for _, data in results)


# ---------------------------------------------------------------- secret run seeds (the grader's inputs)

SECRET_SEEDS = [1, 2, 3, 4, 5]
VALID_MODELS = [(checks.check_bigram_one_hot_mlp, model) for model in (bigram.BigramOneHotMLP, OneHotSequential,
                                                                        OneHotReversed)] + \
    [(checks.check_bigram_embedding_mlp, model) for model in (bigram.BigramEmbeddingMLP, EmbeddingSequential,
                                                               EmbeddingFunctional)]


def grade(check, student, run_seed):
    outcomes = check.judge(check.probe_all(student, run_seed), run_seed)
    return check.fraction(outcomes), [o.message for o in outcomes if not o.passed]


@pytest.mark.parametrize("run_seed", SECRET_SEEDS)
def test_references_and_valid_alternatives_pass_under_secret_seeds(run_seed, trained):
    for implementation in (bigram.one_hot_pairs, one_hot_by_eye, one_hot_by_scatter):
        assert grade(checks.check_one_hot_pairs, (implementation,), run_seed) == (1.0, [])
    for check, model in VALID_MODELS:
        assert grade(check, (model,), run_seed) == (1.0, []), model.__name__
    for train in VALID_TRAINS:
        assert grade(checks.check_train_one_hot, (train, *trained), run_seed) == (1.0, []), train.__name__


@pytest.mark.parametrize("run_seed", SECRET_SEEDS)
def test_bugs_fail_under_secret_seeds(run_seed, trained):
    for mistake, bug in ONE_HOT_BUGS.items():
        assert grade(checks.check_one_hot_pairs, (bug,), run_seed)[0] < 1.0, mistake
    for kind, bugs in MODEL_BUGS.items():
        check = checks.check_bigram_one_hot_mlp if kind == "one_hot" else checks.check_bigram_embedding_mlp
        for mistake, bug in bugs.items():
            assert grade(check, (bug,), run_seed)[0] < 1.0, mistake
    for mistake, bug in TRAIN_BUGS.items():
        fraction, messages = grade(checks.check_train_one_hot, (bug, *trained), run_seed)
        assert fraction < 1.0 and not any("np.float" in m for m in messages), mistake


def test_replaying_the_public_outputs_passes_in_the_notebook_but_not_when_graded():
    public = {tuple(bigram_pairs._many_ids()[0]), tuple(bigram_pairs._other_vocabulary()[0])}

    def replay(ids, vocab_size):  # a lookup that only knows the notebook's inputs
        if tuple(ids.tolist()) in public or len(ids) <= 5:
            return bigram.one_hot_pairs(ids, vocab_size)
        return torch.zeros(len(ids) - 1, vocab_size), torch.zeros(len(ids) - 1, vocab_size)

    checks.check_one_hot_pairs(replay)  # the notebook's check passes
    for run_seed in (1, 2):
        assert grade(checks.check_one_hot_pairs, (replay,), run_seed)[0] <= 0.25


def test_a_train_that_only_handles_the_public_problem_fails_when_graded(trained):
    public = bigram_training.PUBLIC_PROBLEM

    def train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        if (batch_size, num_steps, learning_rate) == (public["batch_size"], public["num_steps"],
                                                      public["learning_rate"]):
            return notebook_train(model, inputs, targets, num_steps, batch_size, learning_rate, seed)
        return [4.17] * num_steps  # the notebook's own run (1000 steps) was done before

    assert grade(checks.check_train_one_hot, (train, *trained), 0)[0] >= 0.7  # its recipe passes in the notebook
    for run_seed in (1, 2):
        assert grade(checks.check_train_one_hot, (train, *trained), run_seed)[0] <= 0.3


# ---------------------------------------------------------------- forged claims (a red-team finding)

@pytest.mark.parametrize("check", [checks.check_bigram_one_hot_mlp, checks.check_bigram_embedding_mlp],
                         ids=["one_hot", "embedding"])
def test_the_model_judges_never_trust_weights_the_sandbox_reports(check):
    """The judges draw the weights the probe loaded from the run seed; a claim can only hold the logits and ids.

    A forger that reports zero weights with zero logits (or a model that hides its parameters and returns zeros)
    once passed the forward test, because the expected logits were computed from the claimed weights."""
    model_class = bigram.BigramOneHotMLP if check is checks.check_bigram_one_hot_mlp else bigram.BigramEmbeddingMLP
    for seed in (0, 3):
        honest = dict(check.probe_all((model_class,), seed))
        forward, sampling = (next(name for name in honest if word in name) for word in ("forward", "samples"))
        zeros = {"logits": honest[forward]["logits"] * 0, "first_weight": 0, "output_weight": 0}
        runs = [{"type": "list", "elements": ["int"], "ids": [0] * len(run["ids"])} for run in honest[sampling]["runs"]]
        forged = {**honest, forward: zeros, sampling: {**honest[sampling], "runs": runs,
                                                       "table": 0 * honest[forward]["logits"]}}
        verdicts = {o.test: o.passed for o in check.judge(list(forged.items()), seed)}
        assert not verdicts[forward] and not verdicts[sampling], verdicts
        assert all(o.passed for o in check.judge(list(honest.items()), seed))


class HidesItsParameters(bigram.BigramOneHotMLP):
    """forward ignores the layers the check loads its weights into, and parameters() shows nothing."""

    def parameters(self, recurse=True):
        return iter(())

    def forward(self, x):
        return torch.zeros(x.shape[0], x.shape[1])


def test_a_model_hiding_its_parameters_fails_forward():
    outcomes = checks.check_bigram_one_hot_mlp.judge(
        checks.check_bigram_one_hot_mlp.probe_all((HidesItsParameters,), 2), 2)
    assert not next(o for o in outcomes if "forward" in o.test).passed


@pytest.mark.parametrize("run_seed", [0, 2])
def test_train_judge_rebuilds_the_initial_weights_and_ignores_a_claim_about_them(trained, run_seed):
    """A forger that reports its own starting weights (zeros), with the losses and final weights Adam reaches from
    them on its batches, is consistent with its own lie: the judge must replay from the weights the probe put in."""
    check = checks.check_train_one_hot
    honest = dict(check.probe_all((notebook_train, *trained), run_seed))
    name = next(name for name in honest if name.startswith("train: Adam"))
    with seeded(run_seed, check.exercise, name):
        problem = bigram_training._problem()
        inputs, targets = bigram_training._data(problem)
    zero_start = bigram_training.SpyBigram(problem, seed=0)
    with torch.no_grad():
        for parameter in zero_start.parameters():
            parameter.zero_()
    batches = [torch.tensor(call["pairs"]) for call in honest[name]["calls"]]
    losses = bigram.train_on_batches(zero_start, inputs, targets, batches, problem["learning_rate"])
    final = [p.detach().clone().numpy() for p in zero_start.parameters()]
    zeros = [numpy.zeros_like(p) for p in final]
    forged = {**honest, name: {**honest[name], "returned": {"type": "list", "value": losses, "elements": ["float"]}, "final": final,
                               "initial": zeros}}
    verdicts = {o.test: o for o in check.judge(list(forged.items()), run_seed)}
    assert not verdicts[name].passed and "losses differ from Adam" in verdicts[name].message
    claimed = {**honest, name: {**honest[name], "initial": zeros}}  # the same honest run with a lie added
    assert all(o.passed for o in check.judge(list(claimed.items()), run_seed))
