"""Check for notebook 04's training loop: get_batch and train.

train is run on a small spy model that records every call (mode, gradients on, inputs, whether its loss was
backpropagated) and, through an optimizer pre-step hook, every step (optimizer, learning rate, gradient norms).
The judges read the order of events from those records: an evaluation at step 0 before any update, every
eval_interval steps, and a final one at max_steps; zero_grad, backward, clipping and step in every step.
Training data uses tokens 0-7 and validation data 8-15, so every call tells which split it was given.
"""

from __future__ import annotations

import math

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


def _batch_probe(get_batch):
    _last_run.clear()  # a new check call: its train tests run train afresh
    data = torch.arange(100) + (0 if is_public() else int(probe_rng().integers(1, 50)))
    seed = _data_seed()
    x, y = with_global_rng_perturbed(lambda: get_batch(data, 64, 8, torch.Generator().manual_seed(seed)))[0]
    again = with_global_rng_perturbed(lambda: get_batch(data, 64, 8, torch.Generator().manual_seed(seed)))[1][0]
    small = torch.arange(10)
    starts = set()
    for seed in range(40):
        xs, _ = get_batch(small, 8, 8, torch.Generator().manual_seed(seed))
        starts.update(int(row[0]) for row in xs)
    offset = int(data[0])
    return {"x": type_and_value(x - offset), "y": type_and_value(y - offset), "again": type_and_value(again - offset),
            "starts": sorted(starts)}


def _batch_judge(got):
    what = "get_batch(torch.arange(100), batch_size=64, block_size=8, generator)"
    x, y = got["x"]["value"], got["y"]["value"]
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        return f"{what} should return two tensors x, y, got {got['x']['type']} and {got['y']['type']}"
    if x.shape != (64, 8) or y.shape != (64, 8):
        return f"{what}: x and y should both have shape (batch_size, block_size) = (64, 8), got {x.shape} and {y.shape}"
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
    if not np.array_equal(x, got["again"]["value"]):
        return "two calls with identically seeded generators gave different batches: pass generator to torch.randint"
    if len(set(x[:, 0].tolist())) < 20:
        return "the windows barely vary: draw batch_size random start positions with torch.randint"
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


_last_run: list = []  # [(train, global seed, data seed, record)]: the run the train tests share; see _shared_run


def _shared_run(train, global_seed: int = 0) -> dict:
    """_spied_training(train, global_seed), run once for all the train tests of one check call: the get_batch
    test (always the first) forgets the last run, and a run is reused only for the very same train function."""
    key = (global_seed, _training_seed())
    if _last_run and _last_run[0][0] is train and _last_run[0][1:3] == key:
        return _last_run[0][3]
    with quiet_progress_bars(), one_thread():
        record = _spied_training(train, *key)
    _last_run[:] = [(train, *key, record)]
    return record


def _train_probe(get_batch, train):
    return _shared_run(train)


