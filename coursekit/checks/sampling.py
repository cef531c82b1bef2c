"""Checks for notebook 05 (prompting and sampling): temperature, top_k, top_p and sample.

The three filters map logits to logits. Each output is compared with the reference's on the same input: any output
that gives the same distribution passes (the same -inf entries, the same softmax), so log-probabilities and
shifted logits are fine. Usual mistakes are replayed by name. `sample` is tested statistically: thousands of draws
in one call, compared with the distribution it should sample from.

Inputs: in a notebook, small hand-made tensors (the public probes); in a grading run, logits drawn from the test's
rng (other sizes, values, temperatures, k and p), so only code that computes the answer passes. The reference
(coursekit.sampling, the answer to these exercises) is imported by judges only, in `_reference`: probes run in the
student's sandbox and never touch it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng
from coursekit.checks.probing import large_magnitudes, with_global_rng_perturbed


def _reference():
    """The answers to notebook 05's exercises: judge-side only (the grader keeps this module out of the sandbox)."""
    from coursekit import sampling
    return sampling




# ---------------------------------------------------------------- probes and judges of the filters

LOGITS = torch.tensor([[1.5, -0.5, 3.0, 0.2, 2.2, -2.0, 0.9],
                       [0.1, 2.4, -1.0, 1.9, 0.0, 3.3, -0.3]])  # two rows with different orders, no ties


def _random_logits(rng: np.random.Generator, rows: int | None = None, scale: float = 1.5) -> torch.Tensor:
    """Random logits for a grading run: 2-4 rows (or one 1-D row when rows=0) of 6-12 tokens, no ties."""
    rows = int(rng.integers(2, 5)) if rows is None else rows
    vocab = int(rng.integers(6, 13))
    values = torch.from_numpy(rng.normal(0.0, scale, size=(max(rows, 1), vocab))).float()
    return values[0] if rows == 0 else values


def _case(public_logits: torch.Tensor, public_argument, secret_argument):
    """inputs() -> (logits, argument): the public ones in a notebook, random ones from the test's rng otherwise.
    secret_argument(rng) draws the argument; the logits keep the public tensor's number of dimensions."""
    def inputs():
        if is_public():
            return public_logits.clone(), public_argument
        rng = probe_rng()
        logits = _random_logits(rng, rows=0 if public_logits.ndim == 1 else None)
        return logits, secret_argument(rng, logits)
    return inputs


def _run(function, logits: torch.Tensor, argument) -> dict:
    given = logits.clone()
    try:
        out = function(given, argument)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "output": None, "changed": False}
    return {"error": None, "output": out if isinstance(out, torch.Tensor) else describe(out),
            "changed": not torch.equal(given, logits)}


def _raises(function, logits: torch.Tensor, argument) -> dict:
    try:
        out = function(logits.clone(), argument)
    except Exception as error:
        return {"raised": type(error).__name__, "message": str(error)}
    return {"raised": None, "returned": describe(out)}


def _error_judge(call: str, argument: str, hint: str = ""):
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
    """got (array) gives the same distribution as the logits expected: same -inf entries, equal softmax."""
    if not isinstance(got, np.ndarray) or got.shape != tuple(expected.shape):
        return False
    got, expected = torch.from_numpy(got).double(), expected.double()
    if not torch.equal(torch.isneginf(got), torch.isneginf(expected)):
        return False
    return torch.allclose(got.softmax(-1), expected.softmax(-1), atol=1e-6)


def _rounded(row) -> list[float]:
    """A row of logits for a message: plain floats with 3 decimals, -inf kept as it is.

    >>> _rounded(np.array([0.12345, -np.inf], dtype=np.float32))
    [0.123, -inf]
    """
    return [round(float(value), 3) for value in row]


def _argument(value) -> str:
    """A filter's argument as it appears in a message: 0.479, not np.float64(0.479).

    >>> _argument(np.float64(0.4791)), _argument(3)
    ('0.479', '3')
    """
    return str(int(value)) if float(value).is_integer() and not isinstance(value, float) else str(round(float(value), 3))


