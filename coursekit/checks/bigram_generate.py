"""The two tests of `generate` shared by notebook 02's model checks (see bigram_models.py).

- feeding back: a model rigged through its own layers so that each id has one certain successor (a + 1 in a
  notebook, a random cycle when grading): generate must follow it from the start id;
- the tail: a model with random, flattened parameters and a vocabulary of 40 to 60 ids (the real one has 65): the less likely
  ids must come out as often as softmax(logits) says, not only the top k of them;
- sampling: a model with random parameters; generate must give the same ids for the same seeded generator however
  torch's global RNG stands, and those ids must be torch.multinomial's draws from softmax(logits) (replayed exactly),
  or, for another valid sampler, follow softmax(logits) by a likelihood-ratio test against other temperatures; and
  with every logit shifted up by 100 (the same probabilities) it must still sample (exp without the max overflows).

generate must return a list of Python ints; an error it raises is turned into advice where the cause is a usual one.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.bigram_layers import HIDDEN, find_layer, generated, load_weights, seeded_weights
from coursekit.checks.core import is_public, probe_rng, probe_torch_generator
from coursekit.checks.probing import FRESH_GENERATOR, with_global_rng_perturbed

VOCABS_BUT_HIDDEN = [5, 6, 7, 9]  # secret vocabularies; never HIDDEN, or the two layers' shapes would be alike

# ---------------------------------------------------------------- generate: the last id is fed back


def _cycle() -> list[int]:
    """successor[a]: the id that certainly follows a in the rigged model; a + 1 (mod 6) in a notebook, a random
    cycle through 5 to 7 ids when grading."""
    if is_public():
        return [(a + 1) % 6 for a in range(6)]
    rng = probe_rng()
    order = rng.permutation(int(rng.integers(5, HIDDEN))).tolist()  # the rig needs vocab < hidden
    successor = [0] * len(order)
    for a, b in zip(order, order[1:] + order[:1]):
        successor[a] = b
    return successor


CYCLE_STEPS = 9


def _cycle_start(successor: list[int]) -> int:
    return 2 if is_public() else int(probe_rng().integers(len(successor)))


def cycle_probe(kind: str):
    """A model rigged (through its own layers) so that the next id is successor[current] with certainty."""
    def probe(model_class):
        successor = _cycle()
        vocab = len(successor)
        torch.manual_seed(0)
        model = model_class(vocab).eval()
        first, last = find_layer(model, kind, vocab, HIDDEN), find_layer(model, kind, vocab, HIDDEN, output=True)
        with torch.no_grad():
            first.weight.zero_()
            if kind == "one_hot":
                first.weight[:vocab, :].copy_(torch.eye(vocab))  # hidden unit a fires for token a
                first.bias.zero_()
            else:
                first.weight[:, :vocab].copy_(torch.eye(vocab))
            last.weight.zero_()
            for token in range(vocab):
                last.weight[successor[token], token] = 40.0  # unit a -> a huge logit for its successor
            last.bias.zero_()
        return generated(lambda: model.generate(_cycle_start(successor), CYCLE_STEPS,
                                                generator=torch.Generator().manual_seed(0)))
    return probe


def generate_error(error: str, kind: str, call: str) -> str:
    """Advice for an error generate raised: the usual causes by name, else the error itself."""
    if kind == "one_hot" and "cannot be multiplied" in error:
        return (f"{call} raised {error}: the model's input should be a (1, vocab_size) one-hot row; pass "
                f"num_classes=self.vocab_size to F.one_hot (without it the row is only as wide as the id + 1)")
    if "probability tensor contains" in error or "invalid multinomial distribution" in error:
        return (f"{call} raised {error}: torch.multinomial was given negative, infinite or NaN weights. Pass it "
                f"probabilities, F.softmax(logits, dim=-1), not the raw logits or torch.exp(logits) (exp of a large "
                f"logit overflows to inf; softmax subtracts the largest logit first)")
    return f"{call} raised {error}"


def cycle_judge(kind: str):
    return lambda got: _cycle_mistake(got, kind)


def _cycle_mistake(got, kind: str) -> str | None:
    successor = _cycle()
    expected = [_cycle_start(successor)]
    for _ in range(CYCLE_STEPS):
        expected.append(successor[expected[-1]])
    ids = got["ids"]
    call = f"generate(start_id={expected[0]}, num_new={CYCLE_STEPS})"
    if "error" in got:
        return generate_error(got["error"], kind, call)
    if got["type"] != "list":
        return (f"{call} should return a list of ints (list[int]), got a {got['type']}: collect the ids in a list, "
                f"appending int(...) of each sampled id")
    if any(element != "int" for element in got["elements"]):
        return (f"{call} should return a list of Python ints, but the list holds {' and '.join(got['elements'])} "
                f"values: append int(next_id) (or next_id.item()), not the tensor torch.multinomial returns")
    if ids is None:
        return f"{call} should return a list of ints, got a {got['type']}"
    if len(ids) == CYCLE_STEPS and ids == expected[1:]:
        return f"{call} should return the start id followed by the {CYCLE_STEPS} new ids ({CYCLE_STEPS + 1} in all)"
    if len(ids) != CYCLE_STEPS + 1:
        return f"{call} should return {CYCLE_STEPS + 1} ids (the start id and {CYCLE_STEPS} new ones), got {len(ids)}"
    if ids == expected:
        return None
    if ids[0] == expected[0] and all(i == expected[1] for i in ids[1:]):
        return ("every new id is the one that follows the start id: feed the model the last id generated so "
                "far, not the start id")
    return (f"with a model that always follows id a by one certain id ({dict(enumerate(successor))}), {call} should "
            f"give {expected}, got {ids}: take softmax over the vocabulary (dim=-1) of the logits for the last id and "
            f"sample from it")

# ---------------------------------------------------------------- generate: samples from softmax(logits)

SAMPLE_STEPS = 3000
OTHER_SEED_STEPS = 200  # a generator seeded otherwise must give other ids: it is the generator generate samples with
INVERSE_TEMPERATURES = [0.0, *np.round(np.arange(0.25, 3.01, 0.05), 2).tolist(), 6.0]  # 0: uniform, 6: ~argmax


def _sampling_setup() -> tuple[int, int, int]:
    """(vocab, start id, generator seed): 6, 0 and 7 in a notebook, random when grading."""
    if is_public():
        return 6, 0, 7
    rng = probe_rng()
    vocab = int(rng.choice(VOCABS_BUT_HIDDEN))
    return vocab, int(rng.integers(vocab)), int(rng.integers(2**31))


def _model_with(model_class, kind: str, vocab: int, weights: list[torch.Tensor]):
    """The student's model for `vocab` ids, in eval mode, with `weights` (see seeded_weights) loaded."""
    torch.manual_seed(0)
    model = model_class(vocab).eval()
    load_weights(model, kind, vocab, HIDDEN, weights)
    return model