def _spied_data(data_seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The spied run's train_data (tokens 0-7) and val_data (8-15), drawn from `data_seed`."""
    generator = torch.Generator().manual_seed(data_seed)
    train_data = torch.randint(TRAIN_TOKENS, (400,), generator=generator)
    return train_data, TRAIN_TOKENS + torch.randint(VOCAB_SPY - TRAIN_TOKENS, (200,), generator=generator)


def _spied_training(train, global_seed: int, data_seed: int):
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
        returned = train(model, train_data, val_data, max_steps=STEPS, batch_size=BATCH, learning_rate=LEARNING_RATE,
                         eval_interval=INTERVAL, eval_batches=2, grad_clip=CLIP)
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


def _evaluation_judge(got):
    calls = got["calls"]
    val_calls = [c for c in calls if _is_val(c)]
    if not val_calls:
        return "train never evaluates on val_data: every eval_interval steps, average the loss of a few val batches"
    if any(c["grad"] for c in val_calls):
        return "the evaluation runs with gradients on: wrap it in torch.no_grad() (faster, and nothing to backpropagate)"
    if any(c["training"] for c in val_calls):
        return "the evaluation runs in training mode: call model.eval() before evaluating (it switches dropout off)"
    shapes = sorted({tuple(np.asarray(c["x"]).shape) for c in val_calls})
    if shapes != [(BATCH, BLOCK_SPY)]:
        return (f"the evaluation batches should have shape (batch_size, block_size) = {(BATCH, BLOCK_SPY)} like the "
                f"training ones, got {shapes}: get_batch(val_data, batch_size, block_size, generator)")
    first_eval = next(i for i, c in enumerate(calls) if _is_val(c))
    if any(not c["training"] for c in calls[first_eval:] if c["backward"]):
        return "after an evaluation the model keeps training in eval mode: call model.train() again when it is done"
    positions = _evaluation_positions(calls)
    expected = list(range(0, STEPS, INTERVAL)) + [STEPS]
    if positions == expected[:-1]:
        return (f"there is no final evaluation: after the last step, evaluate once more at max_steps={STEPS} "
                f"(evaluations at {expected}), so the history ends with the trained model's validation loss")
    if positions and positions[0] > 0 and [p - positions[0] for p in positions[:3]] == [0, INTERVAL, 2 * INTERVAL]:
        return ("each evaluation comes after that step's update (the first one after 1 update, not before any): "
                "evaluate at the start of the step, before the batch is drawn and the model updated")
    if positions != expected:
        return (f"with max_steps={STEPS} and eval_interval={INTERVAL} the evaluations should come after "
                f"{expected} training steps (steps 0, {INTERVAL}, ... before their update, and a final one), got after "
                f"{positions}")
    return None


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
    """train twice with the global RNG seeded differently: its batches come from its own seeded generator."""
    runs = [_shared_run(train, global_seed) for global_seed in (0, 1)]
    return [[call["x"] for call in run["calls"] if call["backward"]] for run in runs]


def _generator_judge(got):
    first, second = got
    if not first or len(first) != len(second):
        return "fix the other tests first (no training batches were recorded)"
    if not all(np.array_equal(a, b) for a, b in zip(first, second)):
        return ("two runs of train with the same seed drew different batches: get_batch is not given train's "
                "generator, so it falls back on the global RNG. Pass it on: get_batch(train_data, batch_size, "
                "block_size, generator)")
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


def _history_judge(got):
    returned = got["returned"]
    value = returned["value"]
    if returned["type"] != "dict" or not isinstance(value, dict):
        return f"train should return a dict with the lists 'loss', 'eval_step' and 'val_loss', got a {returned['type']}"
    missing = [key for key in ("loss", "eval_step", "val_loss") if key not in value]
    if missing:
        return f"the returned dict is missing {missing}: return {{'loss': ..., 'eval_step': ..., 'val_loss': ...}}"
    losses = value["loss"]
    if not isinstance(losses, list) or len(losses) != STEPS:
        return f"history['loss'] should hold one loss per step ({STEPS} here), got {describe(losses)}"
    if not all(isinstance(loss, float) for loss in losses):
        return "history['loss'] should hold Python floats: append loss.item(), not the tensor"
    training = _training_calls(got)
    if len(training) == STEPS and not np.allclose(losses, [c["loss"] for c in training], rtol=1e-5):
        return "history['loss'] should be the loss of each training batch, in order"
    groups = [[c for c in group if _is_val(c)] for group in _evaluation_groups(got["calls"])]
    groups = [group for group in groups if group]
    val_losses, eval_steps = value["val_loss"], value["eval_step"]
    if not isinstance(val_losses, list) or not all(isinstance(v, float) for v in val_losses):
        return "history['val_loss'] should be a list of floats, one per evaluation"
    if not isinstance(eval_steps, list) or len(eval_steps) != len(val_losses):
        return "history['eval_step'] should list the step of each evaluation, one per entry of history['val_loss']"
    expected = [float(np.mean([c["loss"] for c in group])) for group in groups]
    if len(expected) == len(val_losses) and not np.allclose(val_losses, expected, rtol=1e-4):
        return "each history['val_loss'] entry should be the mean loss over that evaluation's val batches"
    if len(expected) != len(val_losses):
        return f"history['val_loss'] has {len(val_losses)} entries but the model was evaluated {len(expected)} times"
    return None


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
                    "mode, without gradients", _evaluation_judge, 2.0),
        _train_test("train: returns the history of losses", _history_judge, 1.0),
        Test("train: the trained weights are what its batches give", _train_probe, _replay_judge, weight=8.0),
        Test("train: batches come from train's own generator", _generator_probe, _generator_judge, weight=0.5,
             needs_right_outputs=True),
    ],
)