def _filter_test(name: str, inputs, call: str, expected, mistakes=(), weight: float = 1.0, accept=None) -> Test:
    """A test of a filter on inputs() -> (logits, argument). expected(logits, argument) -> logits (the reference);
    accept(output, logits, argument) -> bool replaces the comparison with it where several answers are right;
    mistakes: (message, variant(logits, argument)) pairs, named when the output matches the variant."""
    def probe(function):
        return _run(function, *inputs())

    def judge(got):
        logits, argument = inputs()
        return _filter_mistake(got, call.format(_argument(argument)), logits, argument, expected, mistakes, accept)
    return Test(name, probe, judge, weight)


def _filter_mistake(got, what, logits, argument, expected, mistakes, accept) -> str | None:
    if got["error"]:
        if "out of range" in got["error"] and argument > logits.size(-1):
            return (f"{what} raised {got['error']}: k = {argument} is more than the {logits.size(-1)} tokens; "
                    f"with k larger than the vocabulary keep every token: torch.topk(logits, min(k, logits.size(-1)))")
        if "must match the size" in got["error"]:
            return (f"{what} raised {got['error']}: keep the k-th largest (or whatever each row is compared with) "
                    f"as a column so that it broadcasts along the row: values[..., -1:], not values[..., -1]")
        return f"{what} raised {got['error']}"
    out = got["output"]
    if not isinstance(out, np.ndarray):
        return f"{what} should return a tensor of logits, got {out}"
    if got["changed"]:
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
    rows, wanted_rows = out.reshape(-1, out.shape[-1]), wanted.numpy().reshape(-1, out.shape[-1])
    row = next((i for i in range(len(rows)) if not _same_distribution(rows[i], torch.from_numpy(wanted_rows[i]))), 0)
    where = f"for row {row} of {_rounded(logits.reshape(-1, out.shape[-1])[row])}" if out.ndim > 1 else \
        f"for {_rounded(logits)}"
    return f"{what}: {where} got {_rounded(rows[row])}, expected {_rounded(wanted_rows[row])} (or a constant shift of it)"


def _dtype_test(name: str, call: str, argument) -> Test:
    """float32 logits in, float32 logits out (GPT.generate and the sampler work in float32)."""
    def judge(got):
        if got["error"] or not isinstance(got["output"], np.ndarray):
            return f"{call} raised {got['error']}" if got["error"] else f"{call} should return a tensor of logits"
        if got["output"].dtype != np.float32:
            return (f"{call} turned float32 logits into {got['output'].dtype}: keep the dtype of the logits (no "
                    f".double(), numpy or Python floats in between)")
        return None
    return Test(name, lambda f: _run(f, LOGITS.clone(), argument), judge, weight=0.05)


# ---------------------------------------------------------------- temperature


def _temperature_mistakes():
    return (("the logits are multiplied by the temperature; divide them by it", lambda x, t: x * t),
            ("the temperature has no effect: return logits / temperature", lambda x, t: x),
            ("the logits are divided by temperature ** 2: divide by temperature once", lambda x, t: x / t ** 2),
            ("the logits are divided by the square root of the temperature: divide by temperature itself",
             lambda x, t: x / math.sqrt(t)))


check_temperature = Check(
    exercise="temperature",
    expects=["a function apply_temperature(logits, temperature) -> logits"],
    tests=[
        _filter_test("apply_temperature sharpens: a temperature below 1",
                     _case(LOGITS, 0.5, lambda rng, x: round(float(rng.uniform(0.2, 0.8)), 2)),
                     "apply_temperature(logits, {})", lambda x, t: x / t, _temperature_mistakes(), weight=6),
        _filter_test("apply_temperature flattens: a temperature above 1",
                     _case(LOGITS, 2.0, lambda rng, x: round(float(rng.uniform(1.5, 4.0)), 2)),
                     "apply_temperature(logits, {})", lambda x, t: x / t, _temperature_mistakes(), weight=3),
        _filter_test("one distribution (a 1-D tensor) works too",
                     _case(LOGITS[1], 0.25, lambda rng, x: round(float(rng.uniform(0.2, 3.0)), 2)),
                     "apply_temperature on a 1-D tensor, temperature {}", lambda x, t: x / t, weight=0.5),
        _dtype_test("float32 logits stay float32", "apply_temperature(float32 logits, 0.5)", 0.5),
        Test("temperature 0 raises a ValueError naming it", lambda f: _raises(f, LOGITS, 0.0),
             _error_judge("apply_temperature(logits, 0)", "temperature"), weight=0.05),
        Test("a negative temperature raises a ValueError naming it", lambda f: _raises(f, LOGITS, -1.0),
             _error_judge("apply_temperature(logits, -1)", "temperature"), weight=0.05),
        Test("a NaN temperature raises a ValueError naming it", lambda f: _raises(f, LOGITS, float("nan")),
             _error_judge("apply_temperature(logits, nan)", "temperature",
                          ": `temperature <= 0` is False for NaN, `not temperature > 0` catches it"), weight=0.05),
    ],
)