def sampling_probe(kind: str):
    def probe(model_class):
        vocab, start, seed = _sampling_setup()
        model = _model_with(model_class, kind, vocab, _sampling_weights(kind, vocab))
        runs = with_global_rng_perturbed(  # a generate that ignores its generator sees different random numbers
            lambda: generated(lambda: model.generate(start, SAMPLE_STEPS, generator=torch.Generator().manual_seed(seed))))
        other = generated(lambda: model.generate(start, OTHER_SEED_STEPS,
                                                 generator=torch.Generator().manual_seed(seed + 1)))
        without = with_global_rng_perturbed(lambda: generated(lambda: model.generate(start, OTHER_SEED_STEPS)))
        weights = _sampling_weights(kind, vocab)
        load_weights(model, kind, vocab, HIDDEN, weights[:3] + [weights[3] + LARGE_SHIFT])  # same softmax
        large = generated(lambda: model.generate(start, OTHER_SEED_STEPS, generator=torch.Generator().manual_seed(seed)))
        return {"runs": runs, "other_seed": other, "without_generator": without, "large": large}
    return probe


LARGE_SHIFT = 100.0  # exp(89) is inf in float32: softmax must subtract the largest logit


def _sampling_weights(kind: str, vocab: int) -> list[torch.Tensor]:
    """Random weights from the test's seed (probabilities far from uniform, so a temperature shows)."""
    return seeded_weights(kind, vocab, HIDDEN, probe_torch_generator())


TEMPERATURES = np.round(np.arange(0.5, 2.001, 0.05), 2).tolist()


