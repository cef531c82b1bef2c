"""Checks for notebook 02 (bigram language models); chars/encode/decode come from tokenization.py.

The model checks find layers by type and shape (nn.Linear, nn.Embedding), never by attribute name, so any layout
works: separate attributes, an nn.Sequential, F.leaky_relu in forward. The judges recompute the forward pass from
the student's own weights with numpy and, when it differs, try the usual mistakes to name the one that was made.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
import torch.nn as nn

from coursekit import data
from coursekit.checks.core import Check, Test, describe, is_module_class, is_public, probe_rng, probe_torch_generator


def _bigram():
    """The reference (coursekit.bigram), for judges only: it is never in notebook 02's sandbox."""
    from coursekit import bigram

    return bigram

# ---------------------------------------------------------------- shared helpers

# A made-up six-character vocabulary, so "hello" can be spelt: h=2, e=1, l=3, o=4.
TINY_VOCAB = [" ", "e", "h", "l", "o", "!"]


def _spell(ids) -> str:
    return "".join(TINY_VOCAB[i] if 0 <= i < len(TINY_VOCAB) else "?" for i in ids)


def _pairs(ids) -> str:
    return ", ".join(_spell(pair) for pair in zip(ids, ids[1:]))


@lru_cache(maxsize=1)
def corpus_ids() -> np.ndarray:
    """tinyshakespeare as character ids (ids = positions in the sorted vocabulary), for judges."""
    text = data.read_text("tinyshakespeare")
    index = {char: i for i, char in enumerate(sorted(set(text)))}
    return np.array([index[char] for char in text], dtype=np.int64)


@lru_cache(maxsize=1)
def corpus_counts() -> torch.Tensor:
    ids = torch.from_numpy(corpus_ids())
    return _bigram().bigram_counts(ids, int(ids.max()) + 1)


def _leaky_relu(x: np.ndarray, slope: float = 0.01) -> np.ndarray:
    return np.where(x >= 0, x, slope * x)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = np.exp(x - x.max(axis=axis, keepdims=True))
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _layers(model: nn.Module) -> dict:
    """Linear and Embedding layers of a model by type: [shape, has bias] each, in registration order."""
    return {
        "linear": [[m.out_features, m.in_features, m.bias is not None] for m in model.modules()
                   if isinstance(m, nn.Linear)],
        "embedding": [[m.num_embeddings, m.embedding_dim] for m in model.modules() if isinstance(m, nn.Embedding)],
    }


def _first_layer(model: nn.Module, kind: str, vocab: int, hidden: int) -> nn.Module:
    """The layer that maps the current token to the hidden vector: Linear(vocab, hidden) or Embedding(vocab, hidden)."""
    for module in model.modules():
        if kind == "one_hot" and isinstance(module, nn.Linear) and tuple(module.weight.shape) == (hidden, vocab):
            return module
        if kind == "embedding" and isinstance(module, nn.Embedding) and tuple(module.weight.shape) == (vocab, hidden):
            return module
    layer = f"nn.Linear({vocab}, {hidden})" if kind == "one_hot" else f"nn.Embedding({vocab}, {hidden})"
    raise ValueError(f"found no {layer} layer in the model built with vocab_size={vocab}, hidden_size={hidden}")


def _output_layer(model: nn.Module, vocab: int, hidden: int) -> nn.Linear:
    for module in model.modules():
        if isinstance(module, nn.Linear) and tuple(module.weight.shape) == (vocab, hidden):
            return module
    raise ValueError(f"found no nn.Linear({hidden}, {vocab}) output layer in the model built with "
                     f"vocab_size={vocab}, hidden_size={hidden}")


def _ids_of(value) -> dict:
    """A probe's view of generate's result: its type and the ids as a list of ints (when it is a 1-D sequence)."""
    kind = type(value).__name__
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist() if value.ndim <= 2 and (value.ndim < 2 or value.shape[0] == 1) else None
    try:
        ids = [int(i) for i in value]
    except (TypeError, ValueError):
        ids = None
    return {"type": kind, "ids": ids}


# ---------------------------------------------------------------- one_hot_pairs

ONE_HOT_CASES = [  # (description, ids, weight)
    ("'hello'", [2, 1, 3, 3, 4], 2.0),
    ("'oh!'", [4, 2, 5], 1.0),
    ("a single character 'h' (no pairs)", [2], 0.1),
]
MANY_IDS = "many ids"