# ---------------------------------------------------------------- top-k


def _keep(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~keep, float("-inf"))


def _rank(logits: torch.Tensor) -> torch.Tensor:
    """Rank of every entry within its row: 0 for the largest."""
    return logits.argsort(dim=-1, descending=True).argsort(dim=-1)


def _valid_top_k(out: np.ndarray, logits: torch.Tensor, k: int) -> bool:
    """Every logit above the k-th largest kept, every one below dropped, and the ones tied with it either all kept
    ("every logit below the k-th largest is -inf", the notebook's wording) or as many as make exactly k."""
    vocab = logits.size(-1)
    out, logits = torch.from_numpy(out).double().reshape(-1, vocab), logits.double().reshape(-1, vocab)
    kth = torch.topk(logits, min(k, vocab), dim=-1).values[:, -1:]
    kept = ~torch.isneginf(out)
    above, tied = logits > kth, logits == kth
    for row_kept, row_above, row_tied in zip(kept, above, tied):
        if (row_kept & ~(row_above | row_tied)).any() or (row_above & ~row_kept).any():
            return False
        if not (row_kept[row_tied].all() or int(row_kept.sum()) == min(k, vocab)):
            return False
    return torch.allclose(out.masked_fill(~kept, -math.inf).softmax(-1),
                          logits.masked_fill(~kept, -math.inf).softmax(-1), atol=1e-6)


def _top_k_mistakes():
    def threshold_keep(keep):
        return lambda x, k: _keep(x, keep(x, k))
    return (
        ("every logit was kept: set those below the k-th largest to -inf", lambda x, k: x),
        ("k + 1 tokens were kept: keep logits >= the k-th largest, torch.topk(logits, k).values[..., -1:]",
         threshold_keep(lambda x, k: _rank(x) < k + 1)),
        ("k - 1 tokens were kept (the k-th largest itself was dropped): keep logits >= the k-th largest, "
         "masked_fill(logits < kth, -inf)", threshold_keep(lambda x, k: _rank(x) < k - 1)),
        ("the k least likely tokens were kept: torch.topk returns the largest by default",
         threshold_keep(lambda x, k: _rank(x) >= x.size(-1) - k)),
        ("tokens 0 .. k - 1 were kept (positions in sorted order, not token ids): compare each logit with the k-th "
         "largest value of its row", threshold_keep(lambda x, k: torch.arange(x.size(-1)) < k)),
        ("the threshold was taken over the whole batch; each row (each sequence) keeps its own k largest: topk over "
         "dim=-1 and keep the [..., -1:] column",
         threshold_keep(lambda x, k: x >= x.flatten().topk(k).values[-1])),
        ("the other tokens were set to 0, which is an ordinary logit (probability e^0 = 1 before normalising): set "
         "them to float('-inf')", lambda x, k: _reference().top_k_filter(x, k).nan_to_num(neginf=0.0)),
    )


def _top_k(x, k):
    return _reference().top_k_filter(x, k)


TIED = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0, -1.0],
                     [0.5, 0.5, 0.5, 2.0, -1.0, 0.5]])  # k = 2: the 2nd largest is tied in both rows


