"""The notebook 05 checks: each passes the notebook's solution and valid alternatives, and names plausible mistakes."""

import math

import pytest
import torch
from torch.nn import functional as F

from coursekit import sampling
from coursekit.checks import sampling as checks

# ---------------------------------------------------------------- the notebook's solution and valid alternatives


def apply_temperature(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits / temperature


def log_softmax_temperature(logits, temperature):
    """Returns log-probabilities: the same distribution, shifted by a constant per row."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got temperature={temperature}")
    return F.log_softmax(logits * (1.0 / temperature), dim=-1)


def top_k_filter(logits, k):
    if k < 1:
        raise ValueError(f"top_k must be >= 1, got k={k}")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_by_scatter(logits, k):
    """Builds the output from -inf and scatters the top k back."""
    if k < 1:
        raise ValueError("k must be at least 1")
    values, indices = torch.topk(logits, min(k, logits.size(-1)), dim=-1)
    return torch.full_like(logits, -math.inf).scatter(-1, indices, values)


def top_p_filter(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got p={p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


def top_p_by_loop(logits, p):
    """Row by row, in Python, building a keep-mask from a sorted index list."""
    if p <= 0 or p > 1:
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
    logits = top_p_by_loop(top_k_by_scatter(logits / temperature, top_k) if top_k else logits / temperature,
                           top_p) if top_p else (top_k_by_scatter(logits / temperature, top_k) if top_k
                                                 else logits / temperature)
    uniform = torch.rand(logits.shape, generator=generator).clamp_min(1e-20)
    return (logits - torch.log(-torch.log(uniform))).argmax(dim=-1)


@pytest.mark.parametrize("function", [apply_temperature, log_softmax_temperature])
def test_temperature_accepts_valid_implementations(function):
    checks.check_temperature(function)


def top_k_by_sorting(logits, k):
    """coursekit's own filter behind a check of k."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    return sampling.top_k_filter(logits, k)


@pytest.mark.parametrize("function", [top_k_filter, top_k_by_scatter, top_k_by_sorting])
def test_top_k_accepts_valid_implementations(function):
    checks.check_top_k(function)


@pytest.mark.parametrize("function", [top_p_filter, top_p_by_loop])
def test_top_p_accepts_valid_implementations(function):
    checks.check_top_p(function)


@pytest.mark.parametrize("function", [sample_next_token, sample_with_gumbel,
                                      lambda logits, temperature=1.0, top_k=None, top_p=None, generator=None:
                                      sampling.sample_next_token(logits, temperature, top_k, top_p, generator)])
def test_sample_accepts_valid_implementations(function):
    checks.check_sample(function)


# ---------------------------------------------------------------- mistakes


def checked(function):
    """A buggy filter that still validates its argument like the solution, so only the bug shows."""
    def wrapper(logits, value):
        if not value > 0 or (isinstance(value, float) and value > 1 and function.__name__.startswith("p_")):
            raise ValueError(f"k / p / temperature out of range: {value}")
        return function(logits, value)
    wrapper.__name__ = function.__name__
    return wrapper


def in_place(logits, temperature):
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    logits /= temperature
    return logits


def asserting_temperature(logits, temperature):
    assert temperature > 0, f"temperature must be > 0, got {temperature}"
    return logits / temperature


TEMPERATURE_BUGS = {
    "multiplied by the temperature": checked(lambda logits, t: logits * t),
    "has no effect": checked(lambda logits, t: logits),
    "returns probabilities": checked(lambda logits, t: (logits / t).softmax(-1)),
    "modified in place \\(an operation ending in _, or /=": in_place,
    "AssertionError \\(from assert\\): raise ValueError": asserting_temperature,
    "should raise a ValueError that names temperature": lambda logits, t: logits / t if t != 0 else logits,
    "should name the argument 'temperature'": lambda logits, t: (
        logits / t if t > 0 else (_ for _ in ()).throw(ValueError("must be positive"))),
}


@pytest.mark.parametrize("mistake", TEMPERATURE_BUGS)
def test_temperature_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_temperature(TEMPERATURE_BUGS[mistake])


def keep_ranks(logits, keep):
    ranks = logits.argsort(-1, descending=True).argsort(-1)
    return logits.masked_fill(~keep(ranks, logits.size(-1)), float("-inf"))


TOP_K_BUGS = {
    "k \\+ 1 tokens were kept": checked(lambda logits, k: keep_ranks(logits, lambda r, n: r <= k)),
    "k - 1 tokens were kept": checked(lambda logits, k: keep_ranks(logits, lambda r, n: r < max(k - 1, 0))),
    "least likely": checked(lambda logits, k: keep_ranks(logits, lambda r, n: r >= n - k)),
    "whole batch": checked(lambda logits, k: logits.masked_fill(
        logits < logits.flatten().topk(k).values[-1], float("-inf"))),
    "set to 0": checked(lambda logits, k: logits.masked_fill(
        logits < torch.topk(logits, min(k, logits.size(-1))).values[..., -1:], 0.0)),
    "every logit was kept": checked(lambda logits, k: logits.clone()),
    "RuntimeError": checked(lambda logits, k: logits.masked_fill(
        logits < torch.topk(logits, k).values[..., -1:], float("-inf"))),  # k > vocabulary crashes
    "naming top_k or k|should raise": lambda logits, k: top_k_filter(logits, max(k, 1)),
    "1-D tensor of logits raised IndexError": checked(lambda logits, k: logits.masked_fill(
        logits < torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]], float("-inf"))),  # 2-D only
}