def _many_ids() -> list[int]:
    """The "many ids" case: fixed in a notebook, random ids of the tiny vocabulary (any length) when grading."""
    if is_public():
        return [2, 1, 3, 3, 4, 0, 2, 1, 5, 5, 0, 4]
    rng = probe_rng()
    return [int(i) for i in rng.integers(0, len(TINY_VOCAB), size=int(rng.integers(5, 40)))]


def _one_hot_probe(ids):
    def probe(one_hot_pairs):
        result = one_hot_pairs(torch.tensor(ids() if callable(ids) else ids), len(TINY_VOCAB))
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            return {"pair": False, "got": describe(result)}
        return {"pair": True, "inputs": result[0], "outputs": result[1]}
    return probe


def _one_hot_rows(name: str, got, rows: int, width: int, ids) -> str | None:
    """None when `got` is a (rows, width) float tensor, else what is wrong with it."""
    expected = f"({rows}, {width}), i.e. (len(ids) - 1, vocab_size)"
    if not isinstance(got, np.ndarray):
        return f"{name} should be a tensor of shape {expected}, got {describe(got)}"
    if got.ndim != 2:
        return f"{name} should be 2-D with shape {expected}, got shape {tuple(got.shape)}"
    if got.shape[1] != width:
        if got.shape[0] == rows and got.shape[1] < width and got.shape[1] <= max(ids) + 1:
            return (f"{name} has {got.shape[1]} columns (largest id + 1) but should have vocab_size = {width}: "
                    f"pass num_classes=vocab_size to F.one_hot, or every batch could get a different width")
        return f"{name} should have shape {expected}, got {tuple(got.shape)}"
    if got.shape[0] == rows + 1:
        return (f"{name} has one row per character ({rows + 1}), but {len(ids)} characters make only {rows} "
                f"pairs: the inputs are ids[:-1] and the targets ids[1:]")
    if got.shape[0] == rows - 1 and rows > 0:
        return (f"{name} has {got.shape[0]} rows but there are {rows} pairs ({_pairs(ids)}): the last pair "
                f"({_spell(ids[-2:])}) is missing; use ids[:-1] and ids[1:], not ids[:-2]")
    if got.shape[0] != rows:
        return f"{name} should have shape {expected}, got {tuple(got.shape)}"
    if not np.issubdtype(got.dtype, np.floating):
        return (f"{name} has dtype {got.dtype}, but nn.Linear multiplies floats: F.one_hot returns integers, "
                f"so add .float()")
    if got.dtype != np.float32:
        return (f"{name} has dtype {got.dtype}, but the model's weights are float32 and training would stop with a "
                f"dtype error: use .float() (float32), not .double() or dtype=torch.float64")
    if rows and not (np.isin(got, (0.0, 1.0)).all() and (got.sum(axis=1) == 1).all()):
        return f"every row of {name} should be one-hot: a single 1.0, every other entry 0.0"
    return None


def _one_hot_judge(description, ids):
    return lambda got: _one_hot_mistake(got, description, ids() if callable(ids) else ids)


def _one_hot_mistake(got, description: str, ids: list[int]) -> str | None:
    if not got["pair"]:
        return f"one_hot_pairs should return two tensors (inputs_one_hot, outputs_one_hot), got {got['got']}"
    rows, width = len(ids) - 1, len(TINY_VOCAB)
    for name in ("inputs", "outputs"):
        problem = _one_hot_rows(f"{name}_one_hot for {description}", got[name], rows, width, ids)
        if problem:
            return problem
    current = got["inputs"].argmax(axis=1).tolist() if rows else []
    following = got["outputs"].argmax(axis=1).tolist() if rows else []
    if current == ids[:-1] and following == ids[1:]:
        return None
    yours = ", ".join(_spell(pair) for pair in zip(current, following))
    hint = ""
    if current == following:
        hint = " outputs_one_hot equals inputs_one_hot: the target is the next character, ids[1:]."
    elif current == ids[1:] and following == ids[:-1]:
        hint = " inputs and outputs are swapped: the input is the current character, the output the next one."
    return f"for {description} the (input, output) pairs should be {_pairs(ids)}; yours are {yours}.{hint}"


check_one_hot_pairs = Check(
    exercise="one_hot_pairs",
    expects=["a function one_hot_pairs(ids, vocab_size) -> (inputs_one_hot, outputs_one_hot)"],
    tests=[
        *(Test(f"one_hot_pairs on {description}", _one_hot_probe(ids), _one_hot_judge(description, ids), weight)
          for description, ids, weight in ONE_HOT_CASES),
        Test(f"one_hot_pairs on {MANY_IDS}", _one_hot_probe(_many_ids), _one_hot_judge(MANY_IDS, _many_ids), 4.0),
    ],
)