def _tied_case():
    if is_public():
        return TIED.clone(), 2
    rng = probe_rng()
    return torch.from_numpy(rng.integers(-2, 3, size=(3, 7))).float(), int(rng.integers(2, 5))


check_top_k = Check(
    exercise="top_k",
    expects=["a function top_k_filter(logits, k) -> logits"],
    tests=[
        _filter_test("top_k_filter keeps the k largest logits of each row",
                     _case(LOGITS, 3, lambda rng, x: int(rng.integers(2, x.size(-1) - 1))),
                     "top_k_filter(logits, {})", _top_k, _top_k_mistakes(), weight=6, accept=_valid_top_k),
        _filter_test("k = 1 keeps only the largest", _case(LOGITS, 1, lambda rng, x: 1),
                     "top_k_filter(logits, {})", _top_k, _top_k_mistakes(), weight=2, accept=_valid_top_k),
        _filter_test("ties at the k-th largest value", _tied_case, "top_k_filter(logits with ties, {})", _top_k,
                     _top_k_mistakes(), weight=0.5, accept=_valid_top_k),
        _filter_test("one distribution (a 1-D tensor) works too",
                     _case(LOGITS[1], 3, lambda rng, x: int(rng.integers(2, x.size(-1) - 1))),
                     "top_k_filter on a 1-D tensor of logits, k={}", _top_k, _top_k_mistakes(), weight=0.5,
                     accept=_valid_top_k),
        _filter_test("k larger than the vocabulary keeps every token",
                     _case(LOGITS, 50, lambda rng, x: int(rng.integers(x.size(-1) + 1, 100))),
                     "top_k_filter(logits, {}) with fewer tokens than k", lambda x, k: x, weight=0.1),
        _dtype_test("float32 logits stay float32", "top_k_filter(float32 logits, 3)", 3),
        Test("k = 0 raises a ValueError naming k", lambda f: _raises(f, LOGITS, 0),
             _error_judge("top_k_filter(logits, 0)", "k"), weight=0.05),
    ],
)


# ---------------------------------------------------------------- top-p

NUCLEUS = torch.tensor([[0.05, 0.30, 0.10, 0.40, 0.15],
                        [0.50, 0.05, 0.20, 0.10, 0.15]]).log()
# Powers of two are exact in float32: after 0.5 and 0.25 the tokens before the third hold exactly p = 0.75.
BOUNDARY = torch.tensor([[0.125, 0.5, 0.0625, 0.25, 0.0625],
                         [0.25, 0.0625, 0.0625, 0.125, 0.5]]).log()


def _sorted_keep(logits: torch.Tensor, p: float, rule, descending: bool = True) -> torch.Tensor:
    """A nucleus variant: rule(sorted probabilities, cumsum) -> keep mask in sorted order, mapped back by scatter."""
    sorted_logits, order = logits.sort(dim=-1, descending=descending)
    probs = sorted_logits.softmax(-1)
    keep = rule(probs, probs.cumsum(-1))
    return _keep(logits, keep.scatter(-1, order, keep))


def _top_p_mistakes():
    def drop_mask_in(map_back):
        def variant(x, p):
            sorted_logits, order = x.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs >= p
            return x.masked_fill(map_back(drop, order), float("-inf"))
        return variant
    return (
        ("every logit was kept: keep only the nucleus, the most likely tokens until they hold top_p", lambda x, p: x),
        ("a token whose preceding tokens hold exactly p was kept: drop a token when cumsum - probs >= p (not > p); "
         "the nucleus is the *smallest* set that reaches p",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: ~(cum - probs > p))),
        ("the token that crosses top_p was dropped, so the kept tokens hold less than top_p: keep a token while the "
         "probability *before* it (cumsum - probs) is < top_p", lambda x, p: _sorted_keep(x, p, lambda _, cum: cum < p)),
        ("one token too many was kept: drop a token once the tokens before it hold >= top_p",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: torch.cat(
             [torch.ones_like(cum[..., :1], dtype=torch.bool), (cum - probs < p)[..., :-1]], -1))),
        ("the mask was computed in sorted order but applied to the logits in vocabulary order: map it back with "
         "drop.scatter(-1, order, drop) (or index with the sorted indices)", drop_mask_in(lambda drop, order: drop)),
        ("the sorted-order mask was mapped back with gather(-1, order), which applies the permutation the wrong way "
         "round: scatter puts entry i at position order[i], so use drop.scatter(-1, order, drop) (or "
         "drop.gather(-1, order.argsort(-1)))", drop_mask_in(lambda drop, order: drop.gather(-1, order))),
        ("the cumulative sum ran over the tokens in vocabulary order: sort the probabilities first (descending), so "
         "the nucleus holds the most likely tokens",
         lambda x, p: _keep(x, x.softmax(-1).cumsum(-1) - x.softmax(-1) < p)),
        ("the probabilities were sorted in ascending order, so the nucleus holds the least likely tokens: "
         "torch.sort(logits, descending=True)",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: cum - probs < p, descending=False)),
    )


