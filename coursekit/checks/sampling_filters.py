"""Checks for notebook 05, part 1: how a logits filter is checked, and the first filter, apply_temperature.

The three filters of notebook 05 (temperature, top_k, top_p; see sampling_top_k.py and sampling_top_p.py) map
logits to logits. Each output is compared with the reference's on the same input: any output that gives the same
distribution passes (the same -inf entries, the same softmax), so log-probabilities and shifted logits are fine.
Usual mistakes are replayed by name.

Inputs: in a notebook, small hand-made tensors (the public probes); in a grading run, logits drawn from the test's
rng (other sizes, values, temperatures, k and p), so only code that computes the answer passes. The reference
(coursekit.sampling, the answer to these exercises) is imported by judges only, in `reference`: probes run in the
student's sandbox and never touch it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng
from coursekit.checks.probing import large_magnitudes


def reference():
    """The answers to notebook 05's exercises: judge-side only (the grader keeps this module out of the sandbox)."""
    from coursekit import sampling
    return sampling


# ---------------------------------------------------------------- probes and judges of the filters

LOGITS = torch.tensor([[1.5, -0.5, 3.0, 0.2, 2.2, -2.0, 0.9],
                       [0.1, 2.4, -1.0, 1.9, 0.0, 3.3, -0.3]])  # two rows with different orders, no ties


def random_logits(rng: np.random.Generator, rows: int | None = None, scale: float = 1.5) -> torch.Tensor:
    """Random logits for a grading run: 2-4 rows (or one 1-D row when rows=0) of 6-12 tokens, no ties."""
    rows = int(rng.integers(2, 5)) if rows is None else rows
    vocab = int(rng.integers(6, 13))
    values = torch.from_numpy(rng.normal(0.0, scale, size=(max(rows, 1), vocab))).float()
    return values[0] if rows == 0 else values


def filter_case(public_logits: torch.Tensor, public_argument, secret_argument):
    """inputs() -> (logits, argument): the public ones in a notebook, random ones from the test's rng otherwise.
    secret_argument(rng) draws the argument; the logits keep the public tensor's number of dimensions."""
    def inputs():
        if is_public():
            return public_logits.clone(), public_argument
        rng = probe_rng()
        logits = random_logits(rng, rows=0 if public_logits.ndim == 1 else None)
        return logits, secret_argument(rng, logits)
    return inputs


def _run(function, logits: torch.Tensor, argument) -> dict:
    given = logits.clone()
    try:
        out = function(given, argument)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "output": None, "given_after": None}
    return {"error": None, "output": out if isinstance(out, torch.Tensor) else describe(out),
            "given_after": given}  # the judge compares it with the logits it chose


def raises(function, logits: torch.Tensor, argument) -> dict:
    try:
        out = function(logits.clone(), argument)
    except Exception as error:
        return {"raised": type(error).__name__, "message": str(error)}
    return {"raised": None, "returned": describe(out)}


def error_judge(call: str, argument: str, hint: str = ""):
    def judge(got):
        if got["raised"] is None:
            return (f"{call} should raise a ValueError that names {argument} and its allowed range; it returned "
                    f"{got['returned']}{hint}")
        if got["raised"] == "AssertionError":
            return (f"{call} raised an AssertionError (from assert): raise ValueError(...) instead, naming {argument} "
                    f"and its allowed range; asserts are for bugs in your own code, and python -O removes them")
        if got["raised"] != "ValueError":
            return f"{call} should raise a ValueError naming {argument}, got {got['raised']}: {got['message']}"
        if argument not in got["message"]:
            return f"the error for {call} should name the argument {argument!r}; your message: {got['message']!r}"
        return None
    return judge


def _same_distribution(got, expected: torch.Tensor) -> bool:
    """got (array) gives the same distribution as the logits expected: same -inf entries, equal softmax (to 1e-4:
    float32 logits around -400, as temperature makes of -120, differ by 1e-5 in probability between right ways)."""
    if not isinstance(got, np.ndarray) or got.shape != tuple(expected.shape):
        return False
    got, expected = torch.from_numpy(got).double(), expected.double()
    if not torch.equal(torch.isneginf(got), torch.isneginf(expected)):
        return False
    return torch.allclose(got.softmax(-1), expected.softmax(-1), atol=1e-4)


