"""Probe helpers shared by the checks of modules and models (notebooks 03 and 04, and any later check).

A probe must reach the mistakes that a fresh, public probe hides:
- sizes hard-coded to the notebook's config: `probe_sizes` draws another block_size, a shorter T, other head
  sizes and head counts in a grading run (the public run keeps the notebook's numbers);
- parameters that coincide at initialisation (every LayerNorm is 1 and 0, every bias 0, so ln_1 and ln_2 are
  interchangeable): `randomise_parameters` gives each its own random values;
- numerics: `large_magnitudes` turns an input into ones of size about 100 and -120, where exp overflows;
- an ignored `generator`: `with_global_rng_perturbed` calls the same seeded code twice with the global RNG
  moved in between;
- dropout: `recorded_dropout` runs code in training mode and records every dropout call (its p, what it was applied
  to, which entries it kept), so a judge can say *where* the dropout sits, and `dropout_site` describes one call;
- progress bars: `quiet_progress_bars` stops a student's tqdm bars from printing under the check's cell.

Everything here is probe-side plumbing: no answer to any exercise.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit.checks.core import is_public, probe_rng, probe_torch_generator


def probe_sizes(public: dict, **choices) -> dict:
    """The public sizes in a notebook; in a grading run, each named size drawn from its choices (the rest kept).

    Sizes that depend on others are computed by the caller from what this returns.

    >>> from coursekit.checks.core import seeded
    >>> probe_sizes({"n_head": 4, "T": 6}, n_head=[2, 3])
    {'n_head': 4, 'T': 6}
    >>> with seeded(7, "exercise", "test"):
    ...     probe_sizes({"n_head": 4, "T": 6}, n_head=[2, 3])["n_head"] in (2, 3)
    True
    """
    if is_public():
        return dict(public)
    rng = probe_rng()
    return {**public, **{name: type(options[0])(options[int(rng.integers(len(options)))])
                         for name, options in choices.items()}}


def attention_sizes(public: dict) -> dict:
    """n_embd, n_head, head_size, block_size and T (< block_size) for an attention probe.

    Public: the given ones. Secret: 2-4 heads of size 3, 5 or 6 (sqrt(head_size) is never sqrt(n_embd) nor
    head_size, so scaling mistakes stay distinct), block_size 7-11 and T between 3 and block_size - 1.

    >>> attention_sizes({"n_head": 4, "head_size": 6, "block_size": 8, "T": 6})
    {'n_head': 4, 'head_size': 6, 'block_size': 8, 'T': 6, 'n_embd': 24}
    """
    sizes = probe_sizes(public, n_head=[2, 3, 4], head_size=[3, 5, 6], block_size=[7, 9, 11])
    if not is_public():
        sizes["T"] = int(probe_rng().integers(3, sizes["block_size"]))
    sizes["n_embd"] = sizes["n_head"] * sizes["head_size"]
    return sizes


def probe_tensor(*shape: int, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    """A random float32 tensor from the current test's generator: the same numbers in its probe and its judge.

    >>> probe_tensor(2, 3).shape, torch.equal(probe_tensor(2, 3), probe_tensor(2, 3))
    (torch.Size([2, 3]), True)
    """
    return torch.randn(*shape, generator=probe_torch_generator()) * scale + shift


def is_norm(module: nn.Module) -> bool:
    """A LayerNorm: nn.LayerNorm, or a home-made module whose class name contains 'norm' and has a 1-D weight.

    >>> is_norm(nn.LayerNorm(4)), is_norm(nn.Linear(4, 4))
    (True, False)
    """
    weight = getattr(module, "weight", None)
    return isinstance(module, nn.LayerNorm) or (
        "norm" in type(module).__name__.lower() and isinstance(weight, torch.Tensor) and weight.dim() == 1)


def randomise_parameters(module: nn.Module, seed: int = 1, weights: bool = False) -> nn.Module:
    """Give every LayerNorm gain and bias and every other 1-D parameter (biases) its own random values, in place.

    Fresh LayerNorms are all 1 and 0 and fresh biases often 0, which makes ln_1 and ln_2 (or a bias and no bias)
    interchangeable. Gains become 1 + 0.5 N(0, 1), biases 0.5 N(0, 1). With weights=True every matrix also gets
    N(0, 1 / fan_in) entries (embeddings N(0, 1)), so that a model's outputs are informative, not ~0. A parameter
    shared by two modules (tied weights) is set once. Returns the module.

    >>> norm = randomise_parameters(nn.Sequential(nn.LayerNorm(3), nn.LayerNorm(3)))
    >>> bool((norm[0].weight != norm[1].weight).all() and (norm[0].bias != 0).all())
    True
    """
    generator = torch.Generator().manual_seed(seed)
    gains = {id(m.weight) for m in module.modules() if is_norm(m)}
    with torch.no_grad():
        for parameter in module.parameters():  # each shared parameter once
            if id(parameter) in gains:
                parameter.copy_(1 + 0.5 * torch.randn(parameter.shape, generator=generator))
            elif parameter.dim() == 1:
                parameter.copy_(0.5 * torch.randn(parameter.shape, generator=generator))
            elif weights and parameter.dim() == 2:
                embedding = any(m.weight is parameter for m in module.modules() if isinstance(m, nn.Embedding))
                scale = 1.0 if embedding else parameter.size(-1) ** -0.5
                parameter.copy_(scale * torch.randn(parameter.shape, generator=generator))
    return module


def large_magnitudes(x: torch.Tensor, high: float = 100.0, low: float = -120.0) -> list[torch.Tensor]:
    """Two versions of x whose entries reach about `high` and `low`: x shifted so its maximum is `high`, and so its
    minimum is `low`. A softmax is unchanged by the shift; exp without subtracting the maximum overflows (exp(89)
    is inf in float32) or underflows to 0/0.

    >>> [round(float(t.max()), 1) for t in large_magnitudes(torch.tensor([0.0, 1.0, 3.0]))]
    [100.0, -117.0]
    """
    return [x - x.max() + high, x - x.min() + low]


# The end of the message for a sampler whose draws without a generator did not follow the global RNG.
FRESH_GENERATOR = ("with generator=None draw from the global RNG (torch.multinomial(probs, 1, generator=None) does), "
                   "not from a new torch.Generator(), which starts from the same seed at every call")


def with_global_rng_perturbed(call: Callable[[], Any], seeds=(1, 2)) -> list:
    """[call(), call()] with torch's global RNG seeded differently before each: code that draws only from the
    generators it is given (seeded alike inside `call`) returns the same twice; code that falls back on the
    global RNG does not.

    >>> a, b = with_global_rng_perturbed(lambda: torch.rand(2, generator=torch.Generator().manual_seed(0)))
    >>> torch.equal(a, b)
    True
    >>> a, b = with_global_rng_perturbed(lambda: torch.rand(2))
    >>> torch.equal(a, b)
    False
    """
    results = []
    for seed in seeds:
        torch.manual_seed(seed)
        results.append(call())
    return results


@contextlib.contextmanager
def recorded_dropout(switched_off: bool = False):
    """Record every F.dropout call inside (switched_off: each returns its input unchanged) (nn.Dropout and F.dropout
    both go through it), as a list of dicts: p, training, inplace, the input's shape, whether the input held -inf or
    NaN, whether it was non-negative with its last axis summing to 1 (attention weights are, whatever their shape: a
    whole (B, T, T) matrix or one query's row), and the input and output themselves.

    >>> with recorded_dropout() as calls:
    ...     _ = nn.Dropout(0.25).train()(torch.ones(2, 3))
    >>> calls[0]["p"], calls[0]["training"], calls[0]["shape"]
    (0.25, True, [2, 3])
    """
    calls = []
    original = F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        before = input.detach().clone()
        output = input if switched_off else original(input, p, training, inplace)
        finite = torch.isfinite(before)
        sums = before.sum(-1).double() if before.dim() else before.double()
        calls.append({"p": float(p), "training": bool(training), "inplace": bool(inplace),
                      "shape": list(before.shape), "non_finite": bool((~finite).any()),
                      "rows_sum_to_one": bool(finite.all() and before.dim() >= 1 and before.numel() > 0
                                              and (before >= 0).all() and bool(((sums - 1).abs() <= 1e-4).all())),
                      "input": before, "output": output.detach().clone()})
        return output

    F.dropout = dropout
    try:
        yield calls
    finally:
        F.dropout = original


def active(calls: list[dict]) -> list[dict]:
    """The recorded dropout calls that dropped anything: training mode and p > 0.

    >>> active([{"p": 0.5, "training": False}, {"p": 0.0, "training": True}, {"p": 0.1, "training": True}])
    [{'p': 0.1, 'training': True}]
    """
    return [call for call in calls if call["training"] and call["p"] > 0]


def dropout_site(call: dict, sizes: dict) -> str:
    """Where one recorded dropout call sits, judged from what it was applied to: "scores" (before the softmax:
    -inf inside, or (T, T) rows not summing to 1 where T is no other width), "weights" (attention weights:
    non-negative rows summing to 1, whatever the shape, so one query's row in a loop over queries counts too),
    "heads" (a head's output, head_size wide), "stream" (n_embd wide), "hidden" (4 * n_embd wide) or "other".

    >>> dropout_site({"non_finite": False, "rows_sum_to_one": False, "shape": [2, 5, 12]}, {"n_embd": 12, "T": 5})
    'stream'
    """
    width = call["shape"][-1] if call["shape"] else None
    if call["non_finite"]:
        return "scores"
    if call["rows_sum_to_one"]:
        return "weights"
    if width == sizes.get("T") and call["shape"][-2:-1] == [width]:
        if width not in (sizes.get("n_embd"), sizes.get("head_size"), 4 * sizes.get("n_embd", 0)):
            return "scores"  # (T, T) and not yet normalised: the scores before the mask and the softmax
    if width == sizes.get("n_embd"):
        return "stream"
    if width == sizes.get("head_size"):
        return "heads"
    if sizes.get("n_embd") and width == 4 * sizes["n_embd"]:
        return "hidden"
    return "other"


def dropout_summary(calls: list[dict], sizes: dict) -> list[dict]:
    """The plain data a judge needs about the active dropout calls: their site, p and shape, in call order.

    >>> dropout_summary([{"p": 0.5, "training": True, "non_finite": True, "rows_sum_to_one": False,
    ...                   "shape": [2, 5, 5]}], {"T": 5})
    [{'site': 'scores', 'p': 0.5, 'shape': [2, 5, 5]}]
    """
    return [{"site": dropout_site(call, sizes), "p": call["p"], "shape": call["shape"]} for call in active(calls)]


def run_module(module: nn.Module, *args) -> dict:
    """module(*args) without gradients, on copies of the tensors, as {"output": ..., "error": None, "type": ...}, or
    the error it raised as text (a judge turns it into advice). A tuple output keeps its first element (e.g. (output,
    attention weights)); "type" names what forward returned (e.g. "Tensor", "tuple").

    >>> run_module(nn.Linear(2, 1), torch.ones(1, 2))["output"].shape, run_module(nn.Linear(2, 1), 3)["error"][:9]
    (torch.Size([1, 1]), 'TypeError')
    """
    args = [arg.clone() if isinstance(arg, torch.Tensor) else arg for arg in args]  # an in-place edit stays in its run
    try:
        with torch.no_grad():
            out = module(*args)
        returned = type(out).__name__
        if isinstance(out, tuple) and len(out) and isinstance(out[0], torch.Tensor) and out[0].dim() == 3:
            out = out[0]
        return {"output": out, "error": None, "type": returned}
    except Exception as error:  # the judge turns this into advice
        return {"output": None, "error": f"{type(error).__name__}: {error}", "type": None}


def train_and_eval_runs(module: nn.Module, *args, seed: int = 0) -> dict:
    """The module on the same inputs: twice in eval mode, and in training mode with every dropout call recorded
    (under a fixed global seed), and once more with those calls switched off. Returns plain data: {"eval": [out, out],
    "train": out, "errors": [the eval and training runs' errors, or None], "hidden_dropout": whether training mode
    still differs then, "calls": [...]} with the raw recorded calls (judges use `dropout_summary`-like views; tensors
    are converted by core.to_plain).

    >>> runs = train_and_eval_runs(nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5)), torch.ones(1, 3))
    >>> len(runs["calls"]), runs["calls"][0]["training"]
    (1, True)
    """
    module.eval()
    runs = [run_module(module, *args) for _ in range(2)]
    module.train()
    torch.manual_seed(seed)
    with recorded_dropout() as calls:
        runs.append(run_module(module, *args))
    evaluations, train = [run["output"] for run in runs[:2]], runs[2]["output"]
    torch.manual_seed(seed)
    with recorded_dropout(switched_off=True):  # what is left is dropout inside a fused kernel (e.g. SDPA's dropout_p)
        unrecorded = run_module(module, *args)["output"]
    module.eval()
    hidden = isinstance(unrecorded, torch.Tensor) and isinstance(evaluations[0], torch.Tensor) and \
        unrecorded.shape == evaluations[0].shape and not torch.allclose(unrecorded, evaluations[0], atol=1e-6)
    return {"eval": evaluations, "train": train, "hidden_dropout": bool(hidden),
            "errors": [run["error"] for run in runs],
            "calls": [{key: call[key] for key in ("p", "training", "inplace", "shape", "non_finite", "rows_sum_to_one")}
                      for call in calls]}


def eval_mode_problem(runs: dict) -> str | None:
    """For judges of train_and_eval_runs data: the common dropout mistakes visible without knowing the module.

    >>> eval_mode_problem({"eval": [np.zeros(2), np.ones(2)], "train": np.zeros(2), "calls": []})[:32]
    'in eval mode two calls on the sa'
    """
    first, second = runs["eval"]
    if not all(isinstance(value, np.ndarray) for value in (first, second, runs["train"])):
        errors = [error for error in runs.get("errors", ()) if error]
        if errors and isinstance(first, np.ndarray):
            return f"in training mode your code raised {errors[-1]} (in eval mode it ran)"
        raised = f" (your code raised {errors[0]})" if errors else ""
        return "fix the errors reported by the other tests first" + raised
    if not np.array_equal(first, second):
        return ("in eval mode two calls on the same input gave different outputs: dropout is still active. Use "
                "nn.Dropout modules (they follow model.eval()), or pass training=self.training to F.dropout")
    if np.isnan(runs["train"]).any() and not np.isnan(first).any():
        return ("in training mode the output contains NaN: dropout was applied to the masked scores before the "
                "softmax (a dropped -inf becomes -inf * 0 = NaN). Apply the dropout to the attention weights, "
                "after the softmax")
    return None


@contextlib.contextmanager
def quiet_progress_bars():
    """Inside, tqdm progress bars (if tqdm is loaded) are created disabled, so a check's repeated calls of a
    student's training loop print nothing under the cell.

    >>> with quiet_progress_bars():
    ...     pass
    """
    tqdm_module = sys.modules.get("tqdm.std")
    if tqdm_module is None:
        yield
        return
    bar = tqdm_module.tqdm
    original = bar.__init__

    def quiet(self, *args, **kwargs):
        kwargs["disable"] = True
        original(self, *args, **kwargs)

    bar.__init__ = quiet
    try:
        yield
    finally:
        bar.__init__ = original


@contextlib.contextmanager
def one_thread():
    """Inside, torch uses one thread: checks run hundreds of tiny operations, and on a busy machine extra threads
    only add waiting (each op can take 100x longer).

    >>> with one_thread():
    ...     torch.get_num_threads()
    1
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def single_threaded(function: Callable) -> Callable:
    """A probe or judge that runs under one_thread().

    >>> single_threaded(torch.get_num_threads)()
    1
    """
    def wrapped(*args, **kwargs):
        with one_thread():
            return function(*args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = function.__name__, function.__doc__
    return wrapped


def as_numpy(value) -> np.ndarray:
    """A tensor or array as a float64 numpy array (for judges comparing plain data).

    >>> as_numpy(torch.ones(2)).dtype
    dtype('float64')
    """
    return np.asarray(value.detach().numpy() if isinstance(value, torch.Tensor) else value, dtype=np.float64)