OVERFLOW = ("every token was kept: exp of logits around 100 overflows to inf (around -120 it underflows to 0), so the "
            "probabilities are NaN and no comparison drops anything. Use torch.softmax, which subtracts each row's "
            "maximum first")


def _top_p(x, p):
    return _reference().top_p_filter(x, p)


def _secret_p(rng, logits):
    return round(float(rng.uniform(0.5, 0.9)), 2)


def _large_case():
    logits = NUCLEUS.clone() if is_public() else _random_logits(probe_rng())
    high, low = large_magnitudes(logits)
    return torch.cat([high[:1], low[1:]]), 0.6 if is_public() else _secret_p(probe_rng(), logits)


def _boundary_case():
    if is_public():
        return BOUNDARY.clone(), 0.75
    rng = probe_rng()
    rows = torch.stack([row[torch.from_numpy(rng.permutation(row.numel()))] for row in BOUNDARY.repeat(2, 1)])
    return rows, float(rng.choice([0.5, 0.75]))


check_top_p = Check(
    exercise="top_p",
    expects=["a function top_p_filter(logits, p) -> logits"],
    tests=[
        _filter_test("top_p_filter keeps the nucleus of each row", _case(NUCLEUS, 0.6, _secret_p),
                     "top_p_filter(logits, {})", _top_p, _top_p_mistakes(), weight=6),
        _filter_test("a large p keeps a larger nucleus", _case(NUCLEUS, 0.9, lambda rng, x: 0.9),
                     "top_p_filter(logits, {})", _top_p, _top_p_mistakes(), weight=3),
        _filter_test("logits around 100 and -120 (exp overflows)", _large_case, "top_p_filter(large logits, {})",
                     _top_p, ((OVERFLOW, lambda x, p: x), *_top_p_mistakes()), weight=1),
        _filter_test("exactly at the boundary: the tokens before hold exactly p", _boundary_case,
                     "top_p_filter(logits of powers of 2, {})", _top_p, _top_p_mistakes(), weight=0.5),
        _filter_test("one distribution (a 1-D tensor) works too", _case(NUCLEUS[1], 0.6, _secret_p),
                     "top_p_filter on a 1-D tensor of logits, p={}", _top_p, _top_p_mistakes(), weight=0.5),
        _filter_test("a tiny p keeps only the most likely token", _case(NUCLEUS, 1e-6, lambda rng, x: 1e-6),
                     "top_p_filter(logits, {})", _top_p, (
                         ("no token is left: the most likely token must always stay (its probability before it is "
                          "0 < p)", lambda x, p: torch.full_like(x, -math.inf)),), weight=0.1),
        _filter_test("p = 1 keeps every token", _case(NUCLEUS, 1.0, lambda rng, x: 1.0), "top_p_filter(logits, {})",
                     lambda x, p: x, weight=0.1),
        _dtype_test("float32 logits stay float32", "top_p_filter(float32 logits, 0.6)", 0.6),
        *(Test(f"p = {p} raises a ValueError naming p", lambda f, p=p: _raises(f, NUCLEUS, p),
               _error_judge(f"top_p_filter(logits, {p})", "p"), weight=0.05) for p in (0.0, 1.5)),
    ],
)


# ---------------------------------------------------------------- sample