def rounded(values, digits: int = 3) -> list[float]:
    """Numbers for a message as plain floats (-inf kept as it is): [0.479], never [np.float64(0.479)].

    >>> rounded(np.array([0.12345, -np.inf], dtype=np.float32)), rounded(torch.tensor([[0.47912, 1.0]]), 2)
    ([0.123, -inf], [0.48, 1.0])
    """
    return [_significant(float(value), digits) for value in np.asarray(values).reshape(-1)]


def _significant(value: float, digits: int = 3) -> float:
    """value to `digits` decimals, or to `digits` significant digits when it is smaller than 0.01 (1e-06, not 0.0).

    >>> _significant(0.47912), _significant(0.000123456), _significant(0.0)
    (0.479, 0.000123, 0.0)
    """
    return round(value, digits) if value == 0 or not math.isfinite(value) or abs(value) >= 0.01 else \
        float(f"{value:.{digits}g}")


def _argument(value) -> str:
    """A filter's argument as it appears in a message: 0.479, not np.float64(0.479).

    >>> _argument(np.float64(0.4791)), _argument(3), _argument(1e-6)
    ('0.479', '3', '1e-06')
    """
    return str(int(value)) if float(value).is_integer() and not isinstance(value, float) else \
        str(_significant(float(value)))


def filter_test(name: str, inputs, call: str, expected, mistakes=(), weight: float = 1.0, accept=None,
                scaled: bool = False, diagnose=None) -> Test:
    """A test of a filter on inputs() -> (logits, argument). expected(logits, argument) -> logits (the reference);
    accept(output, logits, argument) -> bool replaces the comparison with it where several answers are right;
    mistakes: (message, variant(logits, argument)) pairs, named when the output matches the variant; diagnose(output,
    logits, argument) -> message or None names a mistake no single variant describes; scaled: the argument is a
    temperature, and logits divided by another number are named with that number."""
    def probe(function):
        return _run(function, *inputs())

    def judge(got):
        logits, argument = inputs()
        return _filter_mistake(got, call.format(_argument(argument)), logits, argument, expected, mistakes, accept,
                               scaled, diagnose)
    return Test(name, probe, judge, weight)


