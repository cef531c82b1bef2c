"""Checks for notebook 05, part 3: top_p_filter keeps the nucleus of each row.

The nucleus is the smallest set of most likely tokens whose probabilities reach p: the token that crosses p is
kept, and exactly at the boundary (the tokens before hold exactly p) the next one is not. The boundary probe uses
powers of two, exact in float32. How a filter is checked: sampling_filters.py.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from coursekit.checks.core import Check, Test, is_public, probe_rng
from coursekit.checks.probing import large_magnitudes
from coursekit.checks.sampling_filters import (_run, dtype_tests, error_judge, filter_case, filter_test, keep_only,
                                               random_logits, raises, reference, rounded)


NUCLEUS = torch.tensor([[0.05, 0.30, 0.10, 0.40, 0.15],
                        [0.50, 0.05, 0.20, 0.10, 0.15]]).log()
# Powers of two are exact in float32: after 0.5 and 0.25 the tokens before the third hold exactly p = 0.75.
BOUNDARY = torch.tensor([[0.125, 0.5, 0.0625, 0.25, 0.0625],
                         [0.25, 0.0625, 0.0625, 0.125, 0.5]]).log()


def _sorted_keep(logits: torch.Tensor, p: float, rule, descending: bool = True,
                 probabilities: bool = True) -> torch.Tensor:
    """A nucleus variant: rule(sorted probabilities, cumsum) -> keep mask in sorted order, mapped back by scatter
    (with probabilities=False, the sorted logits stand in for the probabilities)."""
    sorted_logits, order = logits.sort(dim=-1, descending=descending)
    probs = sorted_logits.softmax(-1) if probabilities else sorted_logits
    keep = rule(probs, probs.cumsum(-1))
    return keep_only(logits, keep.scatter(-1, order, keep))


def _top_p_mistakes():
    def drop_mask_in(map_back):
        def variant(x, p):
            sorted_logits, order = x.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs >= p
            return x.masked_fill(map_back(drop, order), float("-inf"))
        return variant

    def sorted_nucleus_in(map_back):
        def variant(x, p):
            sorted_logits, order = x.sort(dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            return map_back(sorted_logits.masked_fill(probs.cumsum(-1) - probs >= p, float("-inf")), order)
        return variant
    return (
        ("every logit was kept: keep only the nucleus, the most likely tokens until they hold top_p", lambda x, p: x),
        ("the cumulative sum ran over the sorted logits, not their probabilities: take torch.softmax of the sorted "
         "logits, then cumsum",
         lambda x, p: _sorted_keep(x, p, lambda values, cum: cum - values < p, probabilities=False)),
        ("a token whose preceding tokens hold exactly p was kept: drop a token when cumsum - probs >= p (not > p); "
         "the nucleus is the *smallest* set that reaches p",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: ~(cum - probs > p))),
        ("the token that crosses top_p was dropped, so the kept tokens hold less than top_p: keep a token while the "
         "probability *before* it (cumsum - probs) is < top_p",
         lambda x, p: _sorted_keep(x, p, lambda _, cum: cum < p)),
        ("one token too many was kept: drop a token once the tokens before it hold >= top_p",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: torch.cat(
             [torch.ones_like(cum[..., :1], dtype=torch.bool), (cum - probs < p)[..., :-1]], -1))),
        ("the mask was computed in sorted order but applied to the logits in vocabulary order: map it back with "
         "drop.scatter(-1, order, drop) (or index with the sorted indices)", drop_mask_in(lambda drop, order: drop)),
        ("the sorted-order mask was mapped back with gather(-1, order), which applies the permutation the wrong way "
         "round: scatter puts entry i at position order[i], so use drop.scatter(-1, order, drop) (or "
         "drop.gather(-1, order.argsort(-1)))", drop_mask_in(lambda drop, order: drop.gather(-1, order))),
        ("the filtered sorted logits were put back with gather(-1, order), which applies the permutation the wrong way "
         "round: scatter puts entry i at position order[i], so use torch.full_like(logits, -inf).scatter(-1, order, "
         "kept_sorted_logits) (or .gather(-1, order.argsort(-1)))",
         sorted_nucleus_in(lambda values, order: values.gather(-1, order))),
        ("the logits came back in sorted order (largest first): map the result back to vocabulary order with "
         "scatter(-1, order, ...), so that position i is still token i",
         sorted_nucleus_in(lambda values, order: values)),
        ("the cumulative sum ran over the tokens in vocabulary order: sort the probabilities first (descending), so "
         "the nucleus holds the most likely tokens",
         lambda x, p: keep_only(x, x.softmax(-1).cumsum(-1) - x.softmax(-1) < p)),
        ("the probabilities were sorted in ascending order, so the nucleus holds the least likely tokens: "
         "torch.sort(logits, descending=True)",
         lambda x, p: _sorted_keep(x, p, lambda probs, cum: cum - probs < p, descending=False)),
    )


OVERFLOW = ("every token was kept: exp of logits around 100 overflows to inf (around -120 it underflows to 0), so the "
            "probabilities are NaN and no comparison drops anything. Use torch.softmax, which subtracts each row's "
            "maximum first")


def _top_p(x, p):
    return reference().top_p_filter(x, p)


def _secret_p(rng, logits):
    return round(float(rng.uniform(0.5, 0.9)), 2)


def _large_case():
    logits = NUCLEUS.clone() if is_public() else random_logits(probe_rng())
    high, low = large_magnitudes(logits)
    return torch.cat([high[:1], low[1:]]), 0.6 if is_public() else _secret_p(probe_rng(), logits)


def _boundary_case():
    if is_public():
        return BOUNDARY.clone(), 0.75
    rng = probe_rng()
    rows = torch.stack([row[torch.from_numpy(rng.permutation(row.numel()))] for row in BOUNDARY.repeat(2, 1)])
    return rows, float(rng.choice([0.5, 0.75]))


def _minus_inf_case():
    """(logits, p): rows that already hold -inf, as top_k_filter leaves them (sample_next_token's usual input)."""
    logits, p = (NUCLEUS.clone(), 0.6) if is_public() else (random_logits(probe_rng()), _secret_p(probe_rng(), None))
    dropped = 2 if is_public() else int(probe_rng().integers(1, logits.size(-1) - 3))
    rank = logits.argsort(dim=-1).argsort(dim=-1)  # 0 for the smallest
    return logits.masked_fill(rank < dropped, -math.inf), p


MINUS_INF = ("on rows that already hold -inf (as top_k_filter leaves them, the usual input in sample_next_token) "
             "nothing was dropped: is a NaN in between? the mean of such a row, or -inf - (-inf), is NaN (e.g. "
             "logits - logits.mean()), and NaN compares False with everything; torch.sort and torch.softmax "
             "handle -inf as it is, no centring needed")


# Logits near 100, where float16 is 0.06 apart: rounded to half precision, the cumulative sums before the second and
# third tokens of the first row (0.4 and 0.7 in float32) move by about 2e-3, across the p values chosen.
NEAR_100 = NUCLEUS - NUCLEUS.amax(-1, keepdim=True) + 100


def _near_100_case():
    if is_public():
        return NEAR_100.clone(), 0.401
    rng = probe_rng()
    rows = torch.stack([row[torch.from_numpy(rng.permutation(row.numel()))] for row in NEAR_100])
    return rows, float(rng.choice([0.401, 0.699]))


def _in_half_precision(x, p):
    sorted_logits, order = x.sort(dim=-1, descending=True)
    probs = sorted_logits.half().softmax(-1).float()
    keep = probs.cumsum(-1) - probs < p
    return keep_only(x, keep.scatter(-1, order, keep))


HALF = ("the nucleus is that of probabilities rounded to half precision (.half()): float16 keeps about 3 digits, so "
        "near logits of 100 the cumulative sums are off by about 2e-3 and a token near p is kept or dropped wrongly; "
        "compute the softmax and cumsum in the dtype of the logits")


def _half_judge(got) -> str | None:
    """Half-precision logits (as a model run in float16 gives): float16 out, the nucleus of the float32 reference,
    the kept logits unchanged to float16's precision."""
    call = "top_p_filter(float16 logits, 0.6)"
    if got["error"] or not isinstance(got["output"], np.ndarray):
        return f"{call} raised {got['error']}" if got["error"] else f"{call} should return a tensor of logits"
    out = got["output"]
    if out.dtype != np.float16:
        return (f"{call} returned {out.dtype}: give back the dtype of the logits (compute in float32 inside if you "
                f"like, then .to(logits.dtype))")
    wanted = _top_p(NUCLEUS.half().float(), 0.6).numpy()
    if out.shape != wanted.shape or not np.array_equal(np.isneginf(out), np.isneginf(wanted)):
        return (f"{call} kept {rounded(np.isfinite(out).sum(-1))} tokens per row, expected "
                f"{rounded(np.isfinite(wanted).sum(-1))}: a cumulative sum in float16 is off by about 1e-3; "
                f"take the softmax and cumsum in float32 (logits.float())")
    got, expected = torch.from_numpy(out).double().softmax(-1), torch.from_numpy(wanted).double().softmax(-1)
    if not torch.allclose(got, expected, atol=5e-3):  # float16 keeps about 3 significant digits
        return (f"{call}: the kept tokens have probabilities {rounded(got)}, expected about {rounded(expected)} "
                f"(or a constant shift of the logits)")
    return None


check_top_p = Check(
    exercise="top_p",
    expects=["a function top_p_filter(logits, p) -> logits"],
    tests=[
        filter_test("top_p_filter keeps the nucleus of each row", filter_case(NUCLEUS, 0.6, _secret_p),
                     "top_p_filter(logits, {})", _top_p, _top_p_mistakes(), weight=6),
        filter_test("a large p keeps a larger nucleus", filter_case(NUCLEUS, 0.9, lambda rng, x: 0.9),
                     "top_p_filter(logits, {})", _top_p, _top_p_mistakes(), weight=3),
        filter_test("logits around 100 and -120 (exp overflows)", _large_case, "top_p_filter(large logits, {})",
                     _top_p, ((OVERFLOW, lambda x, p: x), *_top_p_mistakes()), weight=1),
        filter_test("rows that already hold -inf (after top-k)", _minus_inf_case,
                     "top_p_filter(logits holding -inf, {})", _top_p, ((MINUS_INF, lambda x, p: x), *_top_p_mistakes()),
                     weight=1),
        filter_test("logits near 100, p close to a cumulative sum (precision)", _near_100_case,
                     "top_p_filter(logits near 100, {})", _top_p, ((HALF, _in_half_precision), *_top_p_mistakes()),
                     weight=0.2),
        filter_test("exactly at the boundary: the tokens before hold exactly p", _boundary_case,
                     "top_p_filter(logits of powers of 2, {})", _top_p, _top_p_mistakes(), weight=0.5),
        filter_test("one distribution (a 1-D tensor) works too", filter_case(NUCLEUS[1], 0.6, _secret_p),
                     "top_p_filter on a 1-D tensor of logits, p={}", _top_p, _top_p_mistakes(), weight=0.5),
        filter_test("a tiny p keeps only the most likely token", filter_case(NUCLEUS, 1e-6, lambda rng, x: 1e-6),
                     "top_p_filter(logits, {})", _top_p, (
                         ("no token is left: the most likely token must always stay (its probability before it is "
                          "0 < p)", lambda x, p: torch.full_like(x, -math.inf)),
                         ("every logit was kept: a tiny p is no reason to skip the filter, it keeps only the most "
                          "likely token", lambda x, p: x)), weight=0.1),
        filter_test("p = 1 keeps every token", filter_case(NUCLEUS, 1.0, lambda rng, x: 1.0),
                    "top_p_filter(logits, {})", lambda x, p: x, weight=0.1),
        *dtype_tests("top_p_filter(logits, 0.6)", 0.6),
        Test("float16 logits stay float16, with the same nucleus", lambda f: _run(f, NUCLEUS.half(), 0.6),
             _half_judge, weight=0.05, needs_right_outputs=True),
        *(Test(f"p = {p} raises a ValueError naming p", lambda f, p=p: raises(f, NUCLEUS, p),
               error_judge(f"top_p_filter(logits, {p})", "p", hint), weight=0.05,
               needs_right_outputs=True) for p, hint in (
            (0.0, ""), (1.5, ""),
            (float("nan"), ": `p <= 0 or p > 1` is False for NaN; `not 0 < p <= 1` catches it"))),
    ],
)
