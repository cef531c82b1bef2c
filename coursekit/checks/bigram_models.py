"""Checks for notebook 02's two models, `BigramOneHotMLP` and `BigramEmbeddingMLP`: the same five tests each.

The probes find layers by type and shape (nn.Linear, nn.Embedding), never by attribute name, so any layout works:
separate attributes, an nn.Sequential, F.leaky_relu in forward. Every parameter gets its own random value before
the forward probe (fresh biases would hide a missing bias term), and in a grading run the vocabulary and hidden
sizes change too. The weights are drawn from the test's seed, so the judges draw the same ones and recompute the
forward pass with the reference (coursekit.judging.bigram, never in notebook 02's sandbox: a submission cannot
ask it for the logits; nor from weights the sandbox reports) and, when it differs, try the usual mistakes to name
the one that was made. The model must be exactly the spec'd one in training mode too (the notebook never calls
.eval()): no dropout or other randomness, no nn.Embedding options (sparse gradients, a padding row, max_norm).
`generate` is judged twice: on a model rigged so the next id is certain (does it feed back
the last id? the probe knows that cycle itself, so it counts only beside a right forward), and on a random model
(does it sample from softmax(logits), with the generator it is given?).
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.bigram_generate import (cycle_judge, cycle_probe, sampling_judge, sampling_probe, tail_judge,
                                              tail_probe)
from coursekit.checks.bigram_layers import (HIDDEN, embedding_settings, layers_by_type, load_weights, model_inputs,
                                            seeded_weights)
from coursekit.checks.core import Check, Test, describe, is_module_class, is_public, probe_rng, probe_torch_generator
from coursekit.checks.probing import active, recorded_dropout

VOCAB = 11  # the forward probe's public vocabulary: != HIDDEN, so layer shapes tell the layers apart
ARCHITECTURE = {"one_hot": "Linear -> LeakyReLU -> Linear", "embedding": "Embedding -> LeakyReLU -> Linear"}


# ---------------------------------------------------------------- structure


def _structure_probe(model_class):
    torch.manual_seed(0)
    return {"default": layers_by_type(model_class(VOCAB)), "hidden_5": layers_by_type(model_class(VOCAB, hidden_size=5))}


def _structure_judge(kind: str):
    first_name = "nn.Linear(vocab_size, hidden_size)" if kind == "one_hot" else "nn.Embedding(vocab_size, hidden_size)"

    def expected(hidden):
        first = {"linear": [[hidden, VOCAB, True]], "embedding": []} if kind == "one_hot" else \
            {"linear": [], "embedding": [[VOCAB, hidden]]}
        return {"linear": first["linear"] + [[VOCAB, hidden, True]], "embedding": first["embedding"]}

    def describe_layers(layers):
        return ", ".join(layers["in_order"]) or "no Linear or Embedding layers"

    def judge(got):
        for key, hidden, how in [("default", HIDDEN, f"model_class({VOCAB})"),
                                 ("hidden_5", 5, f"model_class({VOCAB}, hidden_size=5)")]:
            layers, wanted = got[key], expected(hidden)
            if kind == "embedding" and not layers["embedding"] and any(i == VOCAB for _, i, _ in layers["linear"]):
                return (f"{how} has no nn.Embedding: the first layer should be {first_name}, which looks a row up "
                        f"by id instead of multiplying a one-hot vector")
            if sorted(map(tuple, layers["linear"])) != sorted(map(tuple, wanted["linear"])) or \
                    layers["embedding"] != wanted["embedding"]:
                default = got["default"]
                if key == "hidden_5" and [default["linear"], default["embedding"]] == list(expected(HIDDEN).values()):
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

# ---------------------------------------------------------------- exactly the spec'd model: no dropout, plain layers


def _exact_probe(kind: str):
    """The model in training mode (the notebook never calls .eval()): its dropout calls, and whether two forward
    passes on the same input differ under different global seeds; and its embeddings' options."""
    def probe(model_class):
        torch.manual_seed(0)
        model = model_class(VOCAB).train()
        x = model_inputs(kind, torch.arange(VOCAB), VOCAB)
        outputs = []
        with recorded_dropout() as calls, torch.no_grad():
            for seed in (1, 2):
                torch.manual_seed(seed)
                outputs.append(model(x))
        return {"dropout": sorted({call["p"] for call in active(calls)}), "outputs": outputs,
                "embeddings": embedding_settings(model)}
    return probe


def _exact_judge(kind: str):
    architecture = ARCHITECTURE[kind]

    def judge(got):
        if got["dropout"]:
            rates = ", ".join(f"p={p:g}" for p in got["dropout"])
            return (f"the model applies dropout ({rates}) in training mode: it should be exactly {architecture}, "
                    f"with no dropout (the notebook never calls .eval(), so training, loss_on_text and generate "
                    f"would all run with it on); remove the nn.Dropout / F.dropout")
        first, second = got["outputs"]
        if not (isinstance(first, np.ndarray) and isinstance(second, np.ndarray) and np.array_equal(first, second)):
            return (f"in training mode two forward passes on the same input gave different logits: the model should "
                    f"be exactly {architecture}, with no dropout or noise")
        for settings in got["embeddings"]:
            if settings["sparse"]:
                return ("nn.Embedding(..., sparse=True) makes sparse gradients, which torch.optim.Adam cannot step "
                        "(train would fail on this model): leave sparse at its default, False")
            if settings["padding_idx"] is not None:
                return (f"nn.Embedding(..., padding_idx={settings['padding_idx']}) keeps row "
                        f"{settings['padding_idx']} at zero and never trains it, so that character gets no vector: "
                        f"there is no padding here; leave padding_idx out")
            if settings["max_norm"] is not None:
                return (f"nn.Embedding(..., max_norm={settings['max_norm']:g}) rescales every row it looks up: the "
                        f"model should be exactly {architecture}; leave max_norm out")
        return None
    return judge