def _filter_mistake(got, what, logits, argument, expected, mistakes, accept, scaled=False,
                    diagnose=None) -> str | None:
    if got["error"]:
        if "out of range" in got["error"] and argument > logits.size(-1):
            return (f"{what}: k = {argument} is more than the {logits.size(-1)} tokens of a row, so torch.topk "
                    f"failed (PyTorch says 'selected index k out of range'). With k larger than the vocabulary keep "
                    f"every token: torch.topk(logits, min(k, logits.size(-1)))")
        if "must match the size" in got["error"]:
            return (f"{what} raised {got['error']}: keep the k-th largest (or whatever each row is compared with) "
                    f"as a column so that it broadcasts along the row: values[..., -1:], not values[..., -1]")
        return f"{what} raised {got['error']}"
    out = got["output"]
    if not isinstance(out, np.ndarray):
        return f"{what} should return a tensor of logits, got {out}"
    if not (isinstance(got["given_after"], np.ndarray) and np.array_equal(got["given_after"], logits.numpy())):
        return ("the logits passed in were modified in place (an operation ending in _, or /=, *=, or assigning "
                "into logits[...]): return a new tensor, e.g. logits / temperature or logits.masked_fill(...)")
    wanted = expected(logits, argument)
    if out.shape != tuple(wanted.shape):
        return f"{what} should return a tensor of shape {tuple(wanted.shape)} (the shape of logits), got {out.shape}"
    if not np.issubdtype(out.dtype, np.floating):
        return f"{what} should return floating-point logits, got dtype {out.dtype}"
    if accept(out, logits, argument) if accept else _same_distribution(out, wanted):
        return None
    if np.isnan(out).any():
        if torch.isneginf(logits).any():
            return (f"{what} gives NaN on rows that already hold -inf (as top_k_filter leaves them): the mean of such "
                    f"a row, or -inf - (-inf), is NaN; torch.sort and torch.softmax handle -inf as it is")
        if float(logits.abs().max()) > 50:
            return (f"{what} gives NaN for logits around {round(float(logits.max()))}: exp of such logits overflows "
                    f"(or underflows to 0 / 0). Use torch.softmax, which subtracts each row's maximum first")
        return f"{what} returned NaN entries"
    if np.isfinite(out).all() and np.allclose(out.sum(-1), 1.0) and (out >= 0).all() \
            and _same_distribution(np.where(out > 0, np.log(np.where(out > 0, out, 1.0)), -np.inf), wanted):
        return f"{what} returns probabilities; return logits (the softmax comes once, when sampling)"
    for message, variant in mistakes:
        if _same_distribution(out, variant(logits, argument)):
            return f"{what}: {message}"
    diagnosis = diagnose(out, logits, argument) if diagnose else None
    if diagnosis:
        return f"{what}: {diagnosis}"
    divisor = _divisor(out, logits) if scaled else None
    if divisor is not None:
        return (f"{what}: the logits were divided by {_significant(divisor):g}, not by the temperature "
                f"{_argument(argument)}: is the temperature clamped (max/min), rounded, cast to int or replaced by a "
                f"fixed number? divide by it as it is given")
    for bound in (5.0, 10.0, 20.0, 30.0, 50.0) if float(logits.abs().max()) > 50 else ():
        if _same_distribution(out, expected(logits.clamp(-bound, bound), argument)):
            return (f"{what}: the logits were clamped to a fixed range (e.g. .clamp(-{bound:g}, {bound:g})), so logits "
                    f"around 100 (or -120) all became the same number and their differences were lost; nothing needs "
                    f"clamping (torch.softmax subtracts each row's maximum first)")
    dropped = torch.isneginf(wanted).numpy()
    if dropped.any() and np.isfinite(out).all() and (out[dropped] < -1e3).all() and (out[~dropped] > -1e3).all():
        return (f"{what}: the dropped tokens were set to {rounded(out[dropped][:1])[0]:g}, a large negative number; "
                f"set them to float('-inf'), which every later step (softmax, the explorer's count of kept tokens) "
                f"reads as removed")
    rows, wanted_rows = out.reshape(-1, out.shape[-1]), wanted.numpy().reshape(-1, out.shape[-1])
    row = next((i for i in range(len(rows)) if not _same_distribution(rows[i], torch.from_numpy(wanted_rows[i]))), 0)
    where = f"for row {row} of {rounded(logits.reshape(-1, out.shape[-1])[row])}" if out.ndim > 1 else \
        f"for {rounded(logits)}"
    return f"{what}: {where} got {rounded(rows[row])}, expected {rounded(wanted_rows[row])} (or a constant shift of it)"


def _divisor(out: np.ndarray, logits: torch.Tensor) -> float | None:
    """c when out is logits / c up to a constant shift per row (c > 0), else None."""
    got, given = torch.from_numpy(out).double(), logits.double()
    if not torch.isfinite(got).all():
        return None
    got, given = got - got.mean(-1, keepdim=True), given - given.mean(-1, keepdim=True)
    scale = float((got * given).sum() / (got * got).sum().clamp(min=1e-12))
    return scale if scale > 0 and torch.allclose(got * scale, given, atol=1e-4, rtol=1e-4) else None


def dtype_tests(call: str, argument) -> list[Test]:
    """float32 logits in, float32 out; float64 in, float64 out. A filter hands its logits to the next filter and to
    the sampler (GPT.generate works in float32, a float64 caller expects float64 back), so it keeps their dtype; what
    is computed for a reader to look at (06's similarity matrix and tables) may come back in any floating dtype."""
    def judge_for(dtype: str):
        def judge(got):
            if got["error"] or not isinstance(got["output"], np.ndarray):
                return f"{call} raised {got['error']}" if got["error"] else f"{call} should return a tensor of logits"
            if got["output"].dtype != np.dtype(dtype):
                return (f"{call} turned {dtype} logits into {got['output'].dtype}: keep the dtype of the logits (no "
                        f".float(), .double(), numpy or Python floats in between)")
            return None
        return judge
    return [Test(f"{dtype} logits stay {dtype}", lambda f, dtype=dtype: _run(f, LOGITS.to(getattr(torch, dtype)),
                                                                             argument),
                 judge_for(dtype), weight=0.05, needs_right_outputs=True) for dtype in ("float32", "float64")]


