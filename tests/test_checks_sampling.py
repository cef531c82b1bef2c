"""The notebook 05 checks: each passes the notebook's solution and valid alternatives under the public and secret
run seeds, names plausible mistakes, gives a wrong-everywhere notebook almost nothing, and cannot be replayed."""

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from check_family import assert_probes_need_none_of, failures, mistake_tests, outcomes, student_tests
from coursekit.checks import check_sample, check_temperature, check_top_k, check_top_p
from coursekit.checks import sampling, sampling_filters, sampling_top_p
from coursekit.checks.core import PUBLIC_SEED

SECRET_SEEDS = (1, 2, 3, 4, 5)
CHECKS = {"temperature": check_temperature, "top_k": check_top_k, "top_p": check_top_p, "sample": check_sample}
POINTS = {"temperature": 2, "top_k": 3, "top_p": 5, "sample": 5}  # as in solutions/05_prompting.ipynb


# ---------------------------------------------------------------- the notebook's solution and valid alternatives


def apply_temperature(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def log_softmax_temperature(logits, temperature):
    """Returns log-probabilities: the same distribution, shifted by a constant per row."""
    if math.isnan(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be positive, got temperature={temperature}")
    return F.log_softmax(logits * (1.0 / temperature), dim=-1)


def temperature_by_torch_div(logits, temperature):
    if not (isinstance(temperature, (int, float)) and temperature > 0):
        raise ValueError(f"temperature should be a number > 0 (got {temperature!r})")
    return torch.div(logits, torch.tensor(temperature, dtype=logits.dtype)) - logits.max(-1, keepdim=True).values


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k}")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_by_scatter(logits, k):
    """Builds the output from -inf and scatters the top k back: exactly k tokens, so ties with the k-th are dropped
    (wrong, named by the ties tests of top_k and sample)."""
    if k < 1:
        raise ValueError("k must be at least 1")
    values, indices = torch.topk(logits, min(k, logits.size(-1)), dim=-1)
    return torch.full_like(logits, -math.inf).scatter(-1, indices, values)


def top_k_by_sorting(logits, k):
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    if k >= logits.size(-1):
        return logits.clone()
    kth = logits.sort(dim=-1, descending=True).values[..., k - 1: k]
    return torch.where(logits >= kth, logits, torch.tensor(-math.inf))


def top_k_by_rows(logits, k):
    """Row by row in Python: the k-th largest value of each row, and every token at least as large (ties kept)."""
    if k <= 0:
        raise ValueError(f"top-k needs k >= 1, got k={k}")
    rows = logits.reshape(-1, logits.size(-1))
    out = torch.full_like(rows, -math.inf)
    for row, target in zip(rows, out):
        kth = sorted(row.tolist(), reverse=True)[min(k, len(row)) - 1]
        keep = [i for i in range(len(row)) if float(row[i]) >= kth]
        target[keep] = row[keep]
    return out.reshape(logits.shape)


def top_p_filter(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = F.softmax(sorted_logits, dim=-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def top_p_by_loop(logits, p):
    """Row by row, in Python floats, building a keep-mask from a sorted index list."""
    if not (p > 0 and p <= 1):  # NaN fails both comparisons
        raise ValueError(f"p={p} is outside (0, 1]")
    out = logits.clone()
    rows = out.view(-1, out.size(-1))
    for row in rows:
        probs = row.softmax(-1)
        total, keep = 0.0, []
        for index in probs.argsort(descending=True).tolist():
            keep.append(index)
            total += probs[index].item()
            if total >= p:
                break
        mask = torch.ones_like(row, dtype=torch.bool)
        mask[keep] = False
        row[mask] = -math.inf
    return out


def top_p_by_sorted_indices(logits, p):
    """Keeps the sorted logits and writes them back through the sorted indices (scatter of values)."""
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p p must be in (0, 1]: {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1)
    keep = torch.cat([torch.ones_like(cumulative[..., :1], dtype=torch.bool), cumulative[..., :-1] < p], dim=-1)
    return torch.full_like(logits, -math.inf).scatter(-1, order, sorted_logits.masked_fill(~keep, -math.inf))


def top_p_by_log_softmax(logits, p):
    """Works with log-probabilities throughout and returns them."""
    if not (0 < p <= 1):
        raise ValueError(f"p must satisfy 0 < p <= 1, got {p}")
    log_probs = logits.log_softmax(-1)
    sorted_log_probs, order = log_probs.sort(-1, descending=True)
    before = sorted_log_probs.exp().cumsum(-1) - sorted_log_probs.exp()
    inverse = order.argsort(-1)
    return log_probs.masked_fill((before >= p).gather(-1, inverse), -math.inf)


def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator).squeeze(-1)


def sample_with_gumbel(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """The Gumbel-max trick instead of torch.multinomial: argmax(logits + Gumbel noise) is a sample."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = log_softmax_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_by_sorting(logits, top_k)
    if top_p is not None:
        logits = top_p_by_loop(logits, top_p)
    uniform = torch.rand(logits.shape, generator=generator).clamp_min(1e-20)
    return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)


def sample_by_inverse_cdf(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """One uniform number per row and searchsorted in the cumulative probabilities."""
    if temperature == 0:
        return torch.argmax(logits, -1)
    logits = temperature_by_torch_div(logits, temperature)
    if top_k is not None:
        logits = top_k_by_sorting(logits, top_k)
    if top_p is not None:
        logits = top_p_by_sorted_indices(logits, top_p)
    cumulative = logits.softmax(-1).cumsum(-1)
    u = torch.rand(logits.shape[:-1] + (1,), generator=generator) * cumulative[..., -1:]
    return torch.searchsorted(cumulative, u).squeeze(-1).clamp(max=logits.size(-1) - 1)


VALID = {
    "temperature": [apply_temperature, log_softmax_temperature, temperature_by_torch_div],
    "top_k": [top_k_filter, top_k_by_sorting, top_k_by_rows],
    "top_p": [top_p_filter, top_p_by_loop, top_p_by_sorted_indices, top_p_by_log_softmax],
    "sample": [sample_next_token, sample_with_gumbel, sample_by_inverse_cdf],
}


@pytest.mark.parametrize("exercise, function", [(e, f) for e, fs in VALID.items() for f in fs],
                         ids=lambda value: getattr(value, "__name__", value))
def test_valid_implementations_pass_under_public_and_secret_seeds(exercise, function):
    for seed in (PUBLIC_SEED, *SECRET_SEEDS):
        assert failures(CHECKS[exercise], function, seed) == [], (exercise, function.__name__, seed)


def test_the_reference_sampler_passes_too():
    """coursekit.sampling.sample_next_token (what GPT.generate calls) agrees with the check (same order of filters)."""
    from coursekit import sampling

    for seed in (PUBLIC_SEED, 1, 2):
        assert failures(check_sample, sampling.sample_next_token, seed) == []


# ---------------------------------------------------------------- mistakes


def validating(function, allowed=lambda value: value > 0):
    """A buggy filter that still validates its argument like the solution, so only the bug shows."""
    def wrapper(logits, value):
        if not allowed(value):
            raise ValueError(f"k / p / temperature out of range: {value}")
        return function(logits, value)
    return wrapper


def validating_p(function):
    return validating(function, lambda p: 0 < p <= 1)


def raise_(error):
    raise error


def in_place_temperature(logits, temperature):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logits /= temperature
    return logits


TEMPERATURE_BUGS = {
    "multiplied by the temperature": validating(lambda x, t: x * t),
    "has no effect": validating(lambda x, t: x.clone()),
    "temperature \\*\\* 2": validating(lambda x, t: x / t ** 2),
    "square root of the temperature": validating(lambda x, t: x / math.sqrt(t)),
    "returns probabilities": validating(lambda x, t: (x / t).softmax(-1)),
    "modified in place \\(an operation ending in _, or /=": in_place_temperature,
    "AssertionError \\(from assert\\): raise ValueError": lambda x, t: (x / t) if t > 0 else raise_(AssertionError()),
    "apply_temperature\\(logits, 0\\) should raise a ValueError that names": lambda x, t: x / t if t != 0 else x,
    "should name the argument 'temperature'": lambda x, t: x / t if t > 0 else raise_(ValueError("must be positive")),
    "should raise a ValueError naming temperature, got TypeError": lambda x, t: (
        x / t if t > 0 else raise_(TypeError("temperature must be > 0"))),
    "apply_temperature\\(logits, -1\\) should raise": lambda x, t: x / t if t != 0 else raise_(ValueError("temperature")),
    "`not temperature > 0` catches it": lambda x, t: x / t if not t <= 0 else raise_(ValueError("temperature <= 0")),
    "turned float32 logits into float64": validating(lambda x, t: x.double() / t),
    "1-D tensor, temperature": validating(lambda x, t: x / torch.full((x.size(0), 1), t)),  # 2-D only
    "apply_temperature\\(logits, 0.5\\): for row 0": validating(lambda x, t: (x / t).exp()),
    "apply_temperature\\(logits, 0.5\\): the logits were divided by 0.7, not by the temperature 0.5": validating(
        lambda x, t: x / 0.7),  # a fixed value
    "apply_temperature\\(logits, 0.5\\): the logits were divided by 1.5, not": validating(lambda x, t: x / (1 + t)),
}


def keep_ranks(logits, keep):
    ranks = logits.argsort(-1, descending=True).argsort(-1)
    return logits.masked_fill(~keep(ranks, logits.size(-1)), float("-inf"))


def kth_largest(logits, k):
    return torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]


def in_place_top_k(logits, k):
    if k < 1:
        raise ValueError("k must be >= 1")
    logits[logits < kth_largest(logits, k)] = float("-inf")
    return logits


TOP_K_BUGS = {
    "k \\+ 1 tokens were kept": validating(lambda x, k: keep_ranks(x, lambda r, n: r <= k)),
    "k - 1 tokens were kept": validating(lambda x, k: x.masked_fill(x <= kth_largest(x, k), float("-inf"))),
    "least likely": validating(lambda x, k: keep_ranks(x, lambda r, n: r >= n - k)),
    "whole batch": validating(lambda x, k: x.masked_fill(x < x.flatten().topk(min(k, x.numel())).values[-1],
                                                         float("-inf"))),
    "set to 0": validating(lambda x, k: x.masked_fill(x < kth_largest(x, k), 0.0)),
    "every logit was kept": validating(lambda x, k: x.clone()),
    "min\\(k, logits.size\\(-1\\)\\)": validating(lambda x, k: x.masked_fill(
        x < torch.topk(x, k).values[..., -1:], float("-inf"))),  # k > vocabulary crashes
    "top_k_filter\\(logits, 0\\) should raise": lambda x, k: top_k_filter(x, max(k, 1)),
    "1-D tensor of logits, k=3 raised IndexError": validating(lambda x, k: x.masked_fill(
        x < torch.topk(x, min(k, x.size(-1))).values[:, [-1]], float("-inf"))),  # 2-D only
    "tokens 0 .. k - 1 were kept": validating(lambda x, k: x.masked_fill(torch.arange(x.size(-1)) >= k, -math.inf)),
    "as a column so that it broadcasts": validating(lambda x, k: x.masked_fill(
        x < torch.topk(x, min(k, x.size(-1))).values[..., -1], -math.inf)),
    "modified in place": in_place_top_k,
    "returns probabilities": validating(lambda x, k: top_k_filter(x, k).softmax(-1)),
    "turned float32 logits into float64": validating(lambda x, k: top_k_filter(x.double(), k)),
    "top_k_filter\\(logits with ties, 2\\): k - 1 tokens": validating(lambda x, k: x.masked_fill(
        x <= torch.topk(x, min(k + 1, x.size(-1))).values[..., -1:], -math.inf) if k < x.size(-1) else x.clone()),
    "AssertionError \\(from assert\\)": lambda x, k: top_k_filter(x, k) if k >= 1 else raise_(AssertionError()),
    "top_k_filter\\(logits, 3\\): for row 0": validating(lambda x, k: x.masked_fill(
        x < x.sort(-1).values[..., k - 1: k], -math.inf) if k < x.size(-1) else x.clone()),  # k-th smallest
}


def nucleus(logits, p, map_back="scatter", keep_rule=None, descending=True, probabilities=None):
    """The nucleus, with one thing done wrong: how the sorted mask is mapped back, or which tokens are dropped."""
    sorted_logits, order = torch.sort(logits, dim=-1, descending=descending)
    probs = (probabilities or F.softmax)(sorted_logits, dim=-1)
    drop = keep_rule(probs) if keep_rule else probs.cumsum(-1) - probs >= p
    if map_back == "scatter":
        drop = drop.scatter(-1, order, drop)
    elif map_back == "gather":
        drop = drop.gather(-1, order)
    return logits.masked_fill(drop, float("-inf"))


def naive_softmax(x, dim):
    return x.exp() / x.exp().sum(dim, keepdim=True)


def first_row_only(logits, p):
    """Right for the first distribution of a batch, every other row left unfiltered."""
    out = logits.clone()
    out[:1] = top_p_filter(logits[:1], p)
    return out


TOP_P_BUGS = {
    "crosses top_p was dropped": validating_p(lambda x, p: nucleus(x, p, keep_rule=lambda q: q.cumsum(-1) >= p)),
    "applied to the logits in vocabulary order": validating_p(lambda x, p: nucleus(x, p, map_back=None)),
    "mapped back with gather\\(-1, order\\)": validating_p(lambda x, p: nucleus(x, p, map_back="gather")),
    "every logit was kept": validating_p(lambda x, p: x.clone()),
    "top_p_filter\\(logits, 0.0\\) should raise": lambda x, p: top_p_filter(x, min(max(p, 1e-9), 1.0)),
    "for row 1 of": validating_p(lambda x, p: first_row_only(x, p) if x.ndim == 2 else top_p_filter(x, p)),
    "preceding tokens hold exactly p was kept": validating_p(
        lambda x, p: nucleus(x, p, keep_rule=lambda q: q.cumsum(-1) - q > p)),
    "one token too many": validating_p(lambda x, p: nucleus(x, p, keep_rule=lambda q: torch.cat(
        [torch.zeros_like(q[..., :1], dtype=torch.bool), (q.cumsum(-1) - q >= p)[..., :-1]], -1))),
    "vocabulary order: sort the probabilities first": validating_p(
        lambda x, p: x.masked_fill(x.softmax(-1).cumsum(-1) - x.softmax(-1) >= p, -math.inf)),
    "ascending order": validating_p(lambda x, p: nucleus(x, p, descending=False)),
    "exp of logits around 100 overflows": validating_p(lambda x, p: nucleus(x, p, probabilities=naive_softmax)),
    "returns probabilities": validating_p(lambda x, p: top_p_filter(x, p).softmax(-1)),
    "crosses top_p was dropped|no token is left": validating_p(lambda x, p: nucleus(x, p, keep_rule=lambda q: q.cumsum(-1) > p)),
    "modified in place": validating_p(lambda x, p: x.masked_fill_(top_p_filter(x, p).isneginf(), -math.inf)),
    "turned float32 logits into float64": validating_p(lambda x, p: top_p_filter(x.double(), p)),
    "top_p_filter\\(logits, 1.0\\) raised ValueError": validating(top_p_filter, lambda p: 0 < p < 1),
    "1-D tensor of logits, p=0.6 raised": validating_p(lambda x, p: x.masked_fill(
        top_p_filter(x, p)[:, :].isneginf() if x.ndim == 2 else torch.tensor(1), -math.inf)),
    "top_p_filter\\(logits, 0.[69]\\): for row": validating_p(  # softmax over the batch dimension
        lambda x, p: nucleus(x, p, probabilities=lambda s, dim: F.softmax(s, dim=0)) if x.ndim == 2
        else top_p_filter(x, p)),
}


def sampler(temperature_first=True, use_temperature=True, use_top_k=True, use_top_p=True, greedy_always=False,
            zero_temperature=True, use_generator=True, top_p_first=False, weights=None, truthy=False, reseed=False,
            dtype=None, squeeze=True):
    """The notebook's sampler with one thing done wrong (its filters validate, as the notebook's do)."""
    def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if greedy_always or (zero_temperature and temperature == 0):
            return logits.argmax(dim=-1)
        if use_temperature and temperature_first:
            logits = apply_temperature(logits, temperature)
        given = (lambda value: bool(value)) if truthy else (lambda value: value is not None)
        filters = [(top_k, top_k_filter, use_top_k), (top_p, top_p_filter, use_top_p)]
        for value, apply, used in (filters[::-1] if top_p_first else filters):
            if given(value) and used:
                logits = apply(logits, value)
        if use_temperature and not temperature_first:
            logits = apply_temperature(logits, temperature)
        if reseed:
            torch.manual_seed(0)
        probs = weights(logits) if weights else F.softmax(logits, dim=-1)
        out = torch.multinomial(probs, 1, generator=generator if use_generator else None)
        out = out.squeeze(-1) if squeeze else out
        return out.to(dtype) if dtype else out
    return sample


def probabilities_tempered_after_softmax(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    if not temperature > 0:
        raise ValueError("temperature must be > 0")
    probs = F.softmax(logits, -1) / temperature
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


SAMPLE_BUGS = {
    "always returns the most likely token": sampler(greedy_always=True),
    "temperature=0 means greedy": sampler(zero_temperature=False),
    "temperature has no effect": sampler(use_temperature=False),
    "top_k is ignored": sampler(use_top_k=False),
    "top_p is ignored": sampler(use_top_p=False),
    "applied before the temperature": sampler(temperature_first=False),
    "the generator is ignored": sampler(use_generator=False),
    "generators seeded differently gave the same": sampler(use_generator=False, reseed=True),
    "top-p was applied before top-k": sampler(top_p_first=True),
    "clamped at 0, not their softmax": sampler(weights=lambda x: x.clamp(min=0)),
    "needs finite, non-negative weights": sampler(weights=lambda x: x.exp()),  # overflows at logits ~100
    "torch.long \\(int64\\) tensor, got torch.int32": sampler(dtype=torch.int32),
    "\\.squeeze\\(-1\\)": sampler(squeeze=False),
    "not `if top_k:`": sampler(truthy=True),
    "dividing the probabilities changes nothing": probabilities_tempered_after_softmax,
    "multiplied by the temperature": lambda x, temperature=1.0, **kw: sample_next_token(
        x * temperature if temperature else x, 1.0 if temperature else 0, **kw),
    "the frequencies of the 8 tokens were": sampler(weights=lambda x: F.softmax(F.softmax(x, -1), -1)),
    "NaN or negative|temperature=nan": lambda x, temperature=1.0, **kw: (
        sample_next_token(x, 1.0, **kw) if math.isnan(temperature) else sample_next_token(x, temperature, **kw)),
}

BUGS = {"temperature": TEMPERATURE_BUGS, "top_k": TOP_K_BUGS, "top_p": TOP_P_BUGS, "sample": SAMPLE_BUGS}


(test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too,
 test_buggy_sets_are_broad) = mistake_tests(CHECKS, BUGS)


def test_top_k_ties_with_the_kth_stay():
    """Ties at the k-th value: keeping every tied token (the notebook's `logits < kth`, Hint 1's "ties stay") passes;
    keeping exactly k (torch.topk's indices scattered back) fails the ties test and is named."""
    for seed in (PUBLIC_SEED, *SECRET_SEEDS):
        for function in (top_k_filter, top_k_by_rows):
            assert not [o for o in outcomes(check_top_k, function, seed) if "ties" in o.test and not o.passed]
        failed = [o for o in outcomes(check_top_k, top_k_by_scatter, seed) if not o.passed]
        assert [o.test for o in failed] == ["ties at the k-th largest value"], (seed, failed)
        assert "exactly k tokens were kept" in failed[0].message, failed


def test_exact_boundary_inputs_are_exact():
    """The boundary probe only separates `>= p` from `> p` if the probabilities are exact in float32."""
    probs = sampling_top_p.BOUNDARY.softmax(-1)
    assert torch.equal(probs, sampling_top_p.BOUNDARY.exp())
    assert float(probs[0].sort(descending=True).values[:2].sum()) == 0.75


# ---------------------------------------------------------------- points, secrets, messages


def wrong_everywhere_fraction(functions):
    total = sum(POINTS.values())
    earned = sum(POINTS[e] * CHECKS[e].fraction(outcomes(CHECKS[e], f, seed=3)) for e, f in functions.items())
    return earned / total


@pytest.mark.parametrize("notebook", [
    {"temperature": validating(lambda x, t: x.clone()), "top_k": validating(lambda x, k: x.clone()),
     "top_p": validating_p(lambda x, p: x.clone()), "sample": sampler(greedy_always=True)},
    {"temperature": lambda x, t: x * 2, "top_k": lambda x, k: x.softmax(-1), "top_p": lambda x, p: x.clamp(min=0),
     "sample": lambda x, **kw: torch.zeros(x.size(0), dtype=torch.long)},
    {"temperature": validating(lambda x, t: x * t), "top_k": validating(lambda x, k: x.masked_fill(x < 0, -math.inf)),
     "top_p": validating_p(lambda x, p: x.masked_fill(x < x.max(-1, keepdim=True).values, -math.inf)),
     "sample": sampler(weights=lambda x: torch.ones_like(x))},
], ids=["identity-and-greedy", "garbage", "plausible-but-wrong"])
def test_a_wrong_everywhere_notebook_scores_at_most_5_percent(notebook):
    assert wrong_everywhere_fraction(notebook) <= 0.05


@pytest.mark.parametrize("exercise", ["temperature", "top_k", "top_p", "sample"])
def test_one_typical_bug_loses_the_core_points(exercise):
    typical = {"temperature": TEMPERATURE_BUGS["multiplied by the temperature"],
               "top_k": TOP_K_BUGS["k \\+ 1 tokens were kept"], "top_p": TOP_P_BUGS["crosses top_p was dropped"],
               "sample": SAMPLE_BUGS["applied before the temperature"]}[exercise]
    check = CHECKS[exercise]
    assert check.fraction(outcomes(check, typical, seed=2)) <= 0.75


def replaying(function, exercise):
    """A fake that records the public probes' outputs of the right answer and returns them for the same inputs."""
    table = {}

    def recorder(*args, **kwargs):
        key = repr(args[0].tolist()), str(args[0].dtype), repr(args[1:]), repr(sorted(kwargs.items(), key=str)[:-1])
        try:
            table[key] = function(*args, **kwargs)
        except ValueError as error:
            table[key] = error
        return recorder.__wrapped__(*args, **kwargs)
    recorder.__wrapped__ = function
    CHECKS[exercise].probe_all((recorder,), PUBLIC_SEED)

    def fake(*args, **kwargs):
        key = repr(args[0].tolist()), str(args[0].dtype), repr(args[1:]), repr(sorted(kwargs.items(), key=str)[:-1])
        if isinstance(table.get(key), ValueError):
            raise table[key]
        if key in table:
            return table[key].clone()
        if len(args) > 1 and not (isinstance(args[1], (int, float)) and args[1] > 0):
            raise ValueError("temperature / k / p out of range")
        return args[0].clone() if exercise != "sample" else args[0].argmax(-1)
    return fake


@pytest.mark.parametrize("exercise", ["temperature", "top_k", "top_p"])
def test_replaying_the_public_outputs_passes_in_the_notebook_but_not_in_grading(exercise):
    fake = replaying(VALID[exercise][0], exercise)
    check = CHECKS[exercise]
    assert check.fraction(outcomes(check, fake, PUBLIC_SEED)) == 1.0
    assert max(check.fraction(outcomes(check, fake, seed)) for seed in SECRET_SEEDS) <= 0.1


def test_the_sample_probes_differ_in_grading():
    """Under a secret seed the sampled distribution is another permutation (a fixed lookup of ids cannot pass)."""
    from coursekit.checks.core import seeded

    secret_argmaxes = set()
    for seed in SECRET_SEEDS:
        with seeded(seed, "sample", "x"):
            secret_argmaxes.add(int(sampling._sample_logits().argmax()))
    assert len(secret_argmaxes) > 1


def test_check_modules_import_no_reference_at_top_level():
    """Sandbox-safe: module-level imports are the standard library, numpy, torch and coursekit.checks only."""
    allowed = ("__future__", "math", "numpy", "torch", "coursekit.checks.")
    folder = Path(sampling.__file__).parent
    modules_of_05_and_06 = sorted([*folder.glob("sampling*.py"), *folder.glob("gpt2*.py")])
    assert len(modules_of_05_and_06) == 7, modules_of_05_and_06
    for path in modules_of_05_and_06:
        name = path.name
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert all(m.startswith(allowed) for m in modules), (name, modules)


@pytest.mark.parametrize("exercise", VALID)
def test_probes_need_no_reference(exercise):
    """The probes run where coursekit.sampling (the answers) cannot be imported; the judges then pass them."""
    assert_probes_need_none_of(["coursekit.sampling"], CHECKS[exercise], VALID[exercise][0])


def test_verdicts_survive_the_graders_wire():
    """The grader carries probe results across a process boundary (coursekit.grading.wire) before judging."""
    from coursekit.grading import wire

    for exercise, functions in VALID.items():
        check = CHECKS[exercise]
        for seed in (PUBLIC_SEED, 4):
            results = [(name, wire.decode_value(wire.encode_value(data)))
                       for name, data in check.probe_all((functions[0],), seed)]
            assert all(outcome.passed for outcome in check.judge(results, seed)), exercise


def test_probes_restore_nothing_they_should_not_touch():
    """The check never changes the logits it hands out (the framework's copies aside): the constants stay put."""
    before = sampling.SAMPLE_LOGITS.clone(), sampling_filters.LOGITS.clone(), sampling_top_p.NUCLEUS.clone()
    for exercise, functions in BUGS.items():
        for function in list(functions.values())[:3]:
            outcomes(CHECKS[exercise], function, PUBLIC_SEED)
    after = sampling.SAMPLE_LOGITS, sampling_filters.LOGITS, sampling_top_p.NUCLEUS
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert np.isfinite(sampling.SAMPLE_LOGITS.numpy()).all()
# ---------------------------------------------------------------- a second, adversarial set: written from the notebook
# alone, one per class of issue 12 item 1 that applies; each must be named under the public seed and every secret one.


def temperature_only_zero_rejected(logits, temperature):
    if not temperature:  # 0 rejected, negative and NaN let through
        raise ValueError("temperature must be > 0")
    return logits / temperature


def temperature_rounded(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / round(temperature)  # 0.5 rounds to 0: inf and nan


STUDENT_TEMPERATURE_BUGS = [
    ("apply_temperature\\(logits, -1\\) should raise", temperature_only_zero_rejected),
    ("has no effect|for row 0|returned NaN", temperature_rounded),  # round(0.5) is 0
    ("for row 0|returns probabilities", validating(
        lambda x, t: (x.softmax(-1) ** (1 / t)))),  # powered probabilities, not logits
    ("has no effect", validating(lambda x, t: x - math.log(t))),  # a shift, not a scale
    ("`not temperature > 0` catches it", lambda x, t: x / t if t > 0 or math.isnan(t) else raise_(
        ValueError("temperature must be > 0"))),
    ("has no effect|for row 0", validating(lambda x, t: x / min(t, 1.0))),  # capped at 1
    ("modified in place", validating(lambda x, t: x.div_(t))),
]


def kept_indices(logits, k):
    return logits.topk(min(k, logits.size(-1)), dim=-1).indices


def top_k_without_tie_rule(logits, k):
    """Keeps the k first positions of a stable ascending sort reversed: with ties, the wrong k."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    k = min(k, logits.size(-1))
    threshold = logits.sort(-1).values[..., -k:-k + 1] if k > 1 else logits.max(-1, keepdim=True).values
    return logits.masked_fill(logits <= threshold, -math.inf) if k > 1 else logits.masked_fill(
        logits < threshold, -math.inf)


STUDENT_TOP_K_BUGS = [
    ("top_k_filter\\(logits, 0\\) should raise", lambda x, k: x.clone() if not k else top_k_filter(x, k)),
    ("is more than the \\d+ tokens of a row", validating(lambda x, k: x.masked_fill(
        x < torch.topk(x, k, dim=-1).values[..., -1:], -math.inf))),
    ("k = 1 keeps only the largest|top_k_filter\\(logits, 1\\)", validating(lambda x, k: x.masked_fill(
        x < x.sort(-1).values[..., -k:-k + 1], -math.inf))),  # the slice -1:0 is empty for k = 1
    ("k - 1 tokens were kept", top_k_without_tie_rule),
    ("for row 0", validating(lambda x, k: torch.full_like(x, -math.inf).scatter(  # the k values in reverse order
        -1, kept_indices(x, k), x.gather(-1, kept_indices(x, k).flip(-1))))),
    ("shape", validating(lambda x, k: x.topk(min(k, x.size(-1)), dim=-1).values)),  # the k values, not the logits
    ("k smallest|least likely", validating(lambda x, k: x.masked_fill(
        x > torch.kthvalue(x, min(k, x.size(-1)), dim=-1, keepdim=True).values, -math.inf))),
    ("large negative number", validating(lambda x, k: x.masked_fill(x < kth_largest(x, k), -1e9))),
    ("with fewer tokens than k: for row 0", validating(lambda x, k: top_k_filter(
        x, min(k, x.size(-1) - 1)))),
    ("every logit was kept|for row", validating(lambda x, k: x.masked_fill(
        x < torch.topk(x, min(k, x.size(0)), dim=0).values[-1:], -math.inf) if x.ndim == 2 else top_k_filter(x, k))),
    ("for row 0", validating(lambda x, k: x.clamp(min=kth_largest(x, k)))),
]


def nucleus_values_gathered(logits, p):
    """Masks the sorted logits, then puts them back with gather: the permutation applied the wrong way round."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(-1, descending=True)
    probs = sorted_logits.softmax(-1)
    return sorted_logits.masked_fill(probs.cumsum(-1) - probs >= p, -math.inf).gather(-1, order)


def nucleus_in_sorted_order(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(-1, descending=True)
    probs = sorted_logits.softmax(-1)
    return sorted_logits.masked_fill(probs.cumsum(-1) - probs >= p, -math.inf)


def nucleus_shifted_like_hf(logits, p):
    """Drops cumsum > p, shifted right by one: at an exact boundary the next token is kept too."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(-1, descending=True)
    remove = sorted_logits.softmax(-1).cumsum(-1) > p
    remove = torch.cat([torch.zeros_like(remove[..., :1]), remove[..., :-1]], -1)
    return logits.masked_fill(remove.scatter(-1, order, remove), -math.inf)


STUDENT_TOP_P_BUGS = [
    ("put back with gather\\(-1, order\\)", nucleus_values_gathered),
    ("came back in sorted order", nucleus_in_sorted_order),
    ("preceding tokens hold exactly p was kept", nucleus_shifted_like_hf),
    ("top_p_filter\\(logits, 0.0\\) should raise", lambda x, p: x.clone() if not p else top_p_filter(x, p)),
    ("top_p_filter\\(logits, nan\\) should raise", lambda x, p: (
        raise_(ValueError("p must be in (0, 1]")) if p <= 0 or p > 1 else top_p_filter(x, min(p, 1.0))
        if not math.isnan(p) else x.clone())),
    ("exp of logits around 100 overflows|gives NaN", validating_p(lambda x, p: nucleus(
        x, p, probabilities=lambda s, dim: s.exp() / s.exp().sum(dim, keepdim=True)))),
    ("turned float32 logits into float64", validating_p(lambda x, p: top_p_filter(x.double(), p).to(torch.float64))),
    ("one token too many|for row", validating_p(lambda x, p: top_k_filter(x, max(1, round(p * x.size(-1)))))),
]


def sample_generator_only_by_default(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Passes the generator on only when no filter is asked for."""
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = apply_temperature(logits, temperature)
    if top_k is None and top_p is None:
        return torch.multinomial(F.softmax(logits, -1), 1, generator=generator).squeeze(-1)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return torch.multinomial(F.softmax(logits, -1), 1).squeeze(-1)


def sample_squeezing_everything(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return sample_next_token(logits, temperature, top_k, top_p, generator).reshape(-1, 1).squeeze()  # (1,) -> ()


def sample_argmax_of_the_batch(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax()  # over the flattened batch
    return sample_next_token(logits, temperature, top_k, top_p, generator)


STUDENT_SAMPLE_BUGS = [
    ("clamped at 0|about equally often", sampler(weights=lambda x: x.clamp(min=0) + 1e-12)),
    ("weights|softmax", sampler(weights=lambda x: x.clamp(-20, 20))),  # clamped logits as weights
    ("the generator is ignored when filters are given", sample_generator_only_by_default),
    ("expected shape \\(1,\\), one id per row", sample_squeezing_everything),
    ("argmax\\(\\) and squeeze\\(\\) without a dim", sample_argmax_of_the_batch),
    ("top-p was applied before top-k|top_k=4 with top_p=0.7", sampler(top_p_first=True)),
    ("applied before the temperature|temperature=2 with top_p=0.6", lambda x, temperature=1.0, top_k=None, top_p=None,
    generator=None: sample_next_token(top_p_filter(x, top_p) if top_p is not None else x, temperature, top_k, None,
                                      generator)),
    ("not `if top_k:`", lambda x, temperature=1.0, top_k=None, top_p=None, generator=None: sample_next_token(
        x, temperature, top_k or None, top_p, generator)),
    ("not `if top_k:`|top_p=0", lambda x, temperature=1.0, top_k=None, top_p=None, generator=None: sample_next_token(
        x, temperature, top_k, top_p or None, generator)),
    ("NaN or negative|temperature=-1", lambda x, temperature=1.0, **kw: sample_next_token(
        x, abs(temperature) if not math.isnan(temperature) else temperature, **kw)),
    ("token ids are integers", sampler(dtype=torch.float32)),
    ("exp|non-negative weights|100", sampler(weights=lambda x: x.exp() / x.exp().sum(-1, keepdim=True))),
    ("temperature=3 flattens|multiplied by the temperature", lambda x, temperature=1.0, **kw: sample_next_token(
        x, 1 / temperature if temperature else 0, **kw)),
]


# ---------------------------------------------------------------- more valid alternatives, written differently


def temperature_by_reciprocal(logits, temperature):
    if math.isnan(temperature) or not temperature > 0:
        raise ValueError(f"temperature={temperature}: temperature must be a positive number")
    return logits * (1.0 / temperature)


def temperature_as_log_probabilities(logits, temperature):
    """Returns log softmax(logits / T) computed by hand: the same distribution."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    scaled = torch.true_divide(logits, temperature)
    return scaled - scaled.logsumexp(dim=-1, keepdim=True)


def temperature_of_a_0d_tensor(logits, temperature):
    """Divides by a 0-d float64 tensor: float32 logits stay float32 (a 0-d tensor does not promote them)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / torch.tensor(temperature, dtype=torch.float64)


def top_k_by_kthvalue(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got k={k}")
    vocab = logits.size(-1)
    kth = torch.kthvalue(logits, vocab - min(k, vocab) + 1, dim=-1, keepdim=True).values
    return torch.where(logits >= kth, logits, torch.full_like(logits, -math.inf))


def top_k_by_ranks(logits, k):
    """A token's rank is how many tokens are strictly larger; keep ranks below k (tokens tied share a rank)."""
    if not k >= 1:
        raise ValueError("k should be at least 1")
    ranks = (logits[..., None, :] > logits[..., :, None]).sum(-1)
    return logits.masked_fill(ranks >= k, float("-inf"))


def top_p_by_searchsorted(logits, p):
    """The number of kept tokens per row by searchsorted in the cumulative probabilities."""
    if not (0 < p <= 1):
        raise ValueError(f"p must be in (0, 1], got p={p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    cumulative = sorted_logits.softmax(-1).cumsum(-1).contiguous()
    target = torch.full_like(cumulative[..., :1], p)
    kept = (torch.searchsorted(cumulative, target) + 1).clamp(max=logits.size(-1))  # first index with cum >= p
    keep_sorted = torch.arange(logits.size(-1)) < kept
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    return logits.masked_fill(~keep, -math.inf)


def top_p_in_float64(logits, p):
    """Works in float64 inside and gives back the dtype it was given."""
    if p != p or p <= 0 or p > 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = logits.double().softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    drop_sorted = sorted_probs.cumsum(-1) - sorted_probs >= p
    drop = torch.empty_like(drop_sorted).scatter_(-1, order, drop_sorted)
    return logits.masked_fill(drop, -math.inf).to(logits.dtype)


def sample_by_categorical_index(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Filters chained in a loop; multinomial on the probabilities, the column taken with [:, 0]."""
    if temperature == 0:
        return logits.max(dim=-1).indices
    logits = temperature_by_reciprocal(logits, temperature)
    for value, apply in ((top_k, top_k_by_kthvalue), (top_p, top_p_by_searchsorted)):
        if value is not None:
            logits = apply(logits, value)
    return logits.softmax(dim=-1).multinomial(1, generator=generator)[:, 0]


def sample_by_counting_below(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """The id is the number of tokens whose cumulative probability lies below one uniform number per row."""
    if temperature == 0:
        return torch.max(logits, -1).indices
    logits = temperature_as_log_probabilities(logits, temperature)
    logits = top_k_by_ranks(logits, top_k) if top_k is not None else logits
    logits = top_p_in_float64(logits, top_p) if top_p is not None else logits
    cumulative = logits.double().softmax(-1).cumsum(-1)
    uniform = torch.rand(logits.shape[:-1] + (1,), generator=generator, dtype=torch.float64)
    return (cumulative < uniform * cumulative[..., -1:]).sum(-1)


MORE_VALID = {"temperature": [temperature_by_reciprocal, temperature_as_log_probabilities, temperature_of_a_0d_tensor],
              "top_k": [top_k_by_kthvalue, top_k_by_ranks], "top_p": [top_p_by_searchsorted, top_p_in_float64],
              "sample": [sample_by_categorical_index, sample_by_counting_below]}

STUDENT_BUGS = {"temperature": STUDENT_TEMPERATURE_BUGS, "top_k": STUDENT_TOP_K_BUGS, "top_p": STUDENT_TOP_P_BUGS,
                "sample": STUDENT_SAMPLE_BUGS}


(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing, _) = student_tests(CHECKS, STUDENT_BUGS, MORE_VALID, SECRET_SEEDS)  # breadth: below,
# counting VALID too


def test_the_student_sets_are_broad():
    assert all(len(bugs) >= 5 for bugs in STUDENT_BUGS.values()), {e: len(b) for e, b in STUDENT_BUGS.items()}
    assert all(len(VALID[e]) + len(MORE_VALID[e]) >= 5 for e in VALID)


def test_named_messages_of_issue_12():
    """Issue 12 item 3: top-p with gather gets its own message; clamped weights are never called greedy; top-k
    without min(k, vocab) is explained before PyTorch's words; numbers in messages are plain."""
    gathered = failures(check_top_p, nucleus_values_gathered, PUBLIC_SEED)[0].message
    assert "gather(-1, order)" in gathered and "scatter" in gathered
    for weights in (lambda x: x.clamp(min=0), lambda x: x.clamp(min=0) + 1e-12, lambda x: x.clamp(-20, 20)):
        for seed in (PUBLIC_SEED, *SECRET_SEEDS):
            assert not [o for o in failures(check_sample, sampler(weights=weights), seed) if "greedy" in o.message]
    no_min = next(o.message for o in failures(check_top_k, STUDENT_TOP_K_BUGS[1][1], PUBLIC_SEED) if "50" in o.message)
    assert no_min.index("min(k, logits.size(-1))") > 0 and not no_min.split(": ", 1)[1].startswith("raised")
    assert "k = 50 is more than the 5 tokens of a row" in no_min  # the k > vocabulary probe has 5 tokens