# ---------------------------------------------------------------- forward


def _forward_sizes() -> tuple[int, int]:
    """(vocab, hidden): the notebook's default hidden size publicly; other sizes (never equal) when grading."""
    if is_public():
        return VOCAB, HIDDEN
    rng = probe_rng()
    return int(rng.choice([9, 13, 17, 23])), int(rng.choice([3, 5, 6, 10]))


def _forward_case(kind: str) -> tuple[int, int, torch.Tensor, list[torch.Tensor]]:
    """(vocab, hidden, ids, weights) for the forward probe, drawn from the test's seed: probe and judge alike."""
    vocab, hidden = _forward_sizes()
    generator = probe_torch_generator()
    weights = seeded_weights(kind, vocab, hidden, generator)
    # the last id (vocab - 1) never occurs: F.one_hot(ids) without num_classes would be too narrow
    ids = torch.tensor([3, 0, 9, 3, 7, 1]) if is_public() else torch.randint(vocab - 1, (9,), generator=generator)
    return vocab, hidden, ids, weights


def _forward_probe(kind: str):
    def probe(model_class):
        vocab, hidden, ids, weights = _forward_case(kind)
        torch.manual_seed(0)
        model = (model_class(vocab) if is_public() else model_class(vocab, hidden_size=hidden)).eval()
        load_weights(model, kind, vocab, hidden, weights)
        with torch.no_grad():
            return {"logits": model(model_inputs(kind, ids, vocab))}
    return probe


FORWARD_MISTAKES = {  # the name of a mistake in coursekit.judging.bigram.forward_candidates -> what to tell
    "ReLU": "the hidden layer uses ReLU; use nn.LeakyReLU() (negative inputs keep a small slope instead of 0)",
    "no activation": "there is no activation between the two layers: add nn.LeakyReLU() after the first layer",
    "softmax": "forward returns probabilities (softmax); return the logits: F.cross_entropy applies log-softmax itself",
    "activation after the last layer":
        "there is an activation after the last layer; return its output unchanged: logits may be any real number",
    "log_softmax": "forward returns log-probabilities (log_softmax); return the raw logits",
    "no output bias": "the output layer has no bias: keep nn.Linear's default bias=True",
    "no first bias": "the first layer has no bias: keep nn.Linear's default bias=True",
}


def _forward_judge(kind: str):
    def judge(got):
        from coursekit.judging.bigram import forward_candidates  # the reference: never in notebook 02's sandbox

        vocab, _, ids, weights = _forward_case(kind)
        logits = got["logits"]
        shape = (len(ids), vocab)
        call = (f"model({'one-hot rows' if kind == 'one_hot' else 'ids'} of shape "
                f"{shape if kind == 'one_hot' else (len(ids),)})")
        if not isinstance(logits, np.ndarray) or logits.shape != shape:
            return f"{call} should return logits of shape {shape}, got {describe(logits)}"
        candidates = forward_candidates(kind, weights, ids)
        for mistake, expected in candidates.items():
            if np.allclose(logits, expected, atol=1e-4):
                return FORWARD_MISTAKES.get(mistake)
        return (f"{call} should compute {ARCHITECTURE[kind]} and return the logits; with the weights "
                f"the check loaded, the logits for id {int(ids[0])} should start "
                f"{_rounded(candidates[''][0, :3])}, got {_rounded(logits[0, :3])}")
    return judge

def _rounded(values: np.ndarray) -> list[float]:
    """Values for a message, rounded alike to 4 decimals (float32 would print 16 digits).

    >>> _rounded(np.array([-2.5443001], dtype=np.float32))
    [-2.5443]
    """
    return [round(float(v), 4) for v in values]


def _model_check(kind: str, exercise: str, class_name: str, input_words: str) -> Check:
    return Check(
        exercise=exercise,
        expects=[f"the class {class_name} itself (not an instance), built as {class_name}(vocab_size, hidden_size=8)"],
        accepts=[is_module_class],
        tests=[
            Test("two layers with hidden size 8 (or hidden_size)", _structure_probe, _structure_judge(kind), 0.25,
                 needs_right_outputs=True),
            Test("exactly the spec'd layers: no dropout, no embedding options", _exact_probe(kind),
                 _exact_judge(kind), 0.5, needs_right_outputs=True),
            Test(f"forward maps {input_words} to logits", _forward_probe(kind), _forward_judge(kind), 7.0),
            Test("generate feeds back the last id", cycle_probe(kind), cycle_judge(kind), 1.25,
                 needs_right_outputs=True),
            Test("generate samples from softmax(logits) with the generator it is given", sampling_probe(kind),
                 sampling_judge(kind), 1.25),
            Test("generate samples every token, not only among the most likely tokens", tail_probe(kind),
                 tail_judge(kind), 0.25, needs_right_outputs=True),
        ],
    )


check_bigram_one_hot_mlp = _model_check("one_hot", "bigram_one_hot_mlp", "BigramOneHotMLP", "one-hot rows (N, V)")
check_bigram_embedding_mlp = _model_check("embedding", "bigram_embedding_mlp", "BigramEmbeddingMLP", "ids (N,)")