# ---------------------------------------------------------------- temperature


def _temperature_mistakes():
    return (("the logits are multiplied by the temperature; divide them by it", lambda x, t: x * t),
            ("the temperature has no effect: return logits / temperature (the temperature as it is given: int() or "
             "round() turn a temperature below 1 into 0 or 1)", lambda x, t: x),
            ("the logits are divided by temperature ** 2: divide by temperature once", lambda x, t: x / t ** 2),
            ("the logits are divided by the square root of the temperature: divide by temperature itself",
             lambda x, t: x / math.sqrt(t)),
            ("the logits were floor-divided (//), which rounds them down to whole numbers: divide with /",
             lambda x, t: x // t),
            ("a log_softmax was taken over dim 0, across the rows of the batch: apply_temperature only divides "
             "(and any softmax works over dim=-1, the tokens of a row)", lambda x, t: (x / t).log_softmax(0)))


def _large_temperature_case():
    """One row around 100 and one around -120, and a temperature below 1 (the public 0.5, or one drawn)."""
    logits = LOGITS.clone() if is_public() else random_logits(probe_rng())
    high, low = large_magnitudes(logits)
    return torch.cat([high[:1], low[1:]]), 0.5 if is_public() else round(float(probe_rng().uniform(0.2, 0.8)), 2)


check_temperature = Check(
    exercise="temperature",
    expects=["a function apply_temperature(logits, temperature) -> logits"],
    tests=[
        filter_test("apply_temperature sharpens: a temperature below 1",
                     filter_case(LOGITS, 0.5, lambda rng, x: round(float(rng.uniform(0.2, 0.8)), 2)),
                     "apply_temperature(logits, {})", lambda x, t: x / t, _temperature_mistakes(), weight=6,
                     scaled=True),
        filter_test("apply_temperature flattens: a temperature above 1",
                     filter_case(LOGITS, 2.5, lambda rng, x: round(float(rng.uniform(1.5, 4.0)), 2)),
                     "apply_temperature(logits, {})", lambda x, t: x / t, _temperature_mistakes(), weight=3,
                     scaled=True),
        filter_test("one distribution (a 1-D tensor) works too",
                     filter_case(LOGITS[1], 0.25, lambda rng, x: round(float(rng.uniform(0.2, 3.0)), 2)),
                     "apply_temperature on a 1-D tensor, temperature {}", lambda x, t: x / t, weight=0.5,
                     scaled=True),
        *(filter_test(f"a {name} temperature", filter_case(LOGITS, public, lambda rng, x, low=low, high=high: round(
            float(rng.uniform(low, high)), 3)), "apply_temperature(logits, {})", lambda x, t: x / t,
            _temperature_mistakes(), weight=0.2, scaled=True)
          for name, public, low, high in (("very low", 0.1, 0.02, 0.15), ("very high", 10.0, 8.0, 25.0))),
        filter_test("logits around 100 and -120", _large_temperature_case, "apply_temperature(large logits, {})",
                     lambda x, t: x / t, _temperature_mistakes(), weight=0.5, scaled=True),
        *dtype_tests("apply_temperature(logits, 0.5)", 0.5),
        Test("temperature 0 raises a ValueError naming it", lambda f: raises(f, LOGITS, 0.0),
             error_judge("apply_temperature(logits, 0)", "temperature"), weight=0.05,
             needs_right_outputs=True),
        Test("a negative temperature raises a ValueError naming it", lambda f: raises(f, LOGITS, -1.0),
             error_judge("apply_temperature(logits, -1)", "temperature"), weight=0.05,
             needs_right_outputs=True),
        Test("a NaN temperature raises a ValueError naming it", lambda f: raises(f, LOGITS, float("nan")),
             error_judge("apply_temperature(logits, nan)", "temperature",
                          ": `temperature <= 0` is False for NaN, `not temperature > 0` catches it"), weight=0.05,
             needs_right_outputs=True),
    ],
)


def keep_only(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~keep, float("-inf"))