@pytest.mark.parametrize("mistake", TOP_K_BUGS)
def test_top_k_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_top_k(TOP_K_BUGS[mistake])


def nucleus_on_first_row_only(logits, p):
    """Right for the first distribution of a batch, every other row left unfiltered."""
    out = logits.clone()
    out[:1] = top_p_filter(logits[:1], p)
    return out


def nucleus_variant(logits, p, before=True, sorted_mask_only=False):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = (probs.cumsum(-1) - (probs if before else 0)) >= p
    if sorted_mask_only:
        return logits.masked_fill(drop, float("-inf"))
    return logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))


TOP_P_BUGS = {
    "crosses top_p was dropped": lambda logits, p: nucleus_variant(logits, p, before=False),
    "applied to the logits in vocabulary order": lambda logits, p: nucleus_variant(logits, p, sorted_mask_only=True),
    "every logit was kept": lambda logits, p: top_p_filter(logits, p) if p <= 0 or p > 1 else logits.clone(),
    "should raise": lambda logits, p: top_p_filter(logits, min(max(p, 1e-9), 1.0)),
    "for row 1 got": lambda logits, p: top_p_filter(logits, p) if logits.ndim == 1 or not 0 < p <= 1
    else nucleus_on_first_row_only(logits, p),
}


@pytest.mark.parametrize("mistake", TOP_P_BUGS)
def test_top_p_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_top_p(TOP_P_BUGS[mistake])


def sampler(temperature_first=True, use_temperature=True, use_top_k=True, use_top_p=True, greedy_always=False,
            zero_temperature=True, seeded=True):
    def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if greedy_always or (zero_temperature and temperature == 0):
            return logits.argmax(dim=-1)
        if use_temperature and temperature_first:
            logits = logits / temperature
        if top_k is not None and use_top_k:
            logits = top_k_filter(logits, top_k)
        if top_p is not None and use_top_p:
            logits = top_p_filter(logits, top_p)
        if use_temperature and not temperature_first:
            logits = logits / temperature
        return torch.multinomial(logits.softmax(-1), 1, generator=generator if seeded else None).squeeze(-1)
    return sample


SAMPLE_BUGS = {
    "most likely token: sample with torch.multinomial": sampler(greedy_always=True),
    "temperature=0 means greedy": sampler(zero_temperature=False),
    "temperature is ignored": sampler(use_temperature=False),
    "top_k is ignored": sampler(use_top_k=False),
    "top_p is ignored": sampler(use_top_p=False),
    "before the temperature": sampler(temperature_first=False),
    "pass generator to torch.multinomial": sampler(seeded=False),
}


@pytest.mark.parametrize("mistake", SAMPLE_BUGS)
def test_sample_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_sample(SAMPLE_BUGS[mistake])


def test_top_p_never_samples_outside_the_nucleus_even_when_the_frequencies_are_close():
    """A sampler that leaks a sliver of probability outside the nucleus is named, however rarely it leaks."""
    def leaky(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        probs = sample_next_token(logits, temperature, top_k, None, generator)  # ignore top_p ...
        if top_p is None:
            return probs
        nucleus = sample_next_token(logits, temperature, top_k, top_p, generator)
        return torch.where(torch.arange(len(probs)) % 200 == 0, probs, nucleus)  # ... for 1 draw in 200
    outcomes = checks.check_sample.judge(checks.check_sample.probe_all((leaky,)))
    nucleus = next(o for o in outcomes if o.test.startswith("top_p=0.6"))
    assert not nucleus.passed and "probability 0 after filtering" in nucleus.message


def test_verdicts_survive_the_graders_wire():
    """The grader carries probe results across a process boundary (coursekit.grading.wire) before judging."""
    from coursekit.grading import wire

    for check, function in [(checks.check_temperature, apply_temperature), (checks.check_top_k, top_k_filter),
                            (checks.check_top_p, top_p_filter), (checks.check_sample, sample_next_token)]:
        results = [(name, wire.decode_value(wire.encode_value(data))) for name, data in check.probe_all((function,))]
        assert all(outcome.passed for outcome in check.judge(results)), check.exercise
