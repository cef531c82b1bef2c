"""Check for notebook 02's training loop (exercise train_one_hot): `check_train_one_hot(train, model, losses)`.

The check runs the student's `train` itself, on a small problem it makes up (so it stays fast, and in a grading run
its sizes, learning rate and seed are secret): a spy model, whose inputs are one-hot rows that each name their pair,
so every forward call tells which batch of pairs it was given, and hooks that record each backward pass's gradients
and each optimizer step (optimizer, learning rate, the gradients it is about to apply). The judge replays Adam on the student's own batches with the
reference loop and compares losses and final weights; the records name the usual mistakes (no zero_grad, a
hard-coded learning rate, batch size or step count, zero_grad between backward and step, the global RNG instead of
the generator, or the global RNG reseeded or used up). A second run gives
class-id targets (section 4 reuses `train` with target_ids) and a batch larger than the notebook's. The model
and losses the notebook trained are judged too: a model close to what hidden size 8 reaches, and losses that
belong to it.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from coursekit.checks.bigram_pairs import CORPUS_VOCAB, reference
from coursekit.checks.core import Check, Test, describe, is_public, probe_rng, probe_torch_generator, type_and_value
from coursekit.checks.probing import one_thread, quiet_progress_bars, single_threaded, with_global_rng_perturbed

PUBLIC_PROBLEM = {"pairs": 40, "vocab": 7, "hidden": 4, "batch_size": 24, "num_steps": 25, "learning_rate": 0.05,
                  "seed": 3}


def _problem() -> dict:
    """The sizes, learning rate and seed of the probe's training run: public, or drawn from the test's rng."""
    if is_public():
        return dict(PUBLIC_PROBLEM)
    rng = probe_rng()
    return {"pairs": int(rng.integers(30, 46)), "vocab": int(rng.integers(5, 12)), "hidden": int(rng.integers(3, 7)),
            "batch_size": int(rng.integers(20, 29)), "num_steps": int(rng.integers(25, 36)),
            "learning_rate": float(rng.choice([0.02, 0.05, 0.1])), "seed": int(rng.integers(2**31))}


def _data(problem: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs: pair i is the one-hot row of i (so a batch of rows names its pairs); targets: the next ids, as
    one-hot rows (section 3) or, when problem["class_ids"], as class ids (section 4 reuses train with target_ids)."""
    following = torch.randint(problem["vocab"], (problem["pairs"],), generator=probe_torch_generator())
    if problem.get("class_ids"):
        return torch.eye(problem["pairs"]), following
    return torch.eye(problem["pairs"]), F.one_hot(following, problem["vocab"]).float()


def _class_id_problem() -> dict:
    """The problem with class-id targets, a few steps of a batch larger than the notebook's 1024 (so a batch size
    capped at 1024 shows); enough steps that every pair is drawn at least once (the range test needs both ends)."""
    size = 1100 if is_public() else int(probe_rng().integers(1030, 1200))  # pairs > size: randperm batches fit
    return {**_problem(), "pairs": size + 100, "batch_size": size, "num_steps": 12, "class_ids": True}


class SpyBigram(nn.Module):
    """A one-hot bigram MLP that records the pairs of every call (its input rows name them), built with random
    weights from `seed` (the judge's replay rebuilds the same ones)."""

    def __init__(self, problem: dict, seed: int):
        super().__init__()
        self.hidden = nn.Linear(problem["pairs"], problem["hidden"])
        self.output = nn.Linear(problem["hidden"], problem["vocab"])
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for parameter in self.parameters():
                parameter.copy_(torch.randn(parameter.shape, generator=generator))
        self.calls = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.detach()
        one_hot = rows.dim() == 2 and bool(((rows == 0) | (rows == 1)).all() and (rows.sum(1) == 1).all())
        self.calls.append({"shape": list(rows.shape), "grad": torch.is_grad_enabled(),
                           "pairs": rows.argmax(1).tolist() if one_hot else None})
        return self.output(F.leaky_relu(self.hidden(x)))