DRAWS = 4000
SAMPLE_LOGITS = torch.tensor([2.0, 1.4, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])
SAMPLE_V = SAMPLE_LOGITS.numel()
TOLERANCE = 0.035  # total variation distance; the sampling noise of 4000 draws is about 0.015


def _sample_logits() -> torch.Tensor:
    """The distribution every draw comes from: SAMPLE_LOGITS in a notebook; permuted and shifted in a grading run."""
    if is_public():
        return SAMPLE_LOGITS.clone()
    rng = probe_rng()
    return SAMPLE_LOGITS[torch.from_numpy(rng.permutation(SAMPLE_V))] + float(rng.uniform(-3, 3))


def _call_sample(sample, batch: torch.Tensor, settings: dict, seed: int):
    return sample(batch, generator=torch.Generator().manual_seed(seed), **settings)


def _draws(settings: dict, magnitudes: bool = False):
    """Probe: DRAWS tokens in one call (a batch of DRAWS identical rows) and their counts per token id. With
    magnitudes, the logits are shifted to about 100 and to about -120 and both batches are drawn."""
    def probe(sample):
        logits = _sample_logits()
        batches = large_magnitudes(logits) if magnitudes else [logits]
        counts = torch.zeros(SAMPLE_V, dtype=torch.long)
        for row in batches:
            try:
                out = _call_sample(sample, row.expand(DRAWS // len(batches), -1).clone(), settings, seed=0)
            except Exception as error:
                return {"error": f"raised {type(error).__name__}: {error}"}
            if not isinstance(out, torch.Tensor) or out.shape != (DRAWS // len(batches),):
                return {"error": f"returned {describe(out)}; expected one token id per row, a tensor of shape "
                                 f"({DRAWS // len(batches)},)" + (" (torch.multinomial returns (batch, 1): "
                                                                 ".squeeze(-1))" if getattr(out, "ndim", 0) == 2 else "")}
            if out.is_floating_point() or out.is_complex():
                return {"error": f"returned dtype {out.dtype}; token ids are integers (torch.long)"}
            counts += torch.bincount(out.long().clamp(0, SAMPLE_V - 1), minlength=SAMPLE_V)
        return {"error": None, "counts": counts}
    return probe


def _frequency_judge(call: str, expected, mistakes=(), tolerance: float = TOLERANCE, error_hint: str = ""):
    """expected(logits) -> probabilities; mistakes: (message, variant(logits) -> probabilities) pairs."""
    def judge(got):
        if got["error"]:
            hint = f": {error_hint}" if error_hint and got["error"].startswith("raised") else ""
            if "probability" in got["error"]:
                hint = hint or (": torch.multinomial needs finite, non-negative weights; take torch.softmax of the "
                                "filtered logits (it subtracts the maximum, so logits of 100 do not overflow)")
            return f"{call} {got['error']}{hint}"
        logits = _sample_logits()
        counts = got["counts"]
        frequencies = counts / counts.sum()
        target = expected(logits).numpy()
        outside = np.flatnonzero((target == 0) & (counts > 0))
        if len(outside) == 0 and 0.5 * np.abs(frequencies - target).sum() < tolerance:
            return None
        for message, variant in mistakes:
            if 0.5 * np.abs(frequencies - variant(logits).numpy()).sum() < TOLERANCE:
                return message
        if len(outside):
            return (f"{call} sampled tokens {outside.tolist()}, which have probability 0 after filtering "
                    f"({int(counts[outside].sum())} of {int(counts.sum())} draws)")
        return (f"{call}: the frequencies of the {SAMPLE_V} tokens were {_rounded(frequencies)}, expected about "
                f"{_rounded(target)}")
    return judge


def _probs(temperature=1.0, top_k=None, top_p=None):
    def compute(logits):
        reference = _reference()
        logits = logits / temperature
        if top_k is not None:
            logits = reference.top_k_filter(logits, top_k)
        if top_p is not None:
            logits = reference.top_p_filter(logits, top_p)
        return logits.softmax(-1)
    return compute


def _greedy(logits):
    return torch.nn.functional.one_hot(logits.argmax(), SAMPLE_V).float()


def _clamped(logits):
    return logits.clamp(min=0) / logits.clamp(min=0).sum()


def _top_p_first(temperature, top_p):
    return lambda x: (_reference().top_p_filter(x, top_p) / temperature).softmax(-1)


def _top_p_then_top_k(top_k, top_p):
    return lambda x: _reference().top_k_filter(_reference().top_p_filter(x, top_p), top_k).softmax(-1)


GREEDY = "sample_next_token always returns the most likely token: sample with torch.multinomial"
CLAMPED = ("the draws follow the logits themselves clamped at 0, not their softmax: torch.multinomial treats its "
           "input as weights, so pass it torch.softmax(logits, dim=-1)")
MULTIPLIED = "the logits are multiplied by the temperature; divide them by it"
NO_TEMPERATURE = ("temperature has no effect on what is sampled: divide the logits by it before the softmax "
                  "(dividing the probabilities changes nothing, torch.multinomial renormalises them)")


def _generator_probe(sample) -> dict:
    """DRAWS tokens twice with the same generator seed and the global RNG moved in between; and another seed."""
    batch = _sample_logits().expand(DRAWS, -1).clone()
    try:
        first, second = with_global_rng_perturbed(lambda: _call_sample(sample, batch, {}, seed=5))
        third = _call_sample(sample, batch, {}, seed=6)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"error": None, "runs": [value if isinstance(value, torch.Tensor) else describe(value)
                                    for value in (first, second, third)]}


def _generator_judge(got) -> str | None:
    if got["error"]:
        return f"sample_next_token(logits, generator=...) raised {got['error']}"
    first, second, third = got["runs"]
    if not all(isinstance(run, np.ndarray) and run.shape == (DRAWS,) for run in (first, second, third)):
        return "fix the errors reported by the other tests first"
    counts = np.bincount(first.astype(np.int64).clip(0, SAMPLE_V - 1), minlength=SAMPLE_V)
    if 0.5 * np.abs(counts / DRAWS - _probs()(_sample_logits()).numpy()).sum() >= TOLERANCE:
        return "fix the distribution first (see the test of the defaults)"
    if not np.array_equal(first, second):
        return ("two calls with generators seeded alike gave different tokens once the global RNG had moved: the "
                "generator is ignored. Pass it on: torch.multinomial(probs, num_samples=1, generator=generator)")
    if np.array_equal(first, third):
        return ("generators seeded differently gave the same tokens: draw from the generator you are given (do "
                "not reseed anything inside sample_next_token)")
    return None


def _validation_probe(sample) -> dict:
    logits = SAMPLE_LOGITS.expand(4, -1).clone()
    result = {}
    for name, settings in {"top_k=0": {"top_k": 0}, "top_p=0": {"top_p": 0.0},
                           "temperature=nan": {"temperature": float("nan")}, "temperature=-1": {"temperature": -1.0}
                           }.items():
        try:
            out = _call_sample(sample, logits, settings, seed=0)
            result[name] = {"raised": None, "returned": describe(out)}
        except Exception as error:
            result[name] = {"raised": type(error).__name__, "message": str(error)}
    return result


def _validation_judge(names: tuple[str, ...], hint: str):
    def judge(got):
        for name in names:
            if got[name]["raised"] != "ValueError":
                what = f"returned {got[name]['returned']}" if got[name]["raised"] is None else \
                    f"raised {got[name]['raised']}: {got[name]['message']}"
                return f"sample_next_token(logits, {name}) should raise a ValueError (out of range), but it {what}{hint}"
        return None
    return judge


def _dtype_probe(sample) -> dict:
    out = _call_sample(sample, SAMPLE_LOGITS.expand(4, -1).clone(), {}, seed=0)
    return {"dtype": str(out.dtype) if isinstance(out, torch.Tensor) else describe(out)}


def _dtype_judge(got) -> str | None:
    if got["dtype"] != "torch.int64":
        return (f"sample_next_token should return token ids as a torch.long (int64) tensor, got {got['dtype']}: "
                f"torch.multinomial and argmax already return torch.long; do not convert them")
    return None


check_sample = Check(
    exercise="sample",
    expects=["a function sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None) -> ids"],
    tests=[
        Test(f"{DRAWS} draws with the defaults follow softmax(logits)", _draws({}),
             _frequency_judge("sample_next_token(logits)", _probs(), ((GREEDY, _greedy), (CLAMPED, _clamped))),
             weight=3),
        Test("temperature=0 is greedy: always the most likely token", _draws({"temperature": 0.0}),
             _frequency_judge("sample_next_token(logits, temperature=0)", _greedy, tolerance=1e-9,
                              error_hint="temperature=0 means greedy decoding: return logits.argmax(dim=-1) before "
                                         "applying the temperature (dividing by 0 is not defined)"), weight=0.3),
        Test("temperature=0.01 is practically argmax", _draws({"temperature": 0.01}),
             _frequency_judge("sample_next_token(logits, temperature=0.01)", _greedy,
                              ((NO_TEMPERATURE, _probs()), (MULTIPLIED, _probs(temperature=100.0))),
                              tolerance=0.001), weight=0.2),
        Test("temperature=3 flattens the distribution", _draws({"temperature": 3.0}),
             _frequency_judge("sample_next_token(logits, temperature=3)", _probs(temperature=3.0), (
                 (NO_TEMPERATURE, _probs()),
                 (MULTIPLIED, _probs(temperature=1 / 3)))), weight=2),
        Test("top_k=1 is greedy", _draws({"top_k": 1}),
             _frequency_judge("sample_next_token(logits, top_k=1)", _greedy, (
                 ("top_k is ignored: apply top_k_filter when top_k is not None", _probs()),), tolerance=1e-9),
             weight=0.2),
        Test("top_k=3 samples only the 3 most likely tokens", _draws({"top_k": 3}),
             _frequency_judge("sample_next_token(logits, top_k=3)", _probs(top_k=3), (
                 ("top_k is ignored: apply top_k_filter when top_k is not None", _probs()),)), weight=2),
        Test("top_p=0.6 never samples outside the nucleus", _draws({"top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, top_p=0.6)", _probs(top_p=0.6), (
                 ("top_p is ignored: apply top_p_filter when top_p is not None", _probs()),)), weight=2),
        Test("temperature=2 with top_p=0.6: the nucleus of the tempered distribution",
             _draws({"temperature": 2.0, "top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, temperature=2, top_p=0.6)", _probs(2.0, None, 0.6), ((
                 ("top-p was applied before the temperature: divide by the temperature first, then filter (the "
                  "nucleus is that of the distribution you sample from)"), _top_p_first(2.0, 0.6)),)), weight=5),
        Test("top_k=3 with top_p=0.7: top-k first, then the nucleus of what is left",
             _draws({"top_k": 3, "top_p": 0.7}),
             _frequency_judge("sample_next_token(logits, top_k=3, top_p=0.7)", _probs(1.0, 3, 0.7), ((
                 ("top-p was applied before top-k: filter with top-k first, then take the nucleus of the tokens "
                  "that are left (temperature, then top-k, then top-p)"), _top_p_then_top_k(3, 0.7)),)), weight=2),
        Test("logits around 100 and -120 (exp overflows)", _draws({}, magnitudes=True),
             _frequency_judge("sample_next_token(logits around 100 and -120)", _probs(), (
                 (GREEDY, _greedy),)), weight=1),
        Test("sampling uses the generator it is given", _generator_probe, _generator_judge, weight=2),
        Test("token ids are torch.long", _dtype_probe, _dtype_judge, weight=0.05),
        Test("top_k=0 and top_p=0 are errors, not 'no filter'", _validation_probe,
             _validation_judge(("top_k=0", "top_p=0"), ": test `if top_k is not None:` (not `if top_k:`, which "
                                                        "treats 0 as not given) and let your filter reject it"),
             weight=0.1),
        Test("a NaN or negative temperature is an error", _validation_probe,
             _validation_judge(("temperature=nan", "temperature=-1"), ": apply_temperature rejects it when "
                                                                      "temperature is not 0"), weight=0.05),
    ],
)
