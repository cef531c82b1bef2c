"""Next-token sampling: filters keep the right tokens, and sampled frequencies match the intended distribution."""

import math

import pytest
import torch

from coursekit.sampling import (apply_temperature, entropy, greedy, sample_next_token, top_k_filter,
                                top_p_filter)

N = 20_000  # samples per frequency check: the standard error of a frequency is at most 0.5 / sqrt(N) = 0.0035


def frequencies(logits, seed=0, **settings):
    """Draw N samples from one row of logits in a single call; return the frequency of each token."""
    rows = logits.expand(N, -1)
    samples = sample_next_token(rows, generator=torch.Generator().manual_seed(seed), **settings)
    return torch.bincount(samples, minlength=logits.numel()).double() / N


PROBS = torch.tensor([0.5, 0.3, 0.15, 0.05])


def test_plain_sampling_follows_softmax():
    assert torch.allclose(frequencies(PROBS.log()), PROBS.double(), atol=0.015)


@pytest.mark.parametrize("p, nucleus", [(0.4, [0]), (0.5, [0]), (0.75, [0, 1]), (0.9, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_never_samples_outside_the_nucleus(p, nucleus):
    shuffled = torch.tensor([2, 0, 3, 1])  # the filter must not rely on tokens being sorted by probability
    logits = PROBS.log()[shuffled]
    allowed = [int((shuffled == i).nonzero()) for i in nucleus]
    counts = frequencies(logits, top_p=p)
    outside = [i for i in range(4) if i not in allowed]
    assert counts[outside].sum() == 0, f"top_p={p} sampled tokens {outside} outside the nucleus {allowed}"
    renormalised = logits.exp()[allowed] / logits.exp()[allowed].sum()
    assert torch.allclose(counts[allowed], renormalised.double(), atol=0.015)


def test_top_k_samples_only_the_k_most_likely():
    logits = torch.tensor([0.0, 3.0, 1.0, 2.0, -1.0])
    counts = frequencies(logits, top_k=2)
    assert counts[[0, 2, 4]].sum() == 0
    expected = torch.tensor([math.exp(3), math.exp(2)]) / (math.exp(3) + math.exp(2))
    assert torch.allclose(counts[[1, 3]], expected.double(), atol=0.015)


def test_top_k_one_equals_greedy():
    logits = torch.randn(50, 30, generator=torch.Generator().manual_seed(1))
    sampled = sample_next_token(logits, top_k=1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(sampled, logits.argmax(dim=-1))
    assert torch.equal(sample_next_token(logits, temperature=0), logits.argmax(dim=-1))


@pytest.mark.parametrize("temperature, least_argmax_share", [(1.0, 0.3), (0.3, 0.6), (0.05, 0.99), (0.01, 1.0)])
def test_low_temperature_approaches_argmax(temperature, least_argmax_share):
    logits = torch.tensor([1.0, 1.5, 0.5, 1.2])  # argmax is token 1, by a margin of 0.3
    share = frequencies(logits, temperature=temperature)[1].item()
    assert share >= least_argmax_share
    expected = torch.softmax(logits / temperature, dim=0)[1].item()
    assert share == pytest.approx(expected, abs=0.015)


def test_high_temperature_approaches_uniform():
    counts = frequencies(torch.tensor([3.0, 0.0, -2.0]), temperature=100.0)
    assert torch.allclose(counts, torch.full((3,), 1 / 3, dtype=torch.double), atol=0.03)


def test_filters_work_on_batches_and_keep_shapes():
    logits = torch.randn(4, 7, 10, generator=torch.Generator().manual_seed(0))
    for filtered in (top_k_filter(logits, 3), top_p_filter(logits, 0.5), apply_temperature(logits, 2.0)):
        assert filtered.shape == logits.shape
    assert (torch.isfinite(top_k_filter(logits, 3)).sum(-1) == 3).all()
    assert (torch.isfinite(top_k_filter(logits, 100)).sum(-1) == 10).all(), "k above the vocabulary keeps all"
    assert torch.equal(greedy(logits), logits.argmax(-1))


def test_top_p_keeps_the_most_likely_token_even_when_it_alone_exceeds_p():
    logits = torch.tensor([[0.0, 10.0, 0.0]])
    assert torch.isfinite(top_p_filter(logits, 1e-6)).tolist() == [[False, True, False]]


def test_entropy_of_known_distributions():
    assert entropy(torch.full((8,), 1 / 8)).item() == pytest.approx(math.log(8))
    assert entropy(torch.tensor([0.0, 1.0, 0.0])).item() == 0.0
    p = torch.tensor([0.1, 0.2, 0.7])
    assert entropy(p).item() == pytest.approx(-sum(x * math.log(x) for x in p.tolist()), abs=1e-6)


@pytest.mark.parametrize("settings, message", [
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=0), "top_k"),
    (dict(top_k=2.5), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=1.01), "top_p"),
])
def test_bad_settings_raise_value_errors(settings, message):
    with pytest.raises(ValueError, match=message):
        sample_next_token(torch.zeros(1, 3), **settings)


@pytest.mark.parametrize("check, function", [("check_temperature", apply_temperature), ("check_top_k", top_k_filter),
                                             ("check_top_p", top_p_filter), ("check_sample", sample_next_token)])
def test_the_library_sampler_passes_notebook_05s_checks(check, function):
    """GPT.generate and the explorer sample with coursekit.sampling: it must do what the students' answers must."""
    from coursekit import checks

    getattr(checks, check)(function)  # raises AssertionError naming the mistake