def _spied_training(train, problem: dict) -> dict:
    """Run train(spy, inputs, targets, ...) on the problem; everything the judges need, as plain data."""
    inputs, targets = _data(problem)
    spy = SpyBigram(problem, seed=_spy_seed(problem))
    fresh, steps = {}, []  # fresh: each parameter's gradient from the latest backward pass since the last step
    for parameter in spy.parameters():
        parameter.register_hook(lambda grad, p=parameter: fresh.__setitem__(id(p), grad.detach().clone()))

    def before_step(optimizer, args, kwargs):
        held = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in spy.parameters()]
        latest = [fresh.get(id(p), torch.zeros_like(p)) for p in spy.parameters()]
        norm = math.sqrt(sum(float((g ** 2).sum()) for g in grads))
        residual = math.sqrt(sum(float(((g - f) ** 2).sum()) for g, f in zip(grads, latest)))
        steps.append({"optimizer": type(optimizer).__name__, "lr": float(optimizer.param_groups[0]["lr"]),
                      "owns_model": all(any(p is q for q in held) for p in spy.parameters()),
                      "norm": norm, "reached": bool(fresh),
                      "fresh_norm": math.sqrt(sum(float((f ** 2).sum()) for f in latest)),
                      "dot": sum(float((g * f).sum()) for g, f in zip(grads, latest)),
                      "residual": residual / norm if norm else 0.0})
        fresh.clear()

    handle = register_optimizer_step_pre_hook(before_step)
    global_state = torch.get_rng_state()  # train should leave it alone (the spy's nn.Linear init used it above)
    try:
        with quiet_progress_bars(), one_thread():
            returned = train(spy, inputs, targets, num_steps=problem["num_steps"], batch_size=problem["batch_size"],
                             learning_rate=problem["learning_rate"], seed=problem["seed"])
    finally:
        handle.remove()
    kinds = sorted({type(v).__name__ for v in returned}) if isinstance(returned, list | tuple) else []
    return {"returned": {**type_and_value(returned), "elements": kinds},
            "calls": [c for c in spy.calls if c["grad"]], "steps": steps,
            "global_moved": not torch.equal(global_state, torch.get_rng_state()),
            "final": [p.detach().clone() for p in spy.parameters()]}


def _spy_seed(problem: dict) -> int:
    """The seed of the spy's initial weights: the judge rebuilds them from it, never from what the sandbox reports."""
    return problem["seed"] + 1


def _recipe_probe(train, model, losses):
    return _spied_training(train, _problem())


def _as_floats(values) -> list[float] | None:
    try:
        return [float(v) for v in values]
    except (TypeError, ValueError):
        return None


def _recipe_judge(got):
    return _recipe_mistake(got, _problem())


def _class_id_probe(train, model, losses):
    try:
        return _spied_training(train, _class_id_problem())
    except NotImplementedError:
        raise
    except Exception as error:  # the judge names the usual cause: targets handled as one-hot rows only
        return {"raised": f"{type(error).__name__}: {error}"}


def _class_id_judge(got):
    problem = _class_id_problem()
    if "raised" in got:
        return (f"with class-id targets (a 1-D tensor of next ids, as target_ids in section 4, which reuses train) "
                f"train raised {got['raised']}: pass targets[batch] to F.cross_entropy as it is (it takes class ids "
                f"or one-hot rows), without .argmax(...) or .float()")
    return _recipe_mistake(got, problem)