# ---------------------------------------------------------------- the two MLPs (shared tests)

VOCAB, HIDDEN = 11, 8  # vocab != hidden, so layer shapes tell the two layers apart


def _structure_probe(model_class):
    torch.manual_seed(0)
    default = model_class(VOCAB)
    other = model_class(VOCAB, hidden_size=5)
    return {"default": _layers(default), "hidden_5": _layers(other)}


def _structure_judge(kind: str):
    first_name = "nn.Linear(vocab_size, hidden_size)" if kind == "one_hot" else "nn.Embedding(vocab_size, hidden_size)"

    def expected(hidden):
        first = {"linear": [[hidden, VOCAB, True]], "embedding": []} if kind == "one_hot" else \
            {"linear": [], "embedding": [[VOCAB, hidden]]}
        return {"linear": first["linear"] + [[VOCAB, hidden, True]], "embedding": first["embedding"]}

    def describe_layers(layers):
        parts = [f"Linear({i}, {o})" for o, i, _ in layers["linear"]]
        parts += [f"Embedding({n}, {d})" for n, d in layers["embedding"]]
        return ", ".join(parts) or "no Linear or Embedding layers"

    def judge(got):
        for key, hidden, how in [("default", HIDDEN, f"model_class({VOCAB})"),
                                 ("hidden_5", 5, f"model_class({VOCAB}, hidden_size=5)")]:
            layers, wanted = got[key], expected(hidden)
            if kind == "embedding" and not layers["embedding"] and any(i == VOCAB for _, i, _ in layers["linear"]):
                return (f"{how} has no nn.Embedding: the first layer should be {first_name}, which looks a row up "
                        f"by id instead of multiplying a one-hot vector")
            if sorted(map(tuple, layers["linear"])) != sorted(map(tuple, wanted["linear"])) or \
                    layers["embedding"] != wanted["embedding"]:
                if key == "hidden_5" and got["default"] == expected(HIDDEN):
                    return (f"{how} should have a hidden layer of size 5, but it has {describe_layers(layers)}: "
                            f"use the hidden_size argument instead of a fixed 8")
                if any(not has_bias for *_, has_bias in layers["linear"]):
                    return f"{how}: keep the biases of the Linear layers (the default bias=True)"
                return (f"{how} should have exactly two layers: {first_name} = "
                        f"{'Linear' if kind == 'one_hot' else 'Embedding'}({VOCAB}, {hidden}) and "
                        f"nn.Linear(hidden_size, vocab_size) = Linear({hidden}, {VOCAB}); found "
                        f"{describe_layers(layers)}")
        return None
    return judge


