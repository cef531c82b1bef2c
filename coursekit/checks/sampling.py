"""Checks for notebook 05 (prompting and sampling): temperature, top_k, top_p and sample.

The three filters map logits to logits, so they are compared with coursekit.sampling on small batches. Any output
that gives the same distribution passes (log-probabilities differ from logits by a constant per row); usual mistakes
are replayed by name. `sample` is tested statistically: thousands of draws in one call, with a fixed generator,
compared with the distribution it should sample from (top-p never outside the nucleus, temperature near 0 is argmax,
top_k=1 is greedy, temperature 0 is exactly greedy).
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit import sampling
from coursekit.checks.core import Check, Test, describe

LOGITS = torch.tensor([[1.5, -0.5, 3.0, 0.2, 2.2, -2.0, 0.9],
                       [0.1, 2.4, -1.0, 1.9, 0.0, 3.3, -0.3]])  # two rows with different orders, no ties


def _run(function, *args) -> dict:
    logits = args[0].clone()
    try:
        out = function(*args)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "output": None, "changed": False}
    return {"error": None, "output": out if isinstance(out, torch.Tensor) else describe(out),
            "changed": not torch.equal(logits, args[0])}


def _raises(function, *args) -> dict:
    try:
        out = function(*args)
    except Exception as error:
        return {"raised": type(error).__name__, "message": str(error)}
    return {"raised": None, "returned": describe(out)}


def _error_judge(call: str, argument: str):
    def judge(got):
        if got["raised"] is None:
            return (f"{call} should raise a ValueError that names {argument} and its allowed range; it returned "
                    f"{got['returned']}")
        if got["raised"] == "AssertionError":
            return (f"{call} raised an AssertionError (from assert): raise ValueError(...) instead, naming {argument} "
                    f"and its allowed range; asserts are for bugs in your own code, and python -O removes them")
        if argument not in got["message"]:
            return f"the error for {call} should name the argument {argument!r}; your message: {got['message']!r}"
        return None
    return judge


def _same_distribution(got, expected: torch.Tensor) -> bool:
    """got (array) gives the same distribution as the logits expected: same -inf entries, equal softmax."""
    if not isinstance(got, np.ndarray) or got.shape != tuple(expected.shape):
        return False
    got = torch.from_numpy(got).double()
    expected = expected.double()
    if not torch.equal(torch.isneginf(got), torch.isneginf(expected)):
        return False
    return torch.allclose(got.softmax(-1), expected.softmax(-1), atol=1e-6)


def _rounded(row) -> list[float]:
    """A row of logits for a message: 3 decimals, -inf kept as it is.

    >>> _rounded(np.array([0.12345, -np.inf], dtype=np.float32))
    [0.123, -inf]
    """
    return [round(float(value), 3) for value in row]


def _filter_judge(what: str, expected, mistakes: dict):
    def judge(got):
        if got["error"]:
            return f"{what} raised {got['error']}"
        out = got["output"]
        if not isinstance(out, np.ndarray):
            return f"{what} should return a tensor of logits, got {out}"
        if got["changed"]:
            return ("the logits passed in were modified in place (an operation ending in _, or /=, *=, or assigning "
                    "into logits[...]): return a new tensor, e.g. logits / temperature or logits.masked_fill(...)")
        if _same_distribution(out, expected()):
            return None
        if out.shape == tuple(expected().shape) and np.isfinite(out).all() and np.allclose(out.sum(-1), 1.0) \
                and _same_distribution(np.log(np.clip(out, 1e-300, None)), expected()):
            return f"{what} returns probabilities; return logits (the softmax comes once, when sampling)"
        for message, variant in mistakes.items():
            if _same_distribution(out, variant()):
                return message
        wanted = expected().numpy()
        if out.shape != wanted.shape:
            return f"{what} should return a tensor of shape {wanted.shape}, got {out.shape}"
        rows = out.reshape(-1, out.shape[-1]) if out.ndim > 1 else out[None]
        wanted_rows = wanted.reshape(rows.shape)
        row = next((i for i in range(len(rows)) if not _same_distribution(rows[i], torch.from_numpy(wanted_rows[i]))),
                   0)
        where = f"row {row}" if out.ndim > 1 else "the logits"
        return (f"{what}: for {where} got {_rounded(rows[row])}, expected {_rounded(wanted_rows[row])} "
                f"(or a constant shift of it)")
    return judge


# ---------------------------------------------------------------- temperature


check_temperature = Check(
    exercise="temperature",
    expects=["a function apply_temperature(logits, temperature) -> logits"],
    tests=[
        *(Test(f"apply_temperature(logits, {t})", lambda f, t=t: _run(f, LOGITS.clone(), t),
               _filter_judge(f"apply_temperature(logits, {t})", lambda t=t: LOGITS / t, {
                   "the logits are multiplied by the temperature; divide them by it": lambda t=t: LOGITS * t,
                   "the temperature has no effect: return logits / temperature": lambda: LOGITS,
                   "the logits are divided by temperature ** 2: divide by temperature once": lambda t=t: LOGITS / t ** 2,
               })) for t in (0.5, 2.0)),
        Test("one distribution (a 1-D tensor) works too", lambda f: _run(f, LOGITS[1].clone(), 0.25),
             _filter_judge("apply_temperature on a 1-D tensor", lambda: LOGITS[1] / 0.25, {})),
        Test("temperature 0 raises a ValueError naming it", lambda f: _raises(f, LOGITS.clone(), 0.0),
             _error_judge("apply_temperature(logits, 0)", "temperature")),
        Test("a negative temperature raises a ValueError naming it", lambda f: _raises(f, LOGITS.clone(), -1.0),
             _error_judge("apply_temperature(logits, -1)", "temperature")),
    ],
)


# ---------------------------------------------------------------- top-k


def _keep(logits: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    return logits.masked_fill(~keep, float("-inf"))


def _rank(logits: torch.Tensor) -> torch.Tensor:
    """Rank of every entry within its row: 0 for the largest."""
    return logits.argsort(dim=-1, descending=True).argsort(dim=-1)


def _global_top_k(k):
    threshold = LOGITS.flatten().topk(k).values[-1]
    return lambda: _keep(LOGITS, LOGITS >= threshold)


def _top_k_test(k):
    return Test(f"top_k_filter(logits, {k}) on two rows", lambda f: _run(f, LOGITS.clone(), k),
                _filter_judge(f"top_k_filter(logits, {k})", lambda: sampling.top_k_filter(LOGITS, k), {
                    "every logit was kept: set those below the k-th largest to -inf": lambda: LOGITS,
                    "k + 1 tokens were kept: keep logits >= the k-th largest, torch.topk(logits, k).values[..., -1:]":
                        lambda: _keep(LOGITS, _rank(LOGITS) < k + 1),
                    "k - 1 tokens were kept: keep logits >= the k-th largest, torch.topk(logits, k).values[..., -1:]":
                        lambda: _keep(LOGITS, _rank(LOGITS) < k - 1),
                    "the k least likely tokens were kept: torch.topk returns the largest by default":
                        lambda: _keep(LOGITS, _rank(LOGITS) >= LOGITS.size(-1) - k),
                    ("the threshold was taken over the whole batch; each row (each sequence) keeps its own k "
                     "largest: topk over dim=-1 and keep the [..., -1:] column"): _global_top_k(k),
                    ("the other tokens were set to 0, which is an ordinary logit (probability e^0 = 1 before "
                     "normalising): set them to float('-inf')"):
                        lambda: sampling.top_k_filter(LOGITS, k).nan_to_num(neginf=0.0),
                }))


check_top_k = Check(
    exercise="top_k",
    expects=["a function top_k_filter(logits, k) -> logits"],
    tests=[
        _top_k_test(3),
        _top_k_test(1),
        Test("one distribution (a 1-D tensor) works too", lambda f: _run(f, LOGITS[1].clone(), 3),
             _filter_judge("top_k_filter on a 1-D tensor of logits", lambda: sampling.top_k_filter(LOGITS[1], 3), {})),
        Test("k larger than the vocabulary keeps every token", lambda f: _run(f, LOGITS.clone(), 50),
             _filter_judge("top_k_filter(logits, 50) with 7 tokens", lambda: LOGITS, {})),
        Test("k = 0 raises a ValueError naming top_k or k", lambda f: _raises(f, LOGITS.clone(), 0),
             lambda got: _error_judge("top_k_filter(logits, 0)", "k")(got)),
    ],
)


# ---------------------------------------------------------------- top-p

NUCLEUS = torch.tensor([[0.05, 0.30, 0.10, 0.40, 0.15],
                        [0.50, 0.05, 0.20, 0.10, 0.15]]).log()


def _nucleus(logits: torch.Tensor, p: float, before: bool = True, extra: int = 0) -> torch.Tensor:
    probs = logits.softmax(-1)
    order = probs.argsort(dim=-1, descending=True)
    sorted_probs = probs.gather(-1, order)
    mass = sorted_probs.cumsum(-1) - (sorted_probs if before else 0)
    keep_sorted = mass < p
    if extra:
        keep_sorted = _rank_sorted_extend(keep_sorted, extra)
    keep = keep_sorted.scatter(-1, order, keep_sorted)
    return _keep(logits, keep)


def _rank_sorted_extend(keep_sorted: torch.Tensor, extra: int) -> torch.Tensor:
    counts = keep_sorted.sum(-1, keepdim=True) + extra
    return torch.arange(keep_sorted.size(-1)) < counts


def _unsorted_mask(logits: torch.Tensor, p: float) -> torch.Tensor:
    probs = logits.softmax(-1)
    sorted_probs, _ = probs.sort(dim=-1, descending=True)
    drop_sorted = sorted_probs.cumsum(-1) - sorted_probs >= p
    return logits.masked_fill(drop_sorted, float("-inf"))  # mask in sorted order, applied to the unsorted logits


def _top_p_test(p):
    return Test(f"top_p_filter(logits, {p}) on two rows", lambda f: _run(f, NUCLEUS.clone(), p),
                _filter_judge(f"top_p_filter(logits, {p})", lambda: sampling.top_p_filter(NUCLEUS, p), {
                    "every logit was kept: keep only the nucleus, the most likely tokens until they hold top_p":
                        lambda: NUCLEUS,
                    ("the token that crosses top_p was dropped, so the kept tokens hold less than top_p: keep a token "
                     "while the probability *before* it (cumsum - probs) is < top_p"):
                        lambda: _nucleus(NUCLEUS, p, before=False),
                    "one token too many was kept: drop a token once the tokens before it hold >= top_p":
                        lambda: _nucleus(NUCLEUS, p, extra=1),
                    ("the mask was computed in sorted order but applied to the logits in vocabulary order: map it "
                     "back with scatter(-1, order, mask) (or index with the sorted indices)"):
                        lambda: _unsorted_mask(NUCLEUS, p),
                }))


check_top_p = Check(
    exercise="top_p",
    expects=["a function top_p_filter(logits, p) -> logits"],
    tests=[
        _top_p_test(0.6),
        _top_p_test(0.9),
        Test("one distribution (a 1-D tensor) works too", lambda f: _run(f, NUCLEUS[1].clone(), 0.6),
             _filter_judge("top_p_filter on a 1-D tensor of logits", lambda: sampling.top_p_filter(NUCLEUS[1], 0.6),
                           {})),
        Test("p = 1 keeps every token", lambda f: _run(f, NUCLEUS.clone(), 1.0),
             _filter_judge("top_p_filter(logits, 1.0)", lambda: NUCLEUS, {})),
        Test("a tiny p keeps only the most likely token", lambda f: _run(f, NUCLEUS.clone(), 1e-6),
             _filter_judge("top_p_filter(logits, 1e-6)", lambda: sampling.top_p_filter(NUCLEUS, 1e-6), {
                 ("no token is left: the most likely token must always stay (its probability before it is 0 < p)"):
                     lambda: NUCLEUS.masked_fill(torch.ones_like(NUCLEUS, dtype=torch.bool), float("-inf"))})),
        *(Test(f"p = {p} raises a ValueError naming top_p or p", lambda f, p=p: _raises(f, NUCLEUS.clone(), p),
               _error_judge(f"top_p_filter(logits, {p})", "p")) for p in (0.0, 1.5)),
    ],
)


# ---------------------------------------------------------------- sample

DRAWS = 4000
SAMPLE_LOGITS = torch.tensor([2.0, 1.4, 1.0, 0.5, 0.0, -0.5, -1.0, -2.0])
SAMPLE_V = SAMPLE_LOGITS.numel()


def _draws(settings: dict, logits=SAMPLE_LOGITS, seed: int = 0):
    def probe(sample):
        batch = logits.expand(DRAWS, -1).clone()
        try:
            out = sample(batch, generator=torch.Generator().manual_seed(seed), **settings)
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
        if not isinstance(out, torch.Tensor) or out.shape != (DRAWS,):
            got = describe(out)
            return {"error": f"returned {got}; expected one token id per row, a tensor of shape ({DRAWS},)"}
        if out.dtype not in (torch.long, torch.int):
            return {"error": f"returned dtype {out.dtype}; token ids are integers (torch.long)"}
        again = sample(batch, generator=torch.Generator().manual_seed(seed), **settings)
        return {"error": None, "counts": torch.bincount(out.clamp(0, SAMPLE_V - 1), minlength=SAMPLE_V),
                "reproducible": bool(torch.equal(out, again))}
    return probe


def _frequency_judge(call: str, expected, mistakes: dict | None = None, tolerance: float = 0.035,
                     error_hint: str = ""):
    def judge(got):
        if got["error"] and error_hint and not got["error"].startswith("returned"):
            return f"{call} raised {got['error']}: {error_hint}"
        if got["error"]:
            return f"{call} {got['error']}" if got["error"].startswith("returned") else f"{call} raised {got['error']}"
        counts = got["counts"]
        frequencies = counts / counts.sum()
        target = expected().numpy()
        outside = np.flatnonzero((target == 0) & (counts > 0))
        if len(outside) == 0 and 0.5 * np.abs(frequencies - target).sum() < tolerance:
            if not got["reproducible"]:
                return "two calls with identically seeded generators gave different tokens: pass generator to torch.multinomial"
            return None
        for message, variant in (mistakes or {}).items():
            if 0.5 * np.abs(frequencies - variant().numpy()).sum() < 0.035:  # sampling noise is about 0.015
                return message
        if len(outside):
            return (f"{call} sampled tokens {outside.tolist()}, which have probability 0 after filtering "
                    f"({int(counts[outside].sum())} of {DRAWS} draws)")
        return (f"{call}: the frequencies of the {SAMPLE_V} tokens were {np.round(frequencies, 3).tolist()}, expected "
                f"about {np.round(target, 3).tolist()}")
    return judge


def _probs(temperature=1.0, top_k=None, top_p=None):
    def compute():
        logits = SAMPLE_LOGITS / temperature
        if top_k is not None:
            logits = sampling.top_k_filter(logits, top_k)
        if top_p is not None:
            logits = sampling.top_p_filter(logits, top_p)
        return logits.softmax(-1)
    return compute


def _greedy():
    return torch.nn.functional.one_hot(SAMPLE_LOGITS.argmax(), SAMPLE_V).float()


def _top_p_first():
    return lambda: (sampling.top_p_filter(SAMPLE_LOGITS, 0.6) / 2.0).softmax(-1)


check_sample = Check(
    exercise="sample",
    expects=["a function sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None) -> ids"],
    tests=[
        Test(f"{DRAWS} draws with the defaults follow softmax(logits)", _draws({}),
             _frequency_judge("sample_next_token(logits)", _probs(), {
                 "sample_next_token always returns the most likely token: sample with torch.multinomial": _greedy})),
        Test("temperature=0 is greedy: always the most likely token", _draws({"temperature": 0.0}),
             _frequency_judge("sample_next_token(logits, temperature=0)", _greedy, tolerance=1e-9,
                              error_hint="temperature=0 means greedy decoding: return logits.argmax(dim=-1) before "
                                         "applying the temperature (dividing by 0 is not defined)")),
        Test("temperature=0.01 is practically argmax", _draws({"temperature": 0.01}),
             _frequency_judge("sample_next_token(logits, temperature=0.01)", _greedy, {
                 "temperature is ignored: apply_temperature before filtering and sampling": _probs()},
                 tolerance=0.001)),
        Test("temperature=3 flattens the distribution", _draws({"temperature": 3.0}),
             _frequency_judge("sample_next_token(logits, temperature=3)", _probs(temperature=3.0), {
                 "temperature is ignored: apply_temperature before filtering and sampling": _probs()})),
        Test("top_k=1 is greedy", _draws({"top_k": 1}),
             _frequency_judge("sample_next_token(logits, top_k=1)", _greedy, {
                 "top_k is ignored: apply top_k_filter when top_k is not None": _probs()}, tolerance=1e-9)),
        Test("top_k=3 samples only the 3 most likely tokens", _draws({"top_k": 3}),
             _frequency_judge("sample_next_token(logits, top_k=3)", _probs(top_k=3), {
                 "top_k is ignored: apply top_k_filter when top_k is not None": _probs()})),
        Test("top_p=0.6 never samples outside the nucleus", _draws({"top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, top_p=0.6)", _probs(top_p=0.6), {
                 "top_p is ignored: apply top_p_filter when top_p is not None": _probs()})),
        Test("temperature=2 with top_p=0.6: the nucleus of the tempered distribution",
             _draws({"temperature": 2.0, "top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, temperature=2, top_p=0.6)", _probs(2.0, None, 0.6), {
                 ("top-p was applied before the temperature: divide by the temperature first, then filter (the "
                  "nucleus is that of the distribution you sample from)"): _top_p_first()})),
    ],
)
