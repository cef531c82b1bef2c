"""Notebook 02's checks against mistakes a student makes, written from the student notebook: each is named under
the public seed and under secret seeds, and valid code written differently passes under both."""

import re

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from check_family import student_tests
from test_checks_bigram import trained  # noqa: F401  (the fixture: a reference model and its losses)
from coursekit import bigram, checks

OneHot, Embedding = bigram.BigramOneHotMLP, bigram.BigramEmbeddingMLP


def with_forward(base, forward):
    return type(f"{base.__name__}WithForward", (base,), {"forward": forward})


def with_generate(base, generate):
    return type(f"{base.__name__}WithGenerate", (base,), {"generate": torch.no_grad()(generate)})


def model_input(model, token_id):
    return model.encode_input(token_id)


def sampler(next_id):
    """A generate loop whose next id is next_id(model, probs_or_logits, generator): one thing changed each."""
    def generate(self, start_id, num_new, generator=None):
        ids = [start_id]
        for _ in range(num_new):
            ids.append(int(next_id(self(model_input(self, ids[-1])), generator)))
        return ids
    return generate


def own_generator(self, start_id, num_new, generator=None):
    generator = torch.Generator().manual_seed(0)  # ignores the one it was given
    return bigram.generate_bigram(self, start_id, num_new, generator)


def generator_or_a_new_one(self, start_id, num_new, generator=None):
    generator = generator or torch.Generator()  # without a generator, every call gives the same ids
    return bigram.generate_bigram(self, start_id, num_new, generator)


def seeds_the_global_rng(self, start_id, num_new, generator=None):
    torch.manual_seed(42)
    return bigram.generate_bigram(self, start_id, num_new, None)


def one_short(self, start_id, num_new, generator=None):
    return bigram.generate_bigram(self, start_id, num_new - 1, generator)