def _log_likelihood(table: np.ndarray, ids: list[int], inverse_temperature: float) -> float:
    """The log-probability of the sampled transitions under softmax(logits * inverse_temperature)."""
    logits = table.astype(np.float64) * inverse_temperature
    log_probs = logits - logits.max(axis=1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(axis=1, keepdims=True))
    current, following = np.array(ids[:-1]), np.array(ids[1:])
    return float(log_probs[current, following].sum())


def _fit_z_score(table: np.ndarray, ids: list[int]) -> float:
    """How far the sampled transitions' counts are from softmax(logits) (a G-test, its statistic as a normal
    z-score by the Wilson-Hilferty approximation): above 5 happens with probability < 1e-6 for a right sampler."""
    vocab = len(table)
    counts = np.zeros((vocab, vocab))
    np.add.at(counts, (np.array(ids[:-1]), np.array(ids[1:])), 1)
    probs = np.exp(table - table.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    expected = counts.sum(axis=1, keepdims=True) * probs
    seen = counts > 0
    g = 2 * float((counts[seen] * np.log(counts[seen] / expected[seen])).sum())
    df = float((vocab - 1) * (counts.sum(axis=1) > 0).sum())
    return ((g / df) ** (1 / 3) - (1 - 2 / (9 * df))) / np.sqrt(2 / (9 * df))


def sampling_judge(kind: str):
    return lambda got: _sampling_mistake(got, kind)


def _sampling_mistake(got, kind: str) -> str | None:
    vocab, start, seed = _sampling_setup()
    first, second = got["runs"]
    call = f"generate({start}, num_new={SAMPLE_STEPS})"
    if "error" in first:
        return generate_error(first["error"], kind, call)
    if first["ids"] is None:
        return f"{call} should return a list of ints, got a {first['type']}"
    if len(first["ids"]) != SAMPLE_STEPS + 1:
        return (f"{call} should return {SAMPLE_STEPS + 1} ids (the start id and {SAMPLE_STEPS} new ones), got "
                f"{len(first['ids'])}: generate exactly num_new new ids, however large num_new is (no cap)")
    if "error" in got["large"]:
        return generate_error(got["large"]["error"], kind, f"with every logit shifted up by {LARGE_SHIFT:g} (the "
                              f"same probabilities: softmax ignores a constant shift), generate")
    from coursekit.judging.bigram import disagreements, logits_table  # the reference: never in 02's sandbox

    table = logits_table(kind, _sampling_weights(kind, vocab))
    followers = {}
    for current, following in zip(first["ids"], first["ids"][1:]):
        followers.setdefault(current, set()).add(following)
    if all(len(options) == 1 for options in followers.values()):
        if all(table[current].argmax() in options for current, options in followers.items()):
            return ("each id is always followed by the same id, its most likely one: generate takes the argmax, or "
                    "every step draws the same random number (a generator made or re-seeded inside the loop). Sample "
                    "with torch.multinomial(probs, num_samples=1, generator=generator), with the generator passed in")
        return ("each id is always followed by the same id, and not always by the most likely one: every step draws "
                "the same random number, from a generator made or re-seeded inside the loop. Use the generator "
                "generate is given, created once, for every torch.multinomial call")
    if first["ids"] != second["ids"]:
        return ("two calls with generators seeded the same way gave different ids: pass generator=generator to "
                "torch.multinomial so results are reproducible")
    if got["other_seed"]["ids"] == first["ids"][:OTHER_SEED_STEPS + 1]:
        return ("generators seeded differently gave the same ids: sample with the generator generate is given "
                "(torch.multinomial(probs, num_samples=1, generator=generator)), not one made or seeded inside it")
    without = [run.get("ids") for run in got["without_generator"]]
    if without[0] is not None and without[0] == without[1]:
        return ("two calls without a generator, after torch.manual_seed(1) and torch.manual_seed(2), gave the same "
                f"ids: {FRESH_GENERATOR}")
    if disagreements(table, first["ids"], seed) <= 3:  # float rounding may flip a rare draw
        return None  # torch.multinomial(softmax(logits), generator=generator)
    if disagreements(np.maximum(table, 0.0), first["ids"], seed) <= 3:
        return ("the samples are drawn from softmax(relu(logits)): the logits went through a ReLU (or a clamp at 0) "
                "before the softmax, so every negative logit counts as 0. Take F.softmax of the logits as they are")
    mismatches = {t: disagreements(table, first["ids"], seed, t) for t in TEMPERATURES if t != 1.0}
    closest = min(mismatches, key=mismatches.get)
    if mismatches[closest] <= SAMPLE_STEPS // 100:
        return (f"the samples are torch.multinomial's draws from softmax(logits / {closest:g}), not from the model's "
                f"own probabilities: generate should sample from F.softmax(logits, dim=-1) as it is, with no "
                f"temperature")
    # Another way of sampling: do the samples follow softmax(logits), or a sharper, flatter or uniform one?
    fits = {beta: _log_likelihood(table, first["ids"], beta) for beta in INVERSE_TEMPERATURES}
    best = max(fits, key=fits.get)
    if 2 * (fits[best] - fits[1.0]) < 30.0:  # a likelihood-ratio test: p < 1e-7 for a right sampler
        if _fit_z_score(table, first["ids"]) < 5.0:
            return None
        return ("the samples do not follow softmax(logits): with this model their frequencies are far from the "
                "model's probabilities; sample from F.softmax(logits, dim=-1) of the last id's logits")
    if best == 0.0:
        return ("the samples look uniform, not like the model's probabilities: take the softmax over the vocabulary "
                "(dim=-1) of the logits of the last id and sample from it")
    return (f"the samples follow softmax(logits / {1 / best:.3g}) rather than the model's own probabilities: generate "
            f"should sample from F.softmax(logits, dim=-1) as it is, with no temperature")


# ---------------------------------------------------------------- generate: every id can come out, not the top k only

TAIL_STEPS = 400


def _tail_setup() -> tuple[int, int, int]:
    """(vocab, start id, generator seed): 40, 0 and 3 in a notebook, random when grading; larger than a top-10
    sampler's 10 and never HIDDEN (the two layers' shapes would then be alike)."""
    if is_public():
        return 40, 0, 3
    rng = probe_rng()
    vocab = int(rng.integers(40, 61))
    return vocab, int(rng.integers(vocab)), int(rng.integers(2**31))


def tail_probe(kind: str):
    def probe(model_class):
        vocab, start, seed = _tail_setup()
        model = _model_with(model_class, kind, vocab, _tail_weights(kind, vocab))
        return generated(lambda: model.generate(start, TAIL_STEPS, generator=torch.Generator().manual_seed(seed)))
    return probe


def _tail_weights(kind: str, vocab: int) -> list[torch.Tensor]:
    """Random weights from the test's seed, the output layer's scaled by 0.25: logits that flat put 7 % or more of
    every id's probability outside its 10 most likely successors."""
    first, first_bias, output, output_bias = seeded_weights(kind, vocab, HIDDEN, probe_torch_generator())
    return [first, first_bias, output * 0.25, output_bias * 0.25]


def tail_judge(kind: str):
    return lambda got: _tail_mistake(got, kind)


def _tail_mistake(got, kind: str) -> str | None:
    """None unless the ids after each id are all among its k most likely for some k < vocab where softmax(logits)
    puts so much weight outside them that a right sampler would have drawn 15 or more there (p < 1e-6)."""
    vocab, start, seed = _tail_setup()
    call = f"with a vocabulary of {vocab}, generate({start}, num_new={TAIL_STEPS})"
    if "error" in got:
        return generate_error(got["error"], kind, call)
    if got["ids"] is None or len(got["ids"]) != TAIL_STEPS + 1 or not 0 <= min(got["ids"]) <= max(got["ids"]) < vocab:
        return f"{call} should return a list of {TAIL_STEPS + 1} ids from 0 to {vocab - 1} (see the sampling test)"
    from coursekit.judging.bigram import logits_table  # the reference: never in 02's sandbox

    table = logits_table(kind, _tail_weights(kind, vocab))
    ranks = (-table).argsort(axis=1).argsort(axis=1)  # ranks[a, b]: 0 for the id most likely after a
    probs = np.exp(table - table.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    current, following = np.array(got["ids"][:-1]), np.array(got["ids"][1:])
    k = int(ranks[current, following].max()) + 1
    outside = float((probs[current] * (ranks[current] >= k)).sum())  # the draws a right sampler makes there
    if k < vocab and outside >= 15:
        return (f"{call} samples only among the {k} most likely tokens after each id, though softmax(logits) "
                f"gives the others about {outside:.0f} of the {TAIL_STEPS} draws: sample from all of F.softmax(logits, dim=-1), with no top-k cut")
    return None