def _randomise(model: nn.Module, generator: torch.Generator) -> None:
    """Distinct, large-ish random values for every parameter, so a wrong forward cannot hide behind ~0 logits."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))


def _forward_probe(kind: str):
    def probe(model_class):
        torch.manual_seed(0)
        model = model_class(VOCAB).eval()
        first, last = _first_layer(model, kind, VOCAB, HIDDEN), _output_layer(model, VOCAB, HIDDEN)
        generator = probe_torch_generator()
        _randomise(model, generator)
        ids = torch.tensor([3, 0, 10, 3, 7, 1]) if is_public() else torch.randint(VOCAB, (9,), generator=generator)
        inputs = torch.nn.functional.one_hot(ids, VOCAB).float() if kind == "one_hot" else ids
        with torch.no_grad():
            logits = model(inputs)
        bias = first.bias if kind == "one_hot" else torch.zeros(HIDDEN)
        return {"ids": ids, "first_weight": first.weight, "first_bias": bias,
                "output_weight": last.weight, "output_bias": last.bias, "logits": logits}
    return probe


def _forward_judge(kind: str):
    def judge(got):
        ids = got["ids"]
        if kind == "one_hot":
            bias = got["first_bias"] if got["first_bias"] is not None else 0.0  # no bias: the structure test says so
            hidden = got["first_weight"][:, ids].T + bias  # one-hot @ W.T picks a column of W
        else:
            hidden = got["first_weight"][ids]  # an embedding picks a row
        out_w, out_b = got["output_weight"], got["output_bias"] if got["output_bias"] is not None else 0.0
        logits = got["logits"]
        shape = (len(ids), VOCAB)
        call = (f"model({'one-hot rows' if kind == 'one_hot' else 'ids'} of shape "
                f"{(len(ids), VOCAB) if kind == 'one_hot' else (len(ids),)})")
        if not isinstance(logits, np.ndarray) or logits.shape != shape:
            return f"{call} should return logits of shape {shape}, got {describe(logits)}"
        variants = {
            None: _leaky_relu(hidden) @ out_w.T + out_b,
            "the hidden layer uses ReLU; use nn.LeakyReLU() (negative inputs keep a small slope instead of 0)":
                np.maximum(hidden, 0) @ out_w.T + out_b,
            "there is no activation between the two layers: add nn.LeakyReLU() after the first layer":
                hidden @ out_w.T + out_b,
            "forward returns probabilities (softmax); return the logits: F.cross_entropy applies log-softmax itself":
                _softmax(_leaky_relu(hidden) @ out_w.T + out_b),
            "there is an activation after the last layer; return its output unchanged: logits may be any real number":
                _leaky_relu(_leaky_relu(hidden) @ out_w.T + out_b),
            "forward returns log-probabilities (log_softmax); return the raw logits":
                np.log(_softmax(_leaky_relu(hidden) @ out_w.T + out_b)),
        }
        for mistake, expected in variants.items():
            if np.allclose(logits, expected, atol=1e-5):
                return mistake
        return (f"{call} should compute Linear -> LeakyReLU -> Linear and return the logits; with your model's own "
                f"weights, the logits for id {int(ids[0])} should start {np.round(variants[None][0, :3], 4).tolist()}, "
                f"got {np.round(logits[0, :3], 4).tolist()}")
    return judge


CYCLE_VOCAB, CYCLE_START, CYCLE_STEPS = 6, 2, 9


def _cycle_probe(kind: str):
    """A model rigged (through its own layers) so that token a is followed by (a + 1) % 6 with certainty."""
    def probe(model_class):
        torch.manual_seed(0)
        model = model_class(CYCLE_VOCAB).eval()
        first, last = _first_layer(model, kind, CYCLE_VOCAB, HIDDEN), _output_layer(model, CYCLE_VOCAB, HIDDEN)
        with torch.no_grad():
            first.weight.zero_()
            if kind == "one_hot":
                first.weight[:CYCLE_VOCAB, :].copy_(torch.eye(CYCLE_VOCAB))  # hidden unit a fires for token a
                first.bias.zero_()
            else:
                first.weight[:, :CYCLE_VOCAB].copy_(torch.eye(CYCLE_VOCAB))
            last.weight.zero_()
            for token in range(CYCLE_VOCAB):
                last.weight[(token + 1) % CYCLE_VOCAB, token] = 40.0  # unit a -> a huge logit for a + 1
            last.bias.zero_()
        return _ids_of(model.generate(CYCLE_START, CYCLE_STEPS, generator=torch.Generator().manual_seed(0)))
    return probe


def _cycle_judge(got):
    expected = [(CYCLE_START + step) % CYCLE_VOCAB for step in range(CYCLE_STEPS + 1)]
    ids = got["ids"]
    call = f"generate(start_id={CYCLE_START}, num_new={CYCLE_STEPS})"
    if ids is None:
        return f"{call} should return a list of ints, got a {got['type']}"
    if len(ids) == CYCLE_STEPS and ids == expected[1:]:
        return f"{call} should return the start id followed by the {CYCLE_STEPS} new ids ({CYCLE_STEPS + 1} in all)"
    if len(ids) != CYCLE_STEPS + 1:
        return f"{call} should return {CYCLE_STEPS + 1} ids (the start id and {CYCLE_STEPS} new ones), got {len(ids)}"
    if ids == expected:
        return None
    if ids[0] == CYCLE_START and all(i == expected[1] for i in ids[1:]):
        return ("every new id is the one that follows the start id: feed the model the last id generated so "
                "far, not the start id")
    return (f"with a model that always follows id a by id a + 1 (mod {CYCLE_VOCAB}), {call} should give {expected}, "
            f"got {ids}: take softmax over the vocabulary (dim=-1) of the logits for the last id and sample from it")


SAMPLE_START, SAMPLE_STEPS, SAMPLE_SEED = 0, 2000, 7


def _sampling_probe(kind: str):
    def probe(model_class):
        torch.manual_seed(0)
        model = model_class(CYCLE_VOCAB).eval()
        _randomise(model, probe_torch_generator())  # probabilities far from uniform: a temperature shows
        ids = torch.arange(CYCLE_VOCAB)
        with torch.no_grad():
            table = model(torch.nn.functional.one_hot(ids, CYCLE_VOCAB).float() if kind == "one_hot" else ids)
        runs = []
        for global_seed in (1, 2):
            torch.manual_seed(global_seed)  # a generate that ignores its generator sees different random numbers
            runs.append(_ids_of(model.generate(SAMPLE_START, SAMPLE_STEPS,
                                               generator=torch.Generator().manual_seed(SAMPLE_SEED))))
        return {"table": table, "runs": runs}
    return probe


def _log_likelihood(table: np.ndarray, ids: list[int], temperature: float) -> float:
    """The log-probability of the sampled transitions under softmax(logits / temperature); inf = uniform."""
    logits = np.zeros_like(table, dtype=np.float64) if temperature == np.inf else table.astype(np.float64) / temperature
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    return float(sum(log_probs[a, b] for a, b in zip(ids, ids[1:])))


def _sampling_judge(got):
    first, second = got["runs"]
    if first["ids"] is None or len(first["ids"]) != SAMPLE_STEPS + 1:
        return f"generate(0, num_new={SAMPLE_STEPS}) should return {SAMPLE_STEPS + 1} ids; fix the test above first"
    followers = {}
    for current, following in zip(first["ids"], first["ids"][1:]):
        followers.setdefault(current, set()).add(following)
    if all(len(options) == 1 for options in followers.values()):
        return ("each id is always followed by the same id: generate takes the most likely id (argmax); sample "
                "instead with torch.multinomial(probs, num_samples=1, generator=generator)")
    if first["ids"] != second["ids"]:
        return ("two calls with generators seeded the same way gave different ids: pass generator=generator to "
                "torch.multinomial so results are reproducible")
    table = got["table"]
    if not isinstance(table, np.ndarray) or table.shape != (CYCLE_VOCAB, CYCLE_VOCAB):
        return f"the model's logits for all {CYCLE_VOCAB} ids should have shape ({CYCLE_VOCAB}, {CYCLE_VOCAB})"
    # Which distribution do the samples follow? Compare softmax(logits) with sharper, flatter and uniform ones.
    fits = {t: _log_likelihood(table, first["ids"], t) for t in (0.5, 0.7, 0.8, 1.0, 1.25, 1.5, 2.0, np.inf)}
    best = max(fits, key=fits.get)
    if fits[best] - fits[1.0] < 5.0:  # e^5 times likelier: beyond chance for 2000 samples of the right one
        return None
    if best == np.inf:
        return ("the samples look uniform, not like the model's probabilities: take the softmax over the vocabulary "
                "(dim=-1) of the logits of the last id and sample from it")
    return (f"the samples follow softmax(logits / {best}) rather than the model's own probabilities: generate "
            f"should sample from F.softmax(logits, dim=-1) as it is, with no temperature")


def _model_check(kind: str, exercise: str, class_name: str, input_words: str) -> Check:
    return Check(
        exercise=exercise,
        expects=[f"the class {class_name} itself (not an instance), built as {class_name}(vocab_size, hidden_size=8)"],
        accepts=[is_module_class],
        tests=[
            Test("two layers with hidden size 8 (or hidden_size)", _structure_probe, _structure_judge(kind), 0.25),
            Test(f"forward maps {input_words} to logits", _forward_probe(kind), _forward_judge(kind), 7.0),
            Test("generate feeds back the last id", _cycle_probe(kind), _cycle_judge, 1.25),
            Test("generate samples from softmax(logits) with the generator it is given", _sampling_probe(kind),
                 _sampling_judge, 1.25),
        ],
    )


check_bigram_one_hot_mlp = _model_check("one_hot", "bigram_one_hot_mlp", "BigramOneHotMLP", "one-hot rows (N, V)")
check_bigram_embedding_mlp = _model_check("embedding", "bigram_embedding_mlp", "BigramEmbeddingMLP", "ids (N,)")

# ---------------------------------------------------------------- train_one_hot

TRAIN_STEPS = 1000
TRAINED_LOSS_LIMIT = 2.7  # hidden size 8, 1000 Adam steps of 1024 pairs: about 2.52; best bigram 2.45; uniform 4.17


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, torch.Tensor))


def _as_floats(losses) -> list[float]:
    return [float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss) for loss in losses]


def _losses_probe(model, losses):
    with_graph = sum(isinstance(loss, torch.Tensor) and loss.requires_grad for loss in losses)
    return {"values": _as_floats(losses), "with_graph": with_graph}


def _losses_judge(got):
    losses = got["values"]
    if got["with_graph"]:
        return (f"{got['with_graph']} of the losses are tensors that still carry their computation graph: append "
                f"loss.item(), a Python float (each loss tensor keeps its step's whole graph alive in memory)")
    if len(losses) < TRAIN_STEPS:
        return (f"losses should hold one value per training step ({TRAIN_STEPS} steps), got {len(losses)}: "
                f"append loss.item() inside the loop")
    if not np.isfinite(losses).all():
        return "some losses are NaN or infinite: lower the learning rate, and pass logits (not probabilities)"
    start, end = np.mean(losses[:10]), np.mean(losses[-100:])
    if end > start - 0.5:
        return (f"the loss barely moved (first steps {start:.2f}, last 100 steps {end:.2f}): check that you call "
                f"optimizer.zero_grad(), loss.backward() and optimizer.step() every step, and that the optimizer "
                f"was given model.parameters()")
    return None


def _table_probe(model, losses):
    """The trained model's logits for each of the 65 characters: everything a bigram model knows."""
    model.eval()
    last_losses = _as_floats(losses)[-100:]
    try:
        with torch.no_grad():
            logits = model(torch.eye(corpus_vocab_size()))
    except RuntimeError as error:  # e.g. a model built for another vocabulary size
        return {"logits": None, "error": str(error), "last_losses": last_losses}
    return {"logits": logits, "last_losses": last_losses}