def two_back(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = F.softmax(self(model_input(self, ids[-2] if len(ids) > 1 else ids[-1])), dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return ids


def all_from_the_start(self, start_id, num_new, generator=None):
    probs = F.softmax(self(model_input(self, start_id)), dim=-1)[0]
    return [start_id] + torch.multinomial(probs, num_new, replacement=True, generator=generator).tolist()


def by_cumsum(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = F.softmax(self(model_input(self, ids[-1]))[0], dim=-1)
        ids.append(min(int((probs.cumsum(0) < torch.rand((), generator=generator)).sum()), len(probs) - 1))
    return ids


def as_a_tensor(self, start_id, num_new, generator=None):
    ids = torch.tensor([start_id])
    for _ in range(num_new):
        logits = self(model_input(self, int(ids[-1])))
        ids = torch.cat([ids, torch.multinomial(logits.log_softmax(-1).exp(), 1, generator=generator)[0]])
    return ids


def zero_d_tensors(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        ids.append(torch.multinomial(F.softmax(self(model_input(self, int(ids[-1]))), -1), 1, generator=generator)[0, 0])
    return ids


def capped_at_200(self, start_id, num_new, generator=None):
    return bigram.generate_bigram(self, start_id, min(num_new, 200), generator)


def by_stable_exp(self, start_id, num_new, generator=None):
    """Softmax by hand, the largest logit subtracted first, and each id read with .item()."""
    ids = [start_id]
    for _ in range(num_new):
        logits = self(model_input(self, ids[-1]))
        weights = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
        ids.append(torch.multinomial(weights / weights.sum(), 1, generator=generator).item())
    return ids


def by_log_softmax_in_double(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = F.log_softmax(self(model_input(self, ids[-1])).double(), dim=-1).exp()
        ids += torch.multinomial(probs, 1, generator=generator)[0].tolist()
    return ids


class SteeperLeaky(OneHot):
    def forward(self, x):
        return self.output(F.leaky_relu(self.hidden(x), 0.2))


class HiddenDropout(OneHot):
    def forward(self, x):
        return self.output(F.dropout(self.activation(self.hidden(x)), 0.2))


class SigmoidHidden(OneHot):
    def forward(self, x):
        return self.output(torch.sigmoid(self.hidden(x)))


class PlusInput(OneHot):
    def forward(self, x):
        return self.output(self.activation(self.hidden(x))) + x


class Vocab65(OneHot):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(65, hidden_size)
        self.vocab_size = vocab_size


class ByMatmul(OneHot):
    def forward(self, x):
        return F.leaky_relu(x @ self.hidden.weight.T + self.hidden.bias) @ self.output.weight.T + self.output.bias


class SequentialOneHot(nn.Module):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__()
        self.vocab_size = vocab_size
        self.layers = nn.Sequential(nn.Linear(vocab_size, hidden_size), nn.LeakyReLU(negative_slope=0.01),
                                    nn.Linear(hidden_size, vocab_size))

    def forward(self, x):
        return self.layers(x)

    def encode_input(self, token_id):
        return F.one_hot(torch.tensor(token_id), self.vocab_size).float()[None]

    generate = torch.no_grad()(by_cumsum)


class EmbeddingDropout(Embedding):
    def forward(self, ids):
        return self.output(F.dropout(self.activation(self.embedding(ids)), 0.1, training=True))


class GeluHidden(Embedding):
    def forward(self, ids):
        return self.output(F.gelu(self.embedding(ids)))


class ScaledLogits(Embedding):
    def forward(self, ids):
        return self.output(self.activation(self.embedding(ids))) / 8 ** 0.5


class OneHotTimesTable(Embedding):
    def forward(self, ids):  # F.one_hot without num_classes: as wide as the largest id + 1
        return self.output(self.activation(F.one_hot(ids).float() @ self.embedding.weight))


class Residual(Embedding):
    def forward(self, ids):
        vectors = self.embedding(ids)
        return self.output(self.activation(vectors) + vectors)


class SoftmaxHidden(Embedding):
    def forward(self, ids):
        return self.output(F.softmax(self.embedding(ids), dim=-1))


class NormalisedVectors(Embedding):
    def forward(self, ids):
        return self.output(self.activation(F.normalize(self.embedding(ids), dim=-1)))


class NoOutputBias(Embedding):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, hidden_size)
        self.output = nn.Linear(hidden_size, vocab_size, bias=False)


class RowsOfTheTable(Embedding):
    def forward(self, ids):
        return F.linear(F.leaky_relu(self.embedding.weight[ids.long()]), self.output.weight, self.output.bias)


class LongIds(Embedding):
    def forward(self, ids):
        return self.output(self.activation(self.embedding(ids.to(torch.int64))))

    generate = torch.no_grad()(by_log_softmax_in_double)


def among_the_top_10(logits, generator):
    """A top-10 sampler: right on a vocabulary of 10 or fewer, a cut of most of the real one of 65."""
    values, indices = logits[0].topk(min(10, logits.shape[-1]))
    return indices[torch.multinomial(F.softmax(values, -1), 1, generator=generator)]


GENERATE_BUGS = [
    ("generators seeded differently gave the same ids", own_generator),
    ("generators seeded differently gave the same ids", seeds_the_global_rng),
    ("two calls without a generator.*gave the same ids.*global RNG", generator_or_a_new_one),
    ("should return 10 ids", one_short),
    ("should give", two_back),
    ("feed the model the last id", all_from_the_start),
    ("with a model that always follows id a by one certain id",
     sampler(lambda logits, g: torch.multinomial(torch.sigmoid(logits), 1, generator=g))),
    ("do not follow softmax|follow softmax\\(logits / ",
     sampler(lambda logits, g: torch.multinomial(F.relu(logits) + 1e-9, 1, generator=g))),
    ("softmax\\(logits / 0.5\\)",
     sampler(lambda logits, g: torch.multinomial(F.softmax(logits, -1) ** 2, 1, generator=g))),
    ("softmax\\(relu\\(logits\\)\\)",
     sampler(lambda logits, g: torch.multinomial(F.softmax(F.relu(logits), -1), 1, generator=g))),
    ("every step draws the same random number|generator made or re-seeded inside the loop",
     sampler(lambda logits, g: torch.multinomial(F.softmax(logits, -1), 1, generator=torch.Generator().manual_seed(3)))),
    ("uniform|follow softmax\\(logits / |do not follow softmax",
     sampler(lambda logits, g: torch.multinomial(logits.abs(), 1, generator=g))),
    ("should return a list of ints \\(list\\[int\\]\\), got a Tensor", as_a_tensor),
    ("should return a list of Python ints, but the list holds Tensor", zero_d_tensors),
    ("should return 3001 ids .*got 201: generate exactly num_new new ids.*no cap", capped_at_200),
    ("shifted up by 100.*raised RuntimeError.*F.softmax\\(logits, dim=-1\\), not the raw logits or torch.exp",
     sampler(lambda logits, g: torch.multinomial(torch.exp(logits), 1, generator=g))),
    ("raised RuntimeError.*Pass it probabilities, F.softmax\\(logits, dim=-1\\)",
     sampler(lambda logits, g: torch.multinomial(logits, 1, generator=g))),
    ("samples only among the 10 most likely tokens.*no top-k cut", sampler(among_the_top_10)),
]


def one_hot_without_num_classes(self, start_id, num_new, generator=None):
    ids = [start_id]
    for _ in range(num_new):
        probs = F.softmax(self(F.one_hot(torch.tensor([ids[-1]])).float()), dim=-1)
        ids.append(int(torch.multinomial(probs, 1, generator=generator)))
    return ids


def with_first_layer(base, **options):
    """The embedding model with nn.Embedding options set (each one a mistake)."""
    class WithOptions(base):
        def __init__(self, vocab_size, hidden_size=8):
            super().__init__(vocab_size, hidden_size)
            self.embedding = nn.Embedding(vocab_size, hidden_size, **options)
    return WithOptions


class DropoutModule(OneHot):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, hidden_size)
        self.layers = nn.Sequential(self.hidden, self.activation, nn.Dropout(0.5), self.output)

    def forward(self, x):
        return self.layers(x)


class NoisyHidden(Embedding):
    def forward(self, ids):
        vectors = self.embedding(ids)
        return self.output(self.activation(vectors + 0.1 * torch.randn_like(vectors) * self.training))


class DropoutOff(OneHot):
    """An nn.Dropout(p=0.0) in the stack drops nothing: the same model."""

    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, hidden_size)
        self.dropout = nn.Dropout(0.0)

    def forward(self, x):
        return self.output(self.dropout(self.activation(self.hidden(x))))


class DefaultOptionsSpelledOut(Embedding):
    def __init__(self, vocab_size, hidden_size=8):
        super().__init__(vocab_size, hidden_size)
        self.embedding = nn.Embedding(vocab_size, hidden_size, padding_idx=None, max_norm=None, sparse=False)

STUDENT_BUGS = {
    "one_hot_pairs": [
        ("has dtype bool.*add .float", lambda ids, v: (F.one_hot(ids[:-1], v).bool(), F.one_hot(ids[1:], v).bool())),
        ("dtype float16.*use .float", lambda ids, v: (F.one_hot(ids[:-1], v).half(), F.one_hot(ids[1:], v).half())),
        ("largest id \\+ 1.*num_classes=vocab_size",
         lambda ids, v: (F.one_hot(ids[:-1], int(ids.max()) + 1).float(), F.one_hot(ids[1:], int(ids.max()) + 1).float())),
        ("outputs_one_hot .* should be 2-D", lambda ids, v: (F.one_hot(ids[:-1], v).float(), ids[1:])),
        ("the last pair is missing", lambda ids, v: (F.one_hot(ids[:-2], v).float(), F.one_hot(ids[2:], v).float())),
        ("of type list.*torch tensors",
         lambda ids, v: ([F.one_hot(i, v).float() for i in ids[:-1]], [F.one_hot(i, v).float() for i in ids[1:]])),
        ("of type ndarray.*torch tensors",
         lambda ids, v: (np.eye(v, dtype=np.float32)[ids[:-1].numpy()], np.eye(v, dtype=np.float32)[ids[1:].numpy()])),
        ("the \\(input, output\\) pairs should be",
         lambda ids, v: (F.one_hot(ids, v).float()[:-1], F.one_hot(ids.roll(1), v).float()[:-1])),
        ("the \\(input, output\\) pairs should be",
         lambda ids, v: (F.one_hot(ids[:-1].sort().values, v).float(), F.one_hot(ids[1:].sort().values, v).float())),
        ("the \\(input, output\\) pairs should be",
         lambda ids, v: (F.one_hot(ids[:-1], v).float(), F.one_hot(ids[1:], v).float().flip(0))),
        ("raised RuntimeError", lambda ids, v: (F.one_hot(ids[:-1], 6).float(), F.one_hot(ids[1:], 6).float())),
    ],
    "bigram_one_hot_mlp": [(m, with_generate(OneHot, g)) for m, g in GENERATE_BUGS] + [
        ("Linear -> LeakyReLU -> Linear", SteeperLeaky),
        ("applies dropout \\(p=0.2\\) in training mode.*no dropout", HiddenDropout),
        ("applies dropout \\(p=0.5\\) in training mode.*Linear -> LeakyReLU -> Linear", DropoutModule),
        ("raised RuntimeError: mat1 and mat2.*pass num_classes=self.vocab_size to F.one_hot",
         with_generate(OneHot, one_hot_without_num_classes)),
        ("Linear -> LeakyReLU -> Linear", SigmoidHidden),
        ("Linear -> LeakyReLU -> Linear", PlusInput),
        ("should have exactly two layers", Vocab65),
    ],
    "bigram_embedding_mlp": [(m, with_generate(Embedding, g)) for m, g in GENERATE_BUGS] + [
        ("applies dropout \\(p=0.1\\).*Embedding -> LeakyReLU -> Linear", EmbeddingDropout),
        ("in training mode two forward passes .* gave different logits", NoisyHidden),
        ("sparse=True.*Adam cannot step", with_first_layer(Embedding, sparse=True)),
        ("padding_idx=0\\) keeps row 0 at zero.*leave padding_idx out", with_first_layer(Embedding, padding_idx=0)),
        ("max_norm=1\\) rescales.*leave max_norm out", with_first_layer(Embedding, max_norm=1.0)),
        ("Embedding -> LeakyReLU -> Linear", GeluHidden),
        ("Embedding -> LeakyReLU -> Linear", ScaledLogits),
        ("Embedding -> LeakyReLU -> Linear|raised", OneHotTimesTable),
        ("Embedding -> LeakyReLU -> Linear", Residual),
        ("Embedding -> LeakyReLU -> Linear", SoftmaxHidden),
        ("Embedding -> LeakyReLU -> Linear", NormalisedVectors),
        ("keep the biases|output layer has no bias", NoOutputBias),
    ],
}

MORE_VALID = {
    "one_hot_pairs": [
        lambda ids, v: (F.one_hot(ids, v).float()[:-1], F.one_hot(ids.roll(-1), v).float()[:-1]),
        lambda ids, v: tuple(torch.zeros(len(ids) - 1, v).index_put_((torch.arange(len(ids) - 1), which), torch.tensor(1.0))
                             for which in (ids[:-1], ids[1:])),
        lambda ids, v: [F.one_hot(ids[:-1].long(), v).to(torch.float32), F.one_hot(ids[1:].long(), v).to(torch.float32)],
    ],
    "bigram_one_hot_mlp": [ByMatmul, SequentialOneHot, with_generate(OneHot, by_cumsum), DropoutOff,
                           with_generate(OneHot, by_stable_exp)],
    "bigram_embedding_mlp": [RowsOfTheTable, LongIds, with_generate(Embedding, by_cumsum), DefaultOptionsSpelledOut,
                             with_generate(Embedding, by_stable_exp)],
}

CHECKS = {"one_hot_pairs": checks.check_one_hot_pairs, "bigram_one_hot_mlp": checks.check_bigram_one_hot_mlp,
          "bigram_embedding_mlp": checks.check_bigram_embedding_mlp}

(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing,
 test_every_exercise_has_a_broad_set) = student_tests(CHECKS, STUDENT_BUGS, MORE_VALID, secret_seeds=(1, 2, 3))


# ---------------------------------------------------------------- train_one_hot (the notebook's model and losses)


def train_loop(*, make_optimizer=None, loss_of=None, indices=None, steps=None, generator_seed=None, returns=None,
               before_step=None, after_step=None, record=None, seed_globally=False):
    """The notebook's train with one part replaced (each keyword is one part a student gets wrong)."""
    def train(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
        if seed_globally:
            torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed if generator_seed is None else generator_seed)
        optimizer = (make_optimizer or (lambda p, lr: torch.optim.Adam(p, lr=lr)))(model.parameters(), learning_rate)
        losses = []
        for _ in range(num_steps if steps is None else steps(num_steps)):
            batch = (indices or (lambda n, b, g: torch.randint(n, (b,), generator=g)))(len(inputs), batch_size,
                                                                                       generator)
            logits = model(inputs[batch])
            loss = (loss_of or (lambda lg, t: F.cross_entropy(lg, t)))(logits, targets[batch])
            optimizer.zero_grad()
            loss.backward()
            if before_step:
                before_step(model)
            optimizer.step()
            if after_step:
                after_step(optimizer)
            losses.append(loss.item() if record is None else record(loss))
        return losses if returns is None else returns(losses)
    return train


def decay(optimizer):
    for group in optimizer.param_groups:
        group["lr"] *= 0.999


def one_hot_times_log_softmax(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
    """Right for one-hot targets only: class-id targets (section 4) do not broadcast against the log-probabilities."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    weights, losses = torch.ones(len(inputs)), []
    for _ in range(num_steps):
        batch = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        loss = -(targets[batch] * F.log_softmax(model(inputs[batch]), dim=-1)).sum(dim=1).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses += [loss.item()]
    return losses


TRAIN_BUGS = [
    ("use torch.optim.Adam", train_loop(make_optimizer=lambda p, lr: torch.optim.AdamW(p, lr=lr))),
    ("losses differ from Adam", train_loop(make_optimizer=lambda p, lr: torch.optim.Adam(p, lr=lr, weight_decay=0.1))),
    ("losses differ from Adam", train_loop(loss_of=lambda lg, t: F.cross_entropy(F.softmax(lg, -1), t))),
    ("losses differ from Adam", train_loop(loss_of=lambda lg, t: F.mse_loss(F.softmax(lg, -1), t))),
    ("draw pair indices from 0 to", train_loop(indices=lambda n, b, g: torch.randint(b // 2, (b,), generator=g))),
    ("should take \\d+ steps", train_loop(steps=lambda n: n - 1)),
    ("should return the list of losses", train_loop(returns=lambda losses: losses[-1])),
    ("should return the list of losses", train_loop(returns=lambda losses: sum(losses) / len(losses))),
    ("runs with different seeds drew the same batches", train_loop(generator_seed=0)),
    ("learning rate should be the learning_rate argument \\(0\\.\\d+ in this test\\), got 0.001",
     train_loop(make_optimizer=lambda p, lr: torch.optim.Adam(p, lr=1e-3))),
    ("with class-id targets .*raised ValueError.*without .argmax",
     train_loop(loss_of=lambda lg, t: F.cross_entropy(lg, t.argmax(-1)))),
    ("with class-id targets .*raised RuntimeError.*pass targets\\[batch\\] to F.cross_entropy as it is",
     one_hot_times_log_softmax),
    ("with class-id targets .*raised RuntimeError.*without .argmax\\(...\\) or .float\\(\\)",
     train_loop(loss_of=lambda lg, t: F.cross_entropy(lg, t.float()))),
    ("changed torch's global random state.*leave the global random numbers alone",
     train_loop(seed_globally=True, indices=lambda n, b, g: torch.randint(n, (b,)))),
    ("changed torch's global random state", train_loop(seed_globally=True)),
    ("gradient clipping.*remove the clipping",
     train_loop(before_step=lambda model: nn.utils.clip_grad_norm_(model.parameters(), 1.0))),
    ("never reaches the model's parameters.*detach",
     train_loop(loss_of=lambda lg, t: F.cross_entropy(lg.detach().requires_grad_(), t))),
    ("learning rate changed during training \\(step 1: 0\\.\\d+, step 2: 0\\.0\\d+\\)", train_loop(after_step=decay)),
    ("should return the list of losses as Python floats, got a Tensor",
     train_loop(returns=lambda losses: torch.tensor(losses))),
    ("should return a list of Python floats, but it holds ndarray values: append loss.item",
     train_loop(record=lambda loss: loss.detach().numpy())),
    ("batches of shape \\(1024, \\d+\\).*batch_size=1\\d{3} rows: use the batch_size argument",
     train_loop(indices=lambda n, b, g: torch.randint(n, (min(b, 1024),), generator=g))),
]


def step_function_inside(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), learning_rate)

    def step(batch):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(inputs[batch]), targets[batch])
        loss.backward()
        optimizer.step()
        return float(loss)
    return [step(torch.randint(0, len(inputs), (batch_size,), generator=generator)) for _ in range(num_steps)]


def by_multinomial_and_a_loss_module(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2,
                                     seed=0):
    generator = torch.Generator().manual_seed(seed)
    optimizer, loss_of = torch.optim.Adam(model.parameters(), lr=learning_rate), nn.CrossEntropyLoss()
    weights, losses = torch.ones(len(inputs)), []
    for _ in range(num_steps):
        batch = torch.multinomial(weights, batch_size, replacement=True, generator=generator)
        loss = loss_of(model(inputs[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=False)
        loss.backward()
        optimizer.step()
        losses += [loss.detach().item()]
    return losses


def batches_up_front_ids_or_one_hot(model, inputs, targets, num_steps=1000, batch_size=1024, learning_rate=1e-2,
                                    seed=0):
    """All batches drawn before the loop; one-hot targets turned into ids (class ids pass as they are)."""
    generator = torch.Generator().manual_seed(seed)
    batches = torch.randint(len(inputs), (num_steps, batch_size), generator=generator)
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    losses = []
    for batch in batches:
        wanted = targets[batch]
        loss = F.cross_entropy(model(inputs[batch]), wanted.argmax(dim=-1) if wanted.dim() == 2 else wanted)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def outcomes_of(train, trained, seed):
    check = checks.check_train_one_hot
    return check.judge(check.probe_all((train, *trained), seed), seed)


@pytest.mark.parametrize("index", range(len(TRAIN_BUGS)))
def test_each_training_mistake_is_named_under_the_public_and_secret_seeds(trained, index):  # noqa: F811
    mistake, train = TRAIN_BUGS[index]
    for seed in (0, 1, 2):
        failed = [o for o in outcomes_of(train, trained, seed) if not o.passed]
        assert failed and re.search(mistake, failed[0].message), (seed, failed[:1])


@pytest.mark.parametrize("train", [step_function_inside, by_multinomial_and_a_loss_module,
                                   batches_up_front_ids_or_one_hot])
def test_more_valid_training_loops_pass_under_the_public_and_secret_seeds(trained, train):  # noqa: F811
    for seed in (0, 1, 2):
        assert all(o.passed for o in outcomes_of(train, trained, seed)), (seed, train.__name__)