def _recipe_mistake(got, problem: dict) -> str | None:
    n, batch_size, num_steps, lr = problem["pairs"], problem["batch_size"], problem["num_steps"], problem["learning_rate"]
    call = (f"train(model, inputs, targets, num_steps={num_steps}, batch_size={batch_size}, learning_rate={lr}, "
            f"seed={problem['seed']}) with {n} pairs")
    calls, steps = got["calls"], got["steps"]
    if not calls:
        return f"{call} never called the model with gradients on: compute logits = model(inputs[batch]) in the loop"
    shapes = {tuple(c["shape"]) for c in calls}
    if shapes != {(batch_size, n)}:
        return (f"{call} gave the model batches of shape {sorted(shapes)[0]}; each batch should be inputs[batch], "
                f"batch_size={batch_size} rows: use the batch_size argument, not a fixed number")
    if len(calls) != num_steps:
        return f"{call} should take {num_steps} steps (one batch each), but the model saw {len(calls)} batches"
    if steps and all(step["norm"] == 0 for step in steps):
        if not any(step["reached"] for step in steps):
            return ("loss.backward() never reaches the model's parameters, so they get no gradient: the loss is cut "
                    "off from the model (a .detach(), torch.no_grad() or a new tensor made from the logits); compute "
                    "the loss from logits = model(inputs[batch]) as they are")
        return ("the gradients are zero at optimizer.step(): call optimizer.zero_grad() before loss.backward(), "
                "not between backward and step")
    initial = [p.detach().numpy() for p in SpyBigram(problem, seed=_spy_seed(problem)).parameters()]
    if not steps or all(np.array_equal(a, b) for a, b in zip(initial, got["final"])):
        return "the model's parameters never change: call optimizer.step() after loss.backward() in every step"
    if steps[0]["optimizer"] != "Adam":
        return f"use torch.optim.Adam(model.parameters(), lr=learning_rate), got {steps[0]['optimizer']}"
    if not all(step["owns_model"] for step in steps):
        return "the optimizer does not hold all of the model's parameters: give it model.parameters()"
    changed = [i for i, step in enumerate(steps) if abs(step["lr"] - lr) > 1e-12]
    if changed and changed[0] > 0:
        return (f"the learning rate changed during training (step 1: {lr:.6g}, step {changed[0] + 1}: "
                f"{steps[changed[0]]['lr']:.6g}): keep it at the learning_rate argument for every step (no decay, "
                f"no scheduler)")
    if changed:
        return (f"the learning rate should be the learning_rate argument ({lr:.6g} in this test), got "
                f"{steps[0]['lr']:.6g}")
    if len(steps) != num_steps:
        return f"there should be one optimizer.step() per step ({num_steps}), got {len(steps)}"
    if any(step["residual"] > 1e-4 and step["norm"] < step["fresh_norm"] * (1 - 1e-6) and
           step["dot"] > (1 - 1e-6) * step["norm"] * step["fresh_norm"] for step in steps):
        return ("the gradients at optimizer.step() are scaled down from those loss.backward() computed (gradient "
                "clipping, e.g. torch.nn.utils.clip_grad_norm_): the exercise asks for plain Adam steps on the "
                "gradients as they are; remove the clipping")
    if any(step["residual"] > 1e-4 for step in steps[1:]):
        return ("the gradients add up across steps: call optimizer.zero_grad() before loss.backward() in every step "
                "(PyTorch accumulates .grad)")
    batches = [c["pairs"] for c in calls]
    if any(b is None for b in batches):
        return "the model should get one-hot rows of inputs: compute logits = model(inputs[batch])"
    if all(b == batches[0] for b in batches):
        return "every step trained on the same batch: draw a new random batch in every step"
    drawn = sorted({i for b in batches for i in b})
    if drawn[0] != 0 or drawn[-1] != n - 1:
        return (f"the batches draw pair indices from {drawn[0]} to {drawn[-1]}, but inputs has {n} pairs (0 to "
                f"{n - 1}): torch.randint(len(inputs), (batch_size,), generator=generator)")
    return _replay_mistake(got, problem, batches)


@single_threaded
def _replay_mistake(got, problem: dict, batches: list[list[int]]) -> str | None:
    """Adam replayed on the student's own batches: the losses and the final weights must match."""
    returned = got["returned"]
    if returned["type"] in ("Tensor", "ndarray"):
        return (f"train should return the list of losses as Python floats, got a {returned['type']}: collect them "
                f"in a list with losses.append(loss.item()) and return that list")
    losses = _as_floats(returned["value"]) if returned["type"] in ("list", "tuple") else None
    if losses is None:
        return (f"train should return the list of losses (loss.item() of every step), got "
                f"{returned['type']}")
    if any(kind != "float" for kind in returned["elements"]):
        return (f"train should return a list of Python floats, but it holds {' and '.join(returned['elements'])} "
                f"values: append loss.item() (a float), not the loss tensor or its .numpy()")
    if len(losses) != problem["num_steps"]:
        return (f"train should return one loss per step ({problem['num_steps']} steps), got {len(losses)}: append "
                f"loss.item() inside the loop")
    inputs, targets = _data(problem)
    model = SpyBigram(problem, seed=_spy_seed(problem))
    expected = reference().train_on_batches(model, inputs, targets, [torch.tensor(b) for b in batches],
                                            problem["learning_rate"])
    differ = [step for step, (a, b) in enumerate(zip(losses, expected)) if abs(a - b) > 1e-4]
    if differ:
        step = differ[0]
        return (f"the losses differ from Adam on F.cross_entropy(model(inputs[batch]), targets[batch]) for your own "
                f"batches (step {step + 1}: {round(expected[step], 4)} expected, {round(losses[step], 4)} returned): "
                f"make the optimizer once, before the loop, record loss.item() of each step, and use the same batch "
                f"for inputs and targets")
    if any(not np.allclose(p.detach().numpy(), q, atol=1e-4) for p, q in zip(model.parameters(), got["final"])):
        return "the losses are right but the final weights are not: take exactly one optimizer step per batch"
    return None


def _generator_probe(train, model, losses):
    """The batches of three short runs: the same seed twice (the global RNG moved in between), then another seed."""
    problem = {**_problem(), "num_steps": 4}

    def batches(seed):
        run = _spied_training(train, {**problem, "seed": seed})
        return {"pairs": [c["pairs"] for c in run["calls"]], "global_moved": run["global_moved"]}
    first, again = with_global_rng_perturbed(lambda: batches(problem["seed"]))
    return {"first": first, "again": again, "other_seed": batches(problem["seed"] + 1)}