def corpus_vocab_size() -> int:
    return 65  # len(sorted(set(tinyshakespeare))); a literal so probes need not read the corpus


def _quality(got) -> tuple[str | None, float | None]:
    vocab = corpus_vocab_size()
    logits = got["logits"]
    if not isinstance(logits, np.ndarray) or logits.shape != (vocab, vocab):
        got = f"it raised: {got['error']}" if got.get("error") else f"got {describe(logits)}"
        return (f"model(torch.eye({vocab})) (one one-hot row per character of tinyshakespeare) should give logits "
                f"of shape ({vocab}, {vocab}); {got}. Pass the model built with vocab_size={vocab} and trained on "
                f"the corpus"), None
    return None, _bigram().table_loss(torch.from_numpy(logits), corpus_counts())


def _trained_judge(got):
    problem, loss = _quality(got)
    if problem:
        return problem
    best = _bigram().count_model_loss(corpus_counts())
    if loss > TRAINED_LOSS_LIMIT:
        return (f"your model's cross-entropy on all of tinyshakespeare is {loss:.3f} nats; a hidden-size-8 model "
                f"reaches about 2.52 after {TRAIN_STEPS} steps (uniform guessing: {_bigram().uniform_loss(65):.2f}, the "
                f"best bigram model: {best:.2f}). Train on random batches of pairs with Adam (lr about 1e-2), and call "
                f"optimizer.zero_grad() every step: without it the gradients of all earlier steps add up")
    return None


