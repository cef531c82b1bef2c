"""Check for notebook 04's training loop: get_batch and train.

train is run on a small spy model that records every call (mode, gradients on, inputs, whether its loss was
backpropagated) and, through an optimizer pre-step hook, every step (optimizer, learning rate, gradient norms).
The judges read the order of events from those records: an evaluation at step 0 before any update, every
eval_interval steps, and a final one at max_steps, each once and of eval_batches batches (a second run has max_steps
a multiple of eval_interval, where the last in-loop step and max_steps are easy to confuse); zero_grad, backward,
clipping and step in every step.
Training data uses tokens 0-7 and validation data 8-15, so every call tells which split it was given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng, shared_probe_rng, type_and_value
from coursekit.checks.gpt_common import GPTConfig
from coursekit.checks.probing import one_thread, quiet_progress_bars, with_global_rng_perturbed


TRAIN_TOKENS, VOCAB_SPY, BLOCK_SPY = 8, 16, 6  # training data uses tokens 0-7, validation data 8-15
STEPS, BATCH, INTERVAL, LEARNING_RATE, CLIP = 12, 4, 5, 3e-3, 0.5


def _other_sizes() -> tuple[int, int]:
    """(batch_size, block_size) of get_batch's second call: not the first call's 8, so a fixed 8 shows."""
    if is_public():
        return 3, 5
    return int(probe_rng().integers(2, 7)), int(probe_rng().choice([3, 4, 5, 6, 7, 9, 11]))


def _drawn(get_batch, data, batch_size: int, block_size: int, seed: int) -> dict:
    """get_batch(data, ...) with a generator seeded `seed`, as plain data: x and y as token ids relative to
    data[0] (so a secret offset stays out of the judge's view), or the error it raised, or what it returned
    instead of a pair."""
    try:
        out = get_batch(data, batch_size, block_size, torch.Generator().manual_seed(seed))
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        return {"error": None, "returned": describe(out)}
    offset = int(data[0])
    return {"error": None, **{name: type_and_value(value - offset if isinstance(value, torch.Tensor) else value)
                              for name, value in zip("xy", out)}}


def _batch_probe(get_batch):
    _runs.clear()  # a new check call: its train tests run train afresh
    data = torch.arange(100) + (0 if is_public() else int(probe_rng().integers(1, 50)))
    seed = _data_seed()
    first, again = with_global_rng_perturbed(lambda: _drawn(get_batch, data, 64, 8, seed))
    batch_size, block_size = _other_sizes()
    small = [_drawn(get_batch, torch.arange(10), 1, 8, small_seed) for small_seed in range(40)]
    return {"first": first, "again": again, "other": _drawn(get_batch, data, batch_size, block_size, seed),
            "other_sizes": [batch_size, block_size],
            "small_errors": [d["error"] for d in small if d["error"]],
            "starts": sorted({start for start in map(_start_of, small) if start is not None})}


def _start_of(drawn: dict) -> int | None:
    """The first token of x in a one-row batch of torch.arange(10), which is its start, when x is a tensor."""
    x = drawn.get("x", {}).get("value")
    return int(x.flat[0]) if _is_array(x) and x.size else None


def _is_array(value) -> bool:
    return isinstance(value, np.ndarray)


def _batch_judge(got):
    what = "get_batch(torch.arange(100), batch_size=64, block_size=8, generator)"
    small = "get_batch(torch.arange(10), batch_size=1, block_size=8, generator)"
    too_late = ("a window starting at i = len(data) - block_size leaves y = data[i + 1 : i + block_size + 1] one "
                "token short, so the starts must lie below len(data) - block_size: torch.randint(len(data) - "
                "block_size, ...), whose high bound is excluded (not len(data) - block_size + 1)")
    if got["small_errors"] and got["starts"]:
        return f"{small} raised {got['small_errors'][0]} for some seeds and not for others: {too_late}"
    if got["starts"] and max(got["starts"]) > 1:
        return f"{small} started windows at {got['starts']}, but only 0 and 1 fit in 10 tokens: {too_late}"
    first = got["first"]
    if first["error"]:
        return f"{what} raised {first['error']}"
    if "returned" in first:
        return f"{what} should return a pair (x, y), got {first['returned']}"
    x, y = first["x"]["value"], first["y"]["value"]
    if not _is_array(x) or not _is_array(y):
        return (f"{what} should return two tensors x, y, got {first['x']['type']} and {first['y']['type']}: "
                f"torch.stack the windows into one (batch_size, block_size) tensor each")
    if x.shape != (64, 8) or y.shape != (64, 8):
        return f"{what}: x and y should both have shape (batch_size, block_size) = (64, 8), got {x.shape} and {y.shape}"
    if x.dtype != np.int64 or y.dtype != np.int64:
        return (f"{what}: x and y should hold token ids of dtype torch.long (int64), like data, got "
                f"{x.dtype} and {y.dtype}: cut them from data as they are (no .int() or .float()); nn.Embedding and "
                f"F.cross_entropy take torch.long token ids")
    if not (x[:, 1:] == x[:, :-1] + 1).all():
        return f"{what}: each row of x should be block_size consecutive tokens, data[i : i + block_size]"
    if (y == x).all():
        return "y equals x: the targets are the next tokens, y = data[i + 1 : i + block_size + 1]"
    if (y == x + 2).all():
        return "y is shifted by two; the target of x[t] is the token right after it: y = data[i + 1 : i + block_size + 1]"
    if (y == x - 1).all():
        return "y is shifted the wrong way (the previous token); y = data[i + 1 : i + block_size + 1]"
    if not (y == x + 1).all():
        return "y should be x shifted by one token: y[:, t] is the token after x[:, t]"
    again = got["again"]
    if again["error"] or "returned" in again or not np.array_equal(x, again["x"]["value"]):
        return "two calls with identically seeded generators gave different batches: pass generator to torch.randint"
    if len(set(x[:, 0].tolist())) < 20:
        return "the windows barely vary: draw batch_size random start positions with torch.randint"
    batch_size, block_size = got["other_sizes"]
    other_call = f"get_batch(data, batch_size={batch_size}, block_size={block_size}, generator)"
    other = got["other"]
    if other["error"]:
        return f"{other_call} raised {other['error']}"
    if "returned" in other:
        return f"{other_call} should return a pair (x, y), got {other['returned']}"
    shapes = [np.asarray(other[name]["value"]).shape if _is_array(other[name]["value"]) else other[name]["type"]
              for name in "xy"]
    if shapes != [(batch_size, block_size)] * 2:
        return (f"{other_call}: x and y should have shape (batch_size, block_size) = {(batch_size, block_size)}, "
                f"got {shapes[0]} and {shapes[1]}: use the batch_size and block_size arguments, not fixed numbers")
    if not (other["y"]["value"] == other["x"]["value"] + 1).all():
        return f"{other_call}: y should be x shifted by one token, y = data[i + 1 : i + block_size + 1]"
    if got["small_errors"]:
        return f"get_batch(torch.arange(10), batch_size=1, block_size=8, generator) raised {got['small_errors'][0]}"
    if got["starts"] != [0, 1]:
        return (f"for data of length 10 and block_size 8 the windows can start at 0 or 1 (x = data[i:i+8], "
                f"y = data[i+1:i+9]); yours started at {got['starts']}: torch.randint(len(data) - block_size, ...)")
    return None


class SpyModel(nn.Module):
    """A bigram model that records every call (mode, gradients on, inputs) and every fresh gradient."""

    def __init__(self):
        super().__init__()
        self.config = GPTConfig(vocab_size=VOCAB_SPY, block_size=BLOCK_SPY, n_layer=1, n_head=1, n_embd=8)
        self.embedding = nn.Embedding(VOCAB_SPY, 8)
        self.head = nn.Linear(8, VOCAB_SPY)
        self.calls, self.fresh = [], []
        for parameter in self.parameters():
            parameter.register_hook(lambda grad, p=parameter: self.fresh.append((p, grad.detach().clone())))

    def forward(self, idx, targets=None):
        logits = self.head(self.embedding(idx))
        # Not the cross-entropy of forward (no answer in a probe): any loss with large gradients will do.
        loss = None if targets is None else 200 * (logits - F.one_hot(targets, VOCAB_SPY)).pow(2).mean()
        call = {"training": self.training, "grad": torch.is_grad_enabled(), "x": idx.detach().clone(),
                "y": None if targets is None else targets.detach().clone(),
                "loss": None if loss is None else loss.item(), "backward": False}
        if loss is not None and loss.requires_grad:
            loss.register_hook(lambda grad: call.update(backward=True))  # runs when loss.backward() reaches it
        self.calls.append(call)
        return logits, loss


def _data_seed() -> int:
    return 0 if is_public() else int(probe_rng().integers(2**31))


def _training_seed() -> int:
    """The seed of the spied run's data: shared by the train tests (they all read one run), secret in grading."""
    return 0 if is_public() else int(shared_probe_rng("training_loop: the spied run").integers(2**31))


@dataclass(frozen=True)
class Run:
    """The settings of one spied run of train."""
    max_steps: int
    eval_interval: int
    eval_batches: int

    def eval_steps(self) -> list[int]:
        """Steps 0, eval_interval, ... below max_steps, then max_steps: each once."""
        return list(range(0, self.max_steps, self.eval_interval)) + [self.max_steps]


RUN = Run(STEPS, INTERVAL, eval_batches=2)  # the run most tests read: max_steps not a multiple of eval_interval
MULTIPLE = Run(10, INTERVAL, eval_batches=3)  # max_steps a multiple of eval_interval: the loop reaches it exactly

_runs: dict = {}  # {(run, global seed, data seed): (train, record)}: the runs the train tests share; see _shared_run


def _shared_run(train, global_seed: int = 0, run: Run = RUN) -> dict:
    """_spied_training(train, ...), run once for all the train tests of one check call: the get_batch test
    (always the first) forgets the last runs, and a run is reused only for the very same train function."""
    key = (run, global_seed, _training_seed())
    if key in _runs and _runs[key][0] is train:
        return _runs[key][1]
    with quiet_progress_bars(), one_thread():
        record = _spied_training(train, *key)
    _runs[key] = (train, record)
    return record


def _train_probe(get_batch, train):
    return _shared_run(train)


def _spied_data(data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The spied run's train_data (tokens 0-7) and val_data (8-15), drawn from `data_seed`."""
    generator = torch.Generator().manual_seed(data_seed)
    train_data = torch.randint(TRAIN_TOKENS, (400,), generator=generator)
    return train_data, TRAIN_TOKENS + torch.randint(VOCAB_SPY - TRAIN_TOKENS, (200,), generator=generator)


def _spied_training(train, run: Run, global_seed: int, data_seed: int):
    torch.manual_seed(0)
    train_data, val_data = _spied_data(data_seed)
    model = SpyModel()
    before = [p.detach().clone() for p in model.parameters()]
    steps = []

    def before_step(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        group = optimizer.param_groups[0]
        grads = [p.grad for p in model.parameters()]
        fresh = {id(p): g for p, g in model.fresh}  # the last backward's gradient of each parameter
        total = math.sqrt(sum(float((g ** 2).sum()) for g in grads if g is not None))
        new = [fresh.get(id(p)) for p in model.parameters()]
        fresh_norm = math.sqrt(sum(float((g ** 2).sum()) for g in new if g is not None))
        # With zero_grad before every backward, .grad is the last backward's gradient (times the clipping factor).
        scale = total / fresh_norm if fresh_norm else 0.0
        residual = math.sqrt(sum(float(((g - scale * f) ** 2).sum()) for g, f in zip(grads, new)
                                 if g is not None and f is not None))
        # Clipping each entry at some bound (clip_grad_value_) also leaves .grad off the last gradient's direction.
        bound = max((float(g.abs().max()) for g in grads if g is not None and g.numel()), default=0.0)
        value_clipped = bound > 0 and all(torch.allclose(g, f.clamp(-bound, bound), rtol=1e-5, atol=1e-8)
                                          for g, f in zip(grads, new) if g is not None and f is not None)
        steps.append({"optimizer": type(optimizer).__name__, "owns_model": all(any(p is q for q in params)
                                                                                 for p in model.parameters()),
                      "lr": float(optimizer.param_groups[0]["lr"]), "norm": total,
                      "earlier_steps": int(optimizer.state.get(params[0], {}).get("step", 0)) if params else 0, "fresh_norm": fresh_norm,
                      "residual": residual / total if total else 0.0, "value_clipped": value_clipped,
                      "settings": {key: float(group[key]) for key in ("weight_decay", "eps") if key in group}
                      | {"betas": [float(b) for b in group.get("betas", ())], "amsgrad": bool(group.get("amsgrad"))}})
        model.fresh.clear()

    torch.manual_seed(global_seed)
    handle = register_optimizer_step_pre_hook(before_step)
    try:
        returned = train(model, train_data, val_data, max_steps=run.max_steps, batch_size=BATCH,
                         learning_rate=LEARNING_RATE, eval_interval=run.eval_interval, eval_batches=run.eval_batches,
                         grad_clip=CLIP)
    finally:
        handle.remove()
    calls = model.calls
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    return {"calls": calls, "steps": steps, "changed": changed, "returned": type_and_value(returned),
            "trained": [p.detach().clone() for p in model.parameters()]}


def _training_calls(got):
    """The calls whose loss was backpropagated."""
    return [c for c in got["calls"] if c["backward"]]


def _is_val(call) -> bool:
    return bool((np.asarray(call["x"]) >= TRAIN_TOKENS).all())


def _batches_judge(got):
    calls = _training_calls(got)
    if not calls:
        return ("no loss was ever backpropagated: for each batch compute logits, loss = model(x, y), then "
                "loss.backward()")
    if any(_is_val(c) for c in calls):
        return "the model is trained on val_data: draw the training batches from train_data"
    for call in calls:
        x, y = np.asarray(call["x"]), call["y"]
        if x.shape != (BATCH, BLOCK_SPY):
            return (f"training batches should have shape (batch_size, model.config.block_size) = {(BATCH, BLOCK_SPY)}, "
                    f"got {x.shape}")
        if y is None:
            return "the model is called without targets during training: model(x, y) returns the loss"
        if not np.array_equal(np.asarray(y)[:, :-1], x[:, 1:]):
            return "the targets are not the inputs shifted by one token (y[:, t] should be x[:, t + 1]): check get_batch"
    if len(calls) != STEPS:
        return f"with max_steps={STEPS} the model should be trained on {STEPS} batches, got {len(calls)}"
    return None


def _optimizer_judge(got):
    steps = got["steps"]
    if steps and all(step["norm"] == 0 for step in steps):
        return ("the gradients are zero at optimizer.step(): call optimizer.zero_grad() before loss.backward(), not "
                "between backward and step")
    if not steps or not got["changed"]:
        return "the parameters never change: call optimizer.step() after loss.backward()"
    if not all(step["owns_model"] for step in steps):
        return "the optimizer does not hold the model's parameters: torch.optim.AdamW(model.parameters(), ...)"
    if steps[0]["optimizer"] != "AdamW":
        return f"use torch.optim.AdamW (Adam with decoupled weight decay), got {steps[0]['optimizer']}"
    defaults = _adamw_defaults()
    for step in steps:
        changed_settings = {key: value for key, value in step["settings"].items() if value != defaults.get(key)}
        if changed_settings:
            changes = ", ".join(f"{key}={value} (default {defaults.get(key)})"
                                for key, value in changed_settings.items())
            return ("the optimizer should be torch.optim.AdamW(model.parameters(), lr=learning_rate), its other "
                    f"settings left at their defaults; yours has {changes}")
    changed = [index for index, step in enumerate(steps) if abs(step["lr"] - LEARNING_RATE) > 1e-12]
    if changed and changed[0] > 0:
        return (f"the learning rate changes during training: step {changed[0]} ran with lr={steps[changed[0]]['lr']:.6g}"
                f" instead of learning_rate={LEARNING_RATE} (a scheduler?); keep it constant in this exercise")
    if changed:
        return (f"the learning rate should be the learning_rate argument ({LEARNING_RATE} in this test), got "
                f"{steps[0]['lr']:.6g}")
    if len(steps) != STEPS:
        return f"with max_steps={STEPS} there should be {STEPS} optimizer steps, got {len(steps)}"
    if [step["earlier_steps"] for step in steps] != list(range(STEPS)):
        return ("the optimizer is created anew during training, so AdamW's running averages start over: create it "
                "once, before the loop")
    return None


def _adamw_defaults() -> dict:
    """AdamW's default weight_decay, eps, betas and amsgrad, in the form the probe records them."""
    defaults = torch.optim.AdamW([torch.zeros(1, requires_grad=True)]).defaults
    return {"weight_decay": float(defaults["weight_decay"]), "eps": float(defaults["eps"]),
            "betas": [float(b) for b in defaults["betas"]], "amsgrad": bool(defaults["amsgrad"])}


def _zero_grad_judge(got):
    steps = got["steps"]
    if len(steps) < 2:
        return "fix the optimizer first (see the other tests)"
    if any(not step["residual"] <= 1e-4 for step in steps[1:]):  # written so that NaN fails too
        if all(step.get("value_clipped") for step in steps):
            return ("each gradient entry is clipped to a bound (clip_grad_value_), which changes the gradient's "
                    "direction: clip the global norm instead, torch.nn.utils.clip_grad_norm_(model.parameters(), "
                    "grad_clip)")
        return ("the gradients add up across steps: call optimizer.zero_grad() before loss.backward() in every step "
                "(PyTorch accumulates .grad)")
    return None


def _clip_judge(got):
    steps = got["steps"]
    if not steps:
        return "fix the optimizer first (see the other tests)"
    for step in steps:
        if not step["fresh_norm"] <= 2 * CLIP and not abs(step["norm"] - CLIP) <= 1e-3 * CLIP:  # NaN fails too
            if abs(step["norm"] - step["fresh_norm"]) < 1e-6 * step["fresh_norm"]:
                return (f"the gradients are not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) "
                        f"between loss.backward() and optimizer.step() (gradient norm {step['norm']:.3g} with "
                        f"grad_clip={CLIP})")
            return (f"the gradient norm at optimizer.step() is {step['norm']:.3g}, expected grad_clip={CLIP}: clip the "
                    f"global norm with torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)")
    return None


def _evaluation_groups(calls) -> list[list[dict]]:
    """Runs of consecutive calls that were not backpropagated: one group per evaluation."""
    groups, current = [], []
    for call in calls:
        if call["backward"]:
            if current:
                groups.append(current)
            current = []
        else:
            current.append(call)
    if current:
        groups.append(current)
    return groups


def _evaluation_judge_for(run: Run):
    """The judge of a run's evaluations: on val_data, in eval mode without gradients, at run.eval_steps() (each
    once), of run.eval_batches batches each."""
    expected, interval, batches = run.eval_steps(), run.eval_interval, run.eval_batches
    setting = f"with max_steps={run.max_steps} and eval_interval={interval}"

    def judge(got):
        calls = got["calls"]
        val_calls = [c for c in calls if _is_val(c)]
        if not val_calls:
            return "train never evaluates on val_data: every eval_interval steps, average the loss of a few val batches"
        if any(c["grad"] for c in val_calls):
            return ("the evaluation runs with gradients on: wrap it in torch.no_grad() (faster, and nothing to "
                    "backpropagate)")
        if any(c["training"] for c in val_calls):
            return "the evaluation runs in training mode: call model.eval() before evaluating (it switches dropout off)"
        shapes = sorted({tuple(np.asarray(c["x"]).shape) for c in val_calls})
        if shapes != [(BATCH, BLOCK_SPY)]:
            return (f"the evaluation batches should have shape (batch_size, block_size) = {(BATCH, BLOCK_SPY)} like "
                    f"the training ones, got {shapes}: get_batch(val_data, batch_size, block_size, generator)")
        first_eval = next(i for i, c in enumerate(calls) if _is_val(c))
        if any(not c["training"] for c in calls[first_eval:] if c["backward"]):
            return "after an evaluation the model keeps training in eval mode: call model.train() again when it is done"
        positions = _evaluation_positions(calls)
        if positions == expected[:-1] and run.max_steps % interval == 0:
            return (f"{setting} there is no evaluation at max_steps={run.max_steps} (expected at {expected}, each "
                    f"once): range(max_steps) ends at step {run.max_steps - 1}, so evaluate once more after the loop, "
                    f"whether or not max_steps is a multiple of eval_interval")
        if positions == expected[:-1]:
            return (f"there is no final evaluation: after the last step, evaluate once more at "
                    f"max_steps={run.max_steps} (evaluations at {expected}), so the history ends with the trained "
                    f"model's validation loss")
        if positions and positions[0] > 0 and [p - positions[0] for p in positions[:3]] == [0, interval, 2 * interval]:
            return ("each evaluation comes after that step's update (the first one after 1 update, not before any): "
                    "evaluate at the start of the step, before the batch is drawn and the model updated")
        if positions != expected:
            return (f"{setting} the evaluations should come after {expected} training steps, each once (steps 0, "
                    f"{interval}, ... below max_steps, before their update, then one at max_steps), got after "
                    f"{positions}")
        sizes = [n for n in (sum(1 for c in group if _is_val(c)) for group in _evaluation_groups(calls)) if n]
        if sizes[-1] == 2 * batches and all(size == batches for size in sizes[:-1]):
            return (f"{setting} the evaluation at max_steps={run.max_steps} runs twice, one right after the other "
                    f"({2 * batches} validation batches instead of eval_batches={batches}): evaluate at max_steps "
                    f"once (the loop's own evaluations are at the steps below max_steps)")
        if len(set(sizes)) == 1 and sizes[0] != batches:
            return (f"each evaluation should average eval_batches={batches} batches of val_data, got {sizes[0]}: use "
                    f"the eval_batches argument, not a fixed number")
        if any(size != batches for size in sizes):
            return (f"each evaluation should average eval_batches={batches} batches of val_data; the evaluations "
                    f"used {sizes}")
        return None
    return judge


def _evaluation_positions(calls) -> list[int]:
    """After how many training steps (backpropagated calls) each evaluation on val_data happened."""
    positions, steps, in_evaluation = [], 0, False
    for call in calls:
        if call["backward"]:
            steps, in_evaluation = steps + 1, False
        elif _is_val(call) and not in_evaluation:
            positions.append(steps)
            in_evaluation = True
    return positions


def _generator_probe(get_batch, train):
    """train twice with the global RNG seeded differently: its batches, training and validation, come from
    seeded generators."""
    runs = [_shared_run(train, global_seed) for global_seed in (0, 1)]
    return [{"train": [call["x"] for call in run["calls"] if call["backward"]],
             "val": [call["x"] for call in run["calls"] if not call["backward"] and _is_val(call)]} for run in runs]


def _generator_judge(got):
    first, second = got
    if not first["train"] or len(first["train"]) != len(second["train"]):
        return "fix the other tests first (no training batches were recorded)"
    if not all(np.array_equal(a, b) for a, b in zip(first["train"], second["train"])):
        return ("two runs of train with the same seed drew different batches: get_batch is not given train's "
                "generator, so it falls back on the global RNG. Pass it on: get_batch(train_data, batch_size, "
                "block_size, generator)")
    if len(first["val"]) != len(second["val"]) or \
            not all(np.array_equal(a, b) for a, b in zip(first["val"], second["val"])):
        return ("two runs of train with the same seed evaluated on different validation batches: they are drawn "
                "from the global RNG, so the validation loss is not reproducible. Draw them with the generator "
                "too: get_batch(val_data, batch_size, block_size, generator)")
    return None


OPTIMIZERS = {"AdamW": torch.optim.AdamW, "Adam": torch.optim.Adam}


def _procedures(steps) -> list[tuple[str, str | None, bool]]:
    """The ways of training the records allow, as (where zero_grad sits, clipping, a new optimizer every step).
    Each wrong one is named by its own test; the replay only has to find the one that explains the weights."""
    zeroed = ["after backward", "after backward, to zeros"] if all(step["norm"] == 0 for step in steps) else \
        ["before backward", "never"]
    fresh = all(step["earlier_steps"] == 0 for step in steps) and len(steps) > 1
    return [(zero_grad, clip, fresh) for zero_grad in zeroed for clip in ("norm", "value", None)]


def _replayed(batches, steps, zero_grad: str, clip: str | None, fresh: bool):
    """(the spy model's weights, the loss of each batch) when it is trained here on `batches` with each step's
    claimed optimizer settings."""
    torch.manual_seed(0)  # the spy model's initial weights, as in _spied_training
    model = SpyModel()
    make, optimizer, losses = OPTIMIZERS[steps[0]["optimizer"]], None, []
    for (x, y), step in zip(batches, steps):
        settings = {**step["settings"], "betas": tuple(step["settings"]["betas"]), "lr": step["lr"]}
        if optimizer is None or fresh:
            optimizer = make(model.parameters(), **settings)
        optimizer.param_groups[0].update(settings)
        if zero_grad == "before backward":
            optimizer.zero_grad()
        loss = model(torch.as_tensor(x), torch.as_tensor(y))[1]
        loss.backward()
        losses.append(loss.item())
        if clip == "norm":
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP)
        if clip == "value":
            torch.nn.utils.clip_grad_value_(model.parameters(), CLIP)
        if zero_grad.startswith("after backward"):
            optimizer.zero_grad(set_to_none=zero_grad == "after backward")  # zeros still let weight decay act
        optimizer.step()
    return [p.detach() for p in model.parameters()], losses


@one_thread()
def _replay_judge(got):
    """The weights train left in the model, and each batch's loss, must be what its recorded batches give when the
    model is trained here: the other tests read the run's records, and this one ties them to the weights (records
    alone can be made up)."""
    calls, steps, trained = _training_calls(got), got["steps"], got.get("trained")
    if not calls or not steps:
        return "fix the other tests first: train must update the model's parameters with optimizer.step()"
    if steps[0]["optimizer"] not in OPTIMIZERS or len(calls) != len(steps) or len(calls) > 4 * STEPS or \
            not isinstance(trained, list) or len(trained) != 3:  # the embedding, the head's weight and bias
        return "fix the other tests first: one batch, one backward and one AdamW step per training step"
    batches = [(np.asarray(c["x"]), np.asarray(c["y"])) for c in calls]
    if not all(x.shape == y.shape == (BATCH, BLOCK_SPY) and x.dtype.kind == y.dtype.kind == "i" and
               ((0 <= x) & (x < VOCAB_SPY)).all() and ((0 <= y) & (y < VOCAB_SPY)).all() for x, y in batches):
        return "fix the other tests first: the training batches are not (batch_size, block_size) token ids"
    windows = {tuple(data[i:i + BLOCK_SPY].tolist()) for data in _spied_data(_training_seed())
               for i in range(len(data) - BLOCK_SPY + 1)}  # this run's data, drawn from its (secret) seed
    if not all(tuple(row) in windows for x, _ in batches for row in x.tolist()):
        return ("the training batches are not windows of this run's train_data: draw them with get_batch(train_data, "
                "batch_size, block_size, generator)")
    trained = [torch.as_tensor(np.asarray(t, dtype=np.float32)) for t in trained]
    claimed_losses = [c["loss"] for c in calls]
    if not all(isinstance(loss, float) for loss in claimed_losses):
        return "fix the other tests first: every training batch's loss should be a number"
    for procedure in _procedures(steps):
        weights, losses = _replayed(batches, steps, *procedure)
        if all(w.shape == t.shape and torch.allclose(w, t, rtol=1e-4, atol=1e-6) for w, t in zip(weights, trained)) \
                and np.allclose(losses, claimed_losses, rtol=1e-4):
            return None
    return ("the weights train leaves in the model are not what its own training batches give: train the model "
            "you are given, in place (no copy), one zero_grad / backward / clip / step per batch, and return once "
            "training and evaluation are done")


def _history_judge_for(run: Run):
    """The judge of the history train returned from `run`: one loss per step, and one entry per evaluation."""
    def judge(got):
        returned = got["returned"]
        value = returned["value"]
        if returned["type"] != "dict" or not isinstance(value, dict):
            return (f"train should return a dict with the lists 'loss', 'eval_step' and 'val_loss', got a "
                    f"{returned['type']}")
        missing = [key for key in ("loss", "eval_step", "val_loss") if key not in value]
        if missing:
            return f"the returned dict is missing {missing}: return {{'loss': ..., 'eval_step': ..., 'val_loss': ...}}"
        losses = value["loss"]
        if not isinstance(losses, list) or len(losses) != run.max_steps:
            return f"history['loss'] should hold one loss per step ({run.max_steps} here), got {describe(losses)}"
        if not all(isinstance(loss, float) for loss in losses):
            return "history['loss'] should hold Python floats: append loss.item(), not the tensor"
        training = _training_calls(got)
        if len(training) == run.max_steps and not np.allclose(losses, [c["loss"] for c in training], rtol=1e-5):
            return "history['loss'] should be the loss of each training batch, in order"
        groups = [[c for c in group if _is_val(c)] for group in _evaluation_groups(got["calls"])]
        groups = [group for group in groups if group]
        val_losses, eval_steps = value["val_loss"], value["eval_step"]
        if not isinstance(val_losses, list) or not all(isinstance(v, float) for v in val_losses):
            return "history['val_loss'] should be a list of floats, one per evaluation"
        if not isinstance(eval_steps, list) or len(eval_steps) != len(val_losses):
            return "history['eval_step'] should list the step of each evaluation, one per entry of history['val_loss']"
        if eval_steps != run.eval_steps():
            return (f"with max_steps={run.max_steps} and eval_interval={run.eval_interval} history['eval_step'] "
                    f"should be {run.eval_steps()}, each evaluation's step once, got {eval_steps}")
        expected = [float(np.mean([c["loss"] for c in group])) for group in groups]
        if len(expected) == len(val_losses) and not np.allclose(val_losses, expected, rtol=1e-4):
            return "each history['val_loss'] entry should be the mean loss over that evaluation's val batches"
        if len(expected) != len(val_losses):
            return (f"history['val_loss'] has {len(val_losses)} entries but the model was evaluated {len(expected)} "
                    f"times")
        return None
    return judge


def _multiple_judge(got):
    """The run whose max_steps is a multiple of eval_interval: its evaluations, then its history."""
    return _evaluation_judge_for(MULTIPLE)(got) or _history_judge_for(MULTIPLE)(got)


def _train_test(name, judge, weight):
    """A test of the run's records: it earns only beside trained weights that match them (see _replay_judge)."""
    return Test(name, _train_probe, judge, weight=weight, needs_right_outputs=True)


check_training_loop = Check(
    exercise="training_loop",
    expects=["a function get_batch(data, batch_size, block_size, generator=None) -> (x, y)",
             "a function train(model, train_data, val_data, max_steps, batch_size, learning_rate, eval_interval, "
             "eval_batches, grad_clip) -> history dict"],
    accepts=[callable, callable],
    tests=[
        Test("get_batch: random windows x and next-token targets y", lambda get_batch, train: _batch_probe(get_batch),
             _batch_judge, weight=2.0),
        _train_test("train: batches of train_data with shifted targets, one per step", _batches_judge, 2.0),
        _train_test("train: AdamW with lr=learning_rate steps the parameters", _optimizer_judge, 1.5),
        _train_test("train: gradients are zeroed before every backward", _zero_grad_judge, 1.0),
        _train_test(f"train: gradients are clipped to grad_clip={CLIP}", _clip_judge, 1.0),
        _train_test("train: evaluation on val_data at step 0, every eval_interval steps and at max_steps, in eval "
                    "mode, without gradients, of eval_batches batches", _evaluation_judge_for(RUN), 2.0),
        _train_test("train: returns the history of losses", _history_judge_for(RUN), 1.0),
        Test(f"train: with max_steps={MULTIPLE.max_steps}, a multiple of eval_interval={MULTIPLE.eval_interval}, "
             f"evaluations at steps {MULTIPLE.eval_steps()}, each once", lambda get_batch, train: _shared_run(
                 train, run=MULTIPLE), _multiple_judge, weight=0.5, needs_right_outputs=True),
        Test("train: the trained weights are what its batches give", _train_probe, _replay_judge, weight=8.0),
        Test("train: batches come from train's own generator", _generator_probe, _generator_judge, weight=0.5,
             needs_right_outputs=True),
    ],
)