def _generator_judge(got):
    first = got["first"]["pairs"]
    if not first:
        return "train never called the model: see the message of the test 'train: Adam on random batches'"
    if first != got["again"]["pairs"]:
        return ("two runs with the same seed drew different batches: draw them with torch.randint(..., "
                "generator=generator), the generator made from seed, not from torch's global random numbers")
    if got["first"]["global_moved"] or got["again"]["global_moved"]:
        return ("train changed torch's global random state (torch.manual_seed(...), or a draw without "
                "generator=generator): take every batch from the generator made from seed and leave the global "
                "random numbers alone, which every later cell of the notebook depends on")
    if first == got["other_seed"]["pairs"]:
        return "runs with different seeds drew the same batches: use the generator made from the seed argument"
    return None

# ---------------------------------------------------------------- the model and losses the notebook trained

TRAIN_STEPS = 1000
TRAINED_LOSS_LIMIT = 2.7  # hidden size 8, 1000 Adam steps of 1024 pairs: about 2.52; best bigram 2.45; uniform 4.17


def _plain_losses(losses) -> list[float]:
    return [float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss) for loss in losses]


def _losses_probe(train, model, losses):
    with_graph = sum(isinstance(loss, torch.Tensor) and loss.requires_grad for loss in losses)
    return {"values": _plain_losses(losses), "with_graph": with_graph}


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


def _table_probe(train, model, losses):
    """The trained model's logits for each of the 65 characters: everything a bigram model knows."""
    model.eval()
    last_losses = _plain_losses(losses)[-100:]
    try:
        with torch.no_grad():
            logits = model(torch.eye(CORPUS_VOCAB))
    except RuntimeError as error:  # e.g. a model built for another vocabulary size
        return {"logits": None, "error": str(error), "last_losses": last_losses}
    return {"logits": logits, "last_losses": last_losses}


def _quality(got) -> tuple[str | None, float | None]:
    logits = got["logits"]
    if not isinstance(logits, np.ndarray) or logits.shape != (CORPUS_VOCAB, CORPUS_VOCAB):
        got = f"it raised: {got['error']}" if got.get("error") else f"got {describe(logits)}"
        return (f"model(torch.eye({CORPUS_VOCAB})) (one one-hot row per character of tinyshakespeare) should give "
                f"logits of shape ({CORPUS_VOCAB}, {CORPUS_VOCAB}); {got}. Pass the model built with "
                f"vocab_size={CORPUS_VOCAB} and trained on the corpus"), None
    from coursekit.judging.bigram import corpus_counts

    return None, reference().table_loss(torch.from_numpy(logits), corpus_counts())


def _trained_judge(got):
    problem, loss = _quality(got)
    if problem:
        return problem
    if loss > TRAINED_LOSS_LIMIT:
        from coursekit.judging.bigram import corpus_counts

        best = reference().count_model_loss(corpus_counts())
        return (f"your model's cross-entropy on all of tinyshakespeare is {loss:.3f} nats; a hidden-size-8 model "
                f"reaches about 2.52 after {TRAIN_STEPS} steps (uniform guessing: "
                f"{reference().uniform_loss(CORPUS_VOCAB):.2f}, the best bigram model: {best:.2f}). Train on random "
                f"batches of pairs with Adam (lr about 1e-2), and call optimizer.zero_grad() every step: without it "
                f"the gradients of all earlier steps add up")
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


def _is_sequence(value) -> bool:
    return isinstance(value, (list, tuple, np.ndarray, torch.Tensor))


check_train_one_hot = Check(
    exercise="train_one_hot",
    expects=["your function train(model, inputs, targets, num_steps, batch_size, learning_rate, seed)",
             "the trained BigramOneHotMLP model", "the list of its training losses, one float per step"],
    accepts=[callable, lambda value: isinstance(value, nn.Module), _is_sequence],
    tests=[
        Test("train: Adam on random batches, one step per batch, on a small problem", _recipe_probe, _recipe_judge,
             5.0),
        Test("train works with class-id targets (as section 4 reuses it) and any batch size", _class_id_probe,
             _class_id_judge, 1.0),
        Test("train draws its batches from the generator made from seed", _generator_probe, _generator_judge, 0.75,
             needs_right_outputs=True),
        Test(f"losses: one per step for {TRAIN_STEPS} steps, going down", _losses_probe, _losses_judge, 0.25,
             needs_right_outputs=True),
        Test("the trained model predicts tinyshakespeare", _table_probe, _trained_judge, 0.5),
        Test("the losses belong to the model", _table_probe, _consistent_judge, 0.25, needs_right_outputs=True),
    ],
)