def _consistent_judge(got):
    problem = _trained_judge(got)
    if problem:  # an untrained model and its flat losses agree, but prove nothing
        return f"fix this first: {problem}"
    _, loss = _quality(got)
    recorded = float(np.mean(got["last_losses"]))
    if abs(recorded - loss) > 0.25:
        return (f"your recorded losses end around {recorded:.2f}, but the model you passed has loss {loss:.2f} on "
                f"the text: pass the model you trained together with its losses")
    return None


check_train_one_hot = Check(
    exercise="train_one_hot",
    expects=["the trained BigramOneHotMLP model", "the list of its training losses, one float per step"],
    accepts=[lambda value: isinstance(value, nn.Module), _is_sequence],
    tests=[
        Test(f"losses: one per step for {TRAIN_STEPS} steps, going down", _losses_probe, _losses_judge, 0.5),
        Test("the trained model predicts tinyshakespeare", _table_probe, _trained_judge, 4.0),
        Test("the losses belong to the model", _table_probe, _consistent_judge, 0.5),
    ],
)

# ---------------------------------------------------------------- input_ids


def _tensor_summary(value) -> dict:
    if not isinstance(value, torch.Tensor):
        return {"tensor": False, "got": describe(value)}
    return {"tensor": True, "dtype": str(value.dtype).replace("torch.", ""), "values": value}


def _ids_probe(input_ids, target_ids):
    return {"input_ids": _tensor_summary(input_ids), "target_ids": _tensor_summary(target_ids)}


def _ids_judge(got):
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
