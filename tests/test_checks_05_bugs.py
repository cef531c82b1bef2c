"""A third set of mistakes for notebook 05, written from the student notebook's text alone (one or more per class of
issue 12 item 1 that applies), and valid answers written differently: each mistake is named under the public seed
and every secret one, each valid answer passes under all of them."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from check_family import failures, student_tests
from coursekit.checks import check_sample, check_temperature, check_top_k, check_top_p

CHECKS = {"temperature": check_temperature, "top_k": check_top_k, "top_p": check_top_p, "sample": check_sample}
INF = float("inf")


def needs_positive(value, name):
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


# ---------------------------------------------------------------- apply_temperature


def temperature_zero_allowed(logits, temperature):
    if temperature < 0:  # 0 slips through: division by zero
        raise ValueError("temperature must not be negative")
    return logits / temperature


def temperature_as_power(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits.sign() * logits.abs() ** (1 / temperature)  # a power of the logits, not a division


def temperature_promoting_to_float64(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / torch.tensor([temperature], dtype=torch.float64)  # a 1-D float64 tensor promotes


def temperature_sharpening_only(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / temperature if temperature < 1 else logits.clone()


def temperature_as_numpy(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits.numpy() / temperature


def temperature_of_clamped_logits(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits.clamp(-20, 20) / temperature  # "for numerical stability"


def temperature_on_probabilities(logits, temperature):
    needs_positive(temperature, "temperature")
    return torch.exp(F.log_softmax(logits, -1) / temperature)  # unnormalised weights, read as logits


def temperature_in_place_mul(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits.mul_(1 / temperature)


def temperature_of_the_first_row(logits, temperature):
    needs_positive(temperature, "temperature")
    out = logits.clone()
    out[0] = logits[0] / temperature  # the rest of the batch untouched
    return out


def temperature_cast_to_int(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / max(int(temperature), 1)  # 0.5 -> 1, 2.5 -> 2


def temperature_clamped_from_below(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / max(temperature, 0.5)  # "so the logits do not blow up"


def temperature_clamped_from_above(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / min(temperature, 2.0)


def temperature_floor_division(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits // temperature


def temperature_log_softmax_over_rows(logits, temperature):
    needs_positive(temperature, "temperature")
    return torch.log_softmax(logits / temperature, dim=0)  # dim 0: the batch


def temperature_cast_to_float32(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits.float() / temperature


TEMPERATURE_BUGS = [
    ("turned float64 logits into float32", temperature_cast_to_float32),
    ("has no effect.*int\\(\\)|cast to int", temperature_cast_to_int),
    # at a temperature of 0.25, max(0.25, 0.5) is also its square root: that name is right for that output too
    ("divided by 0.5, not by the temperature.*clamped|square root", temperature_clamped_from_below),
    ("divided by 2, not by the temperature.*clamped", temperature_clamped_from_above),
    ("floor-divided \\(//\\)", temperature_floor_division),
    ("log_softmax was taken over dim 0|1-D tensor", temperature_log_softmax_over_rows),
    ("apply_temperature\\(logits, 0\\) should raise", temperature_zero_allowed),
    ("for row 0|for \\[|NaN", temperature_as_power),
    ("turned float32 logits into float64", temperature_promoting_to_float64),
    ("has no effect", temperature_sharpening_only),
    ("should return a tensor of logits", temperature_as_numpy),
    ("clamped to a fixed range", temperature_of_clamped_logits),
    ("for row 0|probabilities", temperature_on_probabilities),
    ("modified in place", temperature_in_place_mul),
    ("for row 1|for \\[", temperature_of_the_first_row),
]


def temperature_with_epsilon(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / (temperature + 1e-9)


def temperature_shifted_by_the_maximum(logits, temperature):
    needs_positive(temperature, "temperature")
    scaled = logits / temperature
    return scaled - scaled.amax(-1, keepdim=True)


def temperature_by_log_softmax(logits, temperature):
    if math.isnan(temperature) or temperature <= 0:
        raise ValueError(f"temperature={temperature} is not > 0")
    return torch.log_softmax(logits / temperature, dim=-1)


# ---------------------------------------------------------------- top_k_filter


def top_k_zero_means_all(logits, k):
    if k is None or k == 0:  # 0 read as "no filter"
        return logits.clone()
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def top_k_hard_coded_vocabulary(logits, k):
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, 7), dim=-1).values[..., -1:]  # the notebook's 7 tokens
    return logits.masked_fill(logits < kth, -INF)


def top_k_values_row(logits, k):
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[:, -1]  # (batch,), not (batch, 1)
    return logits.masked_fill(logits < kth, -INF)


def top_k_gathered(logits, k):
    needs_positive(k, "k")
    return logits.gather(-1, torch.topk(logits, min(k, logits.size(-1)), dim=-1).indices)  # the k values only


def top_k_sorted_off_by_one(logits, k):
    needs_positive(k, "k")
    if k >= logits.size(-1):
        return logits.clone()
    kth = logits.sort(dim=-1, descending=True).values[..., k: k + 1]  # the (k+1)-th largest
    return logits.masked_fill(logits < kth, -INF)


def top_k_strictly_above(logits, k):
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(~(logits > kth), -INF)  # the k-th itself dropped


def top_k_k_of_the_rows(logits, k):
    needs_positive(k, "k")
    k = min(k, logits.size(0))  # dimension 0: the number of rows, not of tokens
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def top_k_in_float64(logits, k):
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return torch.where(logits >= kth, logits.double(), -INF)


def top_k_only_negative_rejected(logits, k):
    if k < 0:
        raise ValueError("k must not be negative")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def top_k_of_the_probabilities(logits, k):
    needs_positive(k, "k")
    probs = logits.softmax(-1)
    kth = torch.topk(probs, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return probs.masked_fill(probs < kth, 0.0)  # probabilities with zeros, not logits with -inf


def top_k_sorted_not_mapped_back(logits, k):
    needs_positive(k, "k")
    values = logits.sort(dim=-1, descending=True).values.clone()
    values[..., k:] = -INF  # position i is no longer token i
    return values


def top_k_argsort_as_rank(logits, k):
    needs_positive(k, "k")
    return logits.masked_fill(logits.argsort(-1, descending=True) >= k, -INF)  # ids in order, not ranks


def top_k_by_scattered_mask(logits, k):
    """Exactly k per row: a mask scattered from torch.topk's indices, so tokens tied with the k-th are dropped."""
    needs_positive(k, "k")
    indices = logits.topk(min(k, logits.size(-1)), dim=-1).indices
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, indices, True)
    return torch.where(keep, logits, torch.full_like(logits, -INF))


def top_k_thresholded_on_probabilities(logits, k):
    needs_positive(k, "k")
    probs = logits.softmax(-1)  # underflow to 0 for logits far below the maximum
    kth = torch.topk(probs, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(probs < kth, -INF)


def top_k_in_float32(logits, k):
    needs_positive(k, "k")
    logits = logits.float()  # "to be safe"
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def top_k_capped(cap):
    def top_k_filter(logits, k):
        if k < 1:
            raise ValueError("k must be >= 1")
        kth = torch.topk(logits, min(k, cap, logits.size(-1)), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, -INF)
    return top_k_filter


TOP_K_BUGS = [
    ("k capped at 5|k - 1 tokens", top_k_capped(5)),  # k - 1 under a secret seed with k = 6
    ("k capped at 50", top_k_capped(50)),
    ("exactly k tokens were kept, but .* tie with the k-th largest", top_k_by_scattered_mask),
    ("k-th largest was found among the probabilities.*underflow", top_k_thresholded_on_probabilities),
    ("turned float64 logits into float32", top_k_in_float32),
    ("came back in sorted order", top_k_sorted_not_mapped_back),
    ("argsort gives the token ids in sorted order|k - 1 tokens|k \\+ 1 tokens", top_k_argsort_as_rank),
    ("top_k_filter\\(logits, 0\\) should raise", top_k_zero_means_all),
    ("k = \\d+ is more than the \\d+ tokens|hard-coded|k - 1 tokens", top_k_hard_coded_vocabulary),
    ("broadcasts|as a column|for row", top_k_values_row),
    ("shape", top_k_gathered),
    ("k \\+ 1 tokens were kept", top_k_sorted_off_by_one),
    ("k - 1 tokens were kept", top_k_strictly_above),
    ("k - 1 tokens|for row|tokens|the number of rows", top_k_k_of_the_rows),
    ("turned float32 logits into float64", top_k_in_float64),
    ("top_k_filter\\(logits, 0\\) should raise", top_k_only_negative_rejected),
    ("probabilities|set to 0|for row", top_k_of_the_probabilities),
]


def top_k_by_where_and_scalar_tensor(logits, k):
    if not k >= 1:
        raise ValueError(f"k={k}: need k >= 1")
    kth = logits.topk(min(k, logits.shape[-1]), dim=-1).values.amin(dim=-1, keepdim=True)
    return torch.where(logits < kth, torch.tensor(-INF), logits)


def top_k_shifted_by_the_kth(logits, k):
    """Returns logits - kth for the kept ones (a constant shift per row)."""
    if k <= 0:
        raise ValueError("k must be positive")
    kth = logits.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return (logits - kth).masked_fill(logits < kth, -INF)


def top_k_by_numpy_partition(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    array = logits.numpy()
    k = min(k, array.shape[-1])
    kth = np.partition(array, -k, axis=-1)[..., -k:-k + 1] if k > 1 else array.max(-1, keepdims=True)
    return torch.from_numpy(np.where(array >= kth, array, -np.inf).astype(array.dtype))


# ---------------------------------------------------------------- top_p_filter


def nucleus_of(logits, p, drop_rule, softmax=lambda x: x.softmax(-1)):
    needs_positive(p, "p")
    if p > 1:
        raise ValueError("p must be <= 1")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = softmax(sorted_logits)
    drop = drop_rule(probs, probs.cumsum(-1))
    return logits.masked_fill(drop.scatter(-1, order, drop), -INF)


def top_p_crossing_dropped(logits, p):
    def rule(probs, cum):
        drop = cum > p
        drop[..., 0] = False  # "always keep the most likely"
        return drop
    return nucleus_of(logits, p, rule)


def top_p_boundary_greater(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs > p)


def top_p_min_p(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: probs < p * probs[..., :1])  # min-p, not the nucleus


def top_p_zero_means_all(logits, p):
    if not p:
        return logits.clone()
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p)


def top_p_only_nonpositive_rejected(logits, p):
    if p <= 0:
        raise ValueError("p must be > 0")
    if p >= 1:
        return logits.clone()
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p)


def top_p_of_clamped_logits(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p, softmax=lambda x: x.clamp(-30, 30).softmax(-1))


def top_p_without_max_subtraction(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p,
                      softmax=lambda x: x.exp() / x.exp().sum(-1, keepdim=True))


def top_p_gather_back(logits, p):
    needs_positive(p, "p")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.gather(-1, order), -INF)


def top_p_ascending(logits, p):
    needs_positive(p, "p")
    sorted_logits, order = logits.sort(dim=-1)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), -INF)


def top_p_of_the_batch(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p, softmax=lambda x: x.softmax(0))


def top_p_in_float32_out(logits, p):
    """Works in float32 and forgets to give back float16."""
    return nucleus_of(logits.float(), p, lambda probs, cum: cum - probs >= p)


def top_p_skipped_for_a_tiny_p(logits, p):
    if p < 1e-3:
        return logits.clone()  # "too small to matter"
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p)


def top_p_cumsum_of_the_logits(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p, softmax=lambda x: x)


def top_p_of_centred_logits(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    centred = logits - logits.mean(dim=-1, keepdim=True)  # "for stability": NaN once a row holds -inf
    sorted_logits, order = centred.sort(dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), -INF)


def top_p_of_half_probabilities(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    probs = sorted_logits.half().softmax(-1)  # "saves memory"
    drop = probs.cumsum(-1) - probs >= p
    return logits.masked_fill(drop.scatter(-1, order, drop), -INF)


def top_p_in_float32(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    return check_top_p_reference(logits.float(), p)


TOP_P_BUGS = [
    ("rows that already hold -inf.*nothing was dropped.*NaN", top_p_of_centred_logits),
    ("half precision", top_p_of_half_probabilities),
    ("turned float64 logits into float32", top_p_in_float32),
    ("top_p_filter\\(logits, 1e-06\\): every logit was kept: a tiny p", top_p_skipped_for_a_tiny_p),
    ("cumulative sum ran over the sorted logits|every logit was kept", top_p_cumsum_of_the_logits),
    ("float16 logits, 0.6\\) returned float32|float64 logits into float32", top_p_in_float32_out),
    ("crosses top_p was dropped", top_p_crossing_dropped),
    ("preceding tokens hold exactly p was kept", top_p_boundary_greater),
    ("for row|one token too many|crosses|every logit", top_p_min_p),
    ("top_p_filter\\(logits, 0.0\\) should raise", top_p_zero_means_all),
    ("top_p_filter\\(logits, 1.5\\) should raise", top_p_only_nonpositive_rejected),
    ("large logits", top_p_of_clamped_logits),
    ("exp of logits around 100 overflows|gives NaN", top_p_without_max_subtraction),
    ("gather\\(-1, order\\)", top_p_gather_back),
    ("ascending order|every logit was kept", top_p_ascending),
    ("for row|1-D|raised", top_p_of_the_batch),
]


def top_p_renormalised_log_probabilities(logits, p):
    """Returns the log of the renormalised nucleus: the same distribution."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got p={p}")
    probs = logits.softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    keep_sorted = (sorted_probs.cumsum(-1) - sorted_probs) < p
    keep = torch.zeros_like(keep_sorted).scatter(-1, order, keep_sorted)
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return (kept / kept.sum(-1, keepdim=True)).log()


def top_p_by_counting(logits, p):
    """How many tokens to keep per row, then a rank comparison."""
    if math.isnan(p) or not 0 < p <= 1:
        raise ValueError(f"p={p} must lie in (0, 1]")
    probs = logits.softmax(-1)
    sorted_probs = probs.sort(-1, descending=True).values
    count = ((sorted_probs.cumsum(-1) - sorted_probs) < p).sum(-1, keepdim=True)
    ranks = logits.argsort(-1, descending=True).argsort(-1)
    return logits.masked_fill(ranks >= count, -INF)


def top_p_by_index_put(logits, p):
    if not (0 < p <= 1):
        raise ValueError(f"top_p: p must be in (0, 1], got {p}")
    sorted_logits, order = torch.sort(logits, descending=True)
    cum = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cum >= p
    remove[..., 1:] = remove[..., :-1].clone()  # shift right: the token that crosses p stays
    remove[..., 0] = False
    out = logits.clone()
    out[remove.scatter(-1, order, remove)] = -INF
    return out


# ---------------------------------------------------------------- sample_next_token


def filters(logits, temperature, top_k, top_p, given=lambda value: value is not None):
    if given(top_k):
        logits = check_top_k_reference(logits, top_k)
    if given(top_p):
        logits = check_top_p_reference(logits, top_p)
    return logits


def check_top_k_reference(logits, k):
    needs_positive(k, "k")
    kth = torch.topk(logits, min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, -INF)


def check_top_p_reference(logits, p):
    return nucleus_of(logits, p, lambda probs, cum: cum - probs >= p)


def scaled(logits, temperature):
    needs_positive(temperature, "temperature")
    return logits / temperature


def sample_temperature_last(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = scaled(filters(logits, temperature, top_k, top_p), temperature)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def top_p_before_top_k(logits, temperature, top_k, top_p):
    logits = logits / temperature
    logits = check_top_p_reference(logits, top_p) if top_p is not None else logits
    return check_top_k_reference(logits, top_k) if top_k is not None else logits


def sample_top_p_first(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = top_p_before_top_k(scaled(logits, temperature), 1.0, top_k, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_truthy_filters(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p, given=bool)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_global_rng(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(-1), 1).squeeze(-1)


def sample_inverse_cdf_global_rng(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    cumulative = logits.softmax(-1).cumsum(-1)
    u = torch.rand(logits.shape[:-1] + (1,))  # the global RNG, not the generator
    return torch.searchsorted(cumulative, u).squeeze(-1).clamp(max=logits.size(-1) - 1)


def sample_clamped_logits(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.clamp(-30, 30).softmax(-1), 1, generator=generator).squeeze(-1)


def sample_nan_temperature(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    if temperature < 0:
        raise ValueError("temperature must be >= 0")
    logits = filters(logits / temperature, temperature, top_k, top_p)  # NaN slips through
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_item(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[0].item()  # one id for the batch


def sample_naive_exp(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.exp() / logits.exp().sum(-1, keepdim=True), 1, generator=generator).squeeze(-1)


def sample_positions_of_top_k(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = scaled(logits, temperature)
    if top_k is not None:
        logits = logits.topk(min(top_k, logits.size(-1)), dim=-1).values  # positions among the k, not ids
    if top_p is not None:
        logits = check_top_p_reference(logits, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_softmax_over_the_batch(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(F.softmax(logits, dim=0), 1, generator=generator).squeeze(-1)  # over the rows


def sample_greedy_as_int32(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0 or top_k == 1:
        return logits.argmax(-1).int()  # int32 on the greedy paths
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_truthy_top_p(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = scaled(logits, temperature)
    logits = check_top_k_reference(logits, top_k) if top_k is not None else logits
    logits = check_top_p_reference(logits, top_p) if top_p else logits  # top_p=0.0 read as "no filter"
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_filtering_after_sampling(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = scaled(logits, temperature)
    ids = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)
    kept = filters(logits, temperature, top_k, top_p)
    outside = torch.isneginf(kept.gather(-1, ids[:, None])).squeeze(-1)
    return torch.where(outside, kept.argmax(-1), ids)  # a token outside the filters becomes the most likely


def sample_dividing_in_place(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    needs_positive(temperature, "temperature")
    logits /= temperature  # the caller's logits
    return torch.multinomial(filters(logits, temperature, top_k, top_p).softmax(-1), 1,
                             generator=generator).squeeze(-1)


def sample_greedy_over_the_batch(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if top_k == 1:
        return logits.argmax(0)  # over the rows
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_greedy_as_top_k_1(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        temperature, top_k = 1.0, 1  # "top_k=1 is greedy": but it draws among tied maxima
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_greedy_drawing_a_one_hot(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:  # the argmax, but drawn: the generator moves on
        one_hot = F.one_hot(logits.argmax(-1), logits.size(-1)).float()
        return torch.multinomial(one_hot, 1, generator=generator).squeeze(-1)
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_with_a_fresh_generator(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    generator = generator or torch.Generator()  # the same default seed at every call
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_one_row_greedily(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if logits.size(0) == 1:  # "a single sequence: just take the best"
        return logits.argmax(-1)
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


def sample_modulo_256(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator) % 256  # "byte-level ids"


def sample_with_top_p_only_without_top_k(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    top_p = top_p if top_k is None else None  # `if top_k ... elif top_p`: one filter or the other
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_with_a_nan_top_p(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    logits = scaled(logits, temperature)
    logits = check_top_k_reference(logits, top_k) if top_k is not None else logits
    logits = top_p_of_centred_logits(logits, top_p) if top_p is not None else logits
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def sample_from_a_reseeded_copy(copy):
    def sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        if temperature == 0:
            return logits.argmax(-1)
        logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
        return torch.multinomial(logits.softmax(-1), 1, generator=copy(generator)).squeeze(-1)
    return sample_next_token


def sample_with_top_k_capped_at_3(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return logits.argmax(-1)
    top_k = None if top_k is None else min(top_k, 3)
    logits = filters(scaled(logits, temperature), temperature, top_k, top_p)
    return torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(-1)


def reseeded(generator):
    return torch.Generator().manual_seed(generator.initial_seed()) if generator is not None else None


def restored(generator):
    if generator is None:
        return None
    copy = torch.Generator()
    copy.set_state(generator.get_state())
    return copy


SAMPLE_BUGS = [
    ("two calls .* in a row with one generator gave the same tokens: the caller's generator never moves forward",
     sample_from_a_reseeded_copy(reseeded)),
    ("never came out.*top_k capped|sampled tokens|frequencies of the", sample_with_top_k_capped_at_3),
    ("two calls .* in a row with one generator gave the same tokens: the caller's generator never moves forward",
     sample_from_a_reseeded_copy(restored)),
    ("tied for the largest logit, temperature=0 gave .*first of tied maxima", sample_greedy_as_top_k_1),
    ("temperature=0, generator=generator\\) drew from the generator", sample_greedy_drawing_a_one_hot),
    ("two calls without a generator.*same .* tokens.*global RNG", sample_with_a_fresh_generator),
    ("batch of one row.*all returned the most likely token", sample_one_row_greedily),
    ("vocabulary of 300 tokens.*ids go up to vocab - 1", sample_modulo_256),
    ("top-p had no effect after top-k.*-inf", sample_with_a_nan_top_p),
    ("top-p had no effect after top-k.*an elif", sample_with_top_p_only_without_top_k),
    ("filter was applied after sampling", sample_filtering_after_sampling),
    ("modified the logits passed in", sample_dividing_in_place),
    ("argmax over dim=-1, the tokens of each row, not over dim=0", sample_greedy_over_the_batch),
    ("\\(temperature=0\\) should return token ids as a torch.long", sample_greedy_as_int32),
    ("top_p=0\\) should raise.*`if top_p is not None:`", sample_truthy_top_p),
    ("applied before the temperature|temperature=2 with top_p=0.6", sample_temperature_last),
    ("top-p was applied before top-k", sample_top_p_first),
    ("not `if top_k:`", sample_truthy_filters),
    ("the generator is ignored", sample_global_rng),
    ("the generator is ignored", sample_inverse_cdf_global_rng),
    ("clamped to a fixed range", sample_clamped_logits),
    ("NaN or negative|temperature=nan", sample_nan_temperature),
    ("returned int|one id per row|shape", sample_item),
    ("non-negative weights|100|exp", sample_naive_exp),
    ("positions among the k kept tokens", sample_positions_of_top_k),
    ("equally often|frequencies", sample_softmax_over_the_batch),
]


def sample_by_powered_probabilities(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Filters on log-probabilities; temperature applied as a power of the probabilities (the same thing)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True).squeeze(-1)
    needs_positive(temperature, "temperature")
    log_probs = logits.log_softmax(-1) / temperature
    log_probs = top_k_by_where_and_scalar_tensor(log_probs, top_k) if top_k is not None else log_probs
    log_probs = top_p_by_counting(log_probs, top_p) if top_p is not None else log_probs
    return torch.multinomial(log_probs.exp(), 1, replacement=True, generator=generator).view(-1)


def sample_by_exponential_race(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """argmin of Exp(1) / p is a sample from p (an exponential race), from the given generator."""
    if temperature == 0:
        return logits.argmax(-1)
    logits = temperature_shifted_by_the_maximum(logits, temperature)
    if top_k is not None:
        logits = top_k_by_numpy_partition(logits, top_k)
    if top_p is not None:
        logits = top_p_by_index_put(logits, top_p)
    probs = logits.softmax(-1)
    race = torch.empty(probs.shape, dtype=probs.dtype).exponential_(generator=generator) / probs
    return race.argmin(-1)


def sample_row_by_row(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0:
        return torch.stack([row.argmax() for row in logits])
    logits = temperature_by_log_softmax(logits, temperature)
    given = [(apply, value) for apply, value in ((top_k_shifted_by_the_kth, top_k),
                                                 (top_p_renormalised_log_probabilities, top_p)) if value is not None]
    for apply, value in given:
        logits = apply(logits, value)
    return torch.multinomial(logits.softmax(-1), num_samples=1, generator=generator).flatten()


def temperature_row_by_row(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.stack([row / temperature for row in logits]) if logits.ndim > 1 else logits / temperature


def top_k_by_a_loop(logits, k):
    needs_positive(k, "k")
    rows = logits.reshape(-1, logits.size(-1))
    out = []
    for row in rows:
        kth = sorted(row.tolist(), reverse=True)[min(k, row.numel()) - 1]
        out.append(row.masked_fill(row < kth, -INF))
    return torch.stack(out).reshape(logits.shape)


def top_k_by_log_probabilities(logits, k):
    """The k-th largest log-probability (log_softmax does not underflow), ties kept, log-probabilities returned."""
    needs_positive(k, "k")
    log_probs = logits.log_softmax(-1)
    kth = log_probs.topk(min(k, logits.size(-1)), dim=-1).values[..., -1:]
    return log_probs.masked_fill(log_probs < kth, -INF)


def top_p_in_float32_inside(logits, p):
    """Softmax and cumsum in float32 whatever the logits' dtype, then the mask on the logits as given."""
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs, order = logits.float().softmax(-1).sort(-1, descending=True)
    drop = probs.cumsum(-1) - probs >= p
    return torch.where(drop.scatter(-1, order, drop), torch.tensor(-INF, dtype=logits.dtype), logits)


def top_p_row_by_row(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    rows = logits.reshape(-1, logits.size(-1))
    out = torch.full_like(rows, -INF)
    for i, row in enumerate(rows):
        held = 0.0
        for token in row.argsort(descending=True).tolist():
            if held >= p:
                break
            out[i, token] = row[token]
            held += float(row.softmax(-1)[token])
    return out.reshape(logits.shape)


def sample_greedy_by_max(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Greedy by Tensor.max (the first of tied maxima too); sampling from the global RNG when no generator is given."""
    if temperature == 0:
        return logits.max(dim=-1).indices
    probs = filters(scaled(logits, temperature), temperature, top_k, top_p).softmax(-1)
    return torch.multinomial(probs, 1, generator=generator)[:, 0] if generator is not None else \
        torch.multinomial(probs, 1)[:, 0]


def sample_with_a_top_k_1_shortcut(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    if temperature == 0 or top_k == 1:  # both greedy
        return logits.argmax(dim=-1).long()
    return sample_by_exponential_race(logits, temperature, top_k, top_p, generator)


VALID = {
    "temperature": [temperature_with_epsilon, temperature_shifted_by_the_maximum, temperature_by_log_softmax,
                    temperature_row_by_row],
    "top_k": [top_k_by_where_and_scalar_tensor, top_k_shifted_by_the_kth, top_k_by_numpy_partition,
              top_k_by_a_loop, top_k_by_log_probabilities],
    "top_p": [top_p_renormalised_log_probabilities, top_p_by_counting, top_p_by_index_put, top_p_in_float32_inside,
              top_p_row_by_row],
    "sample": [sample_by_powered_probabilities, sample_by_exponential_race, sample_row_by_row,
               sample_with_a_top_k_1_shortcut, sample_greedy_by_max],
}
BUGS = {"temperature": TEMPERATURE_BUGS, "top_k": TOP_K_BUGS, "top_p": TOP_P_BUGS, "sample": SAMPLE_BUGS}

(test_third_set_valid_answers_pass_under_public_and_secret_seeds,
 test_third_set_mistakes_are_named_under_the_public_and_every_secret_seed, _,
 test_the_third_set_is_broad) = student_tests(CHECKS, BUGS, VALID)


# ---------------------------------------------------------------- judges trust only outputs for inputs they chose


def _test(check, name):
    return next(test for test in check.tests if test.name.startswith(name))


@pytest.mark.parametrize("seed", [0, 3])
def test_filter_judges_compare_the_input_after_the_call_themselves(seed):
    """No claim such as "changed": False can hide an in-place change: the judge compares the tensor it handed over."""
    test = _test(check_top_p, "top_p_filter keeps the nucleus")
    right = dict(check_top_p.probe_all((top_p_by_counting,), seed))[test.name]
    outcome = {o.test: o for o in check_top_p.judge([(test.name, right)], seed)}[test.name]
    assert outcome.passed
    for forged in ({**right, "given_after": None}, {**right, "given_after": right["given_after"] + 1},
                   {**right, "changed": False, "given_after": right["output"]}):
        outcome = {o.test: o for o in check_top_p.judge([(test.name, forged)], seed)}[test.name]
        assert not outcome.passed and "modified in place" in outcome.message


@pytest.mark.parametrize("seed", [0, 3])
def test_sampler_judges_count_and_type_the_draws_themselves(seed):
    """Counts, shapes and dtypes come from the ids returned, never from a count or a dtype name the sandbox sends."""
    frequencies = _test(check_sample, "4000 draws with the defaults")
    forged_counts = {"error": None, "counts": np.full(8, 500)}
    outcome = {o.test: o for o in check_sample.judge([(frequencies.name, forged_counts)], seed)}[frequencies.name]
    assert not outcome.passed
    from coursekit.sampling import sample_next_token

    dtype = _test(check_sample, "token ids are torch.long")
    right = dict(check_sample.probe_all((sample_next_token,), seed))  # a property earns only beside right outputs
    paths = ("sampling", "temperature=0", "top_k=1")
    ids = {path: np.zeros(4, dtype=np.int64) for path in paths}
    for forged, passed in (({"dtype": "torch.int64"}, False), ("torch.int64", False), (np.zeros(4, dtype=np.int64),
                           False), (ids, True), ({**ids, "top_k=1": np.zeros(4, dtype=np.int32)}, False),
                           ({path: "torch.int64" for path in paths}, False)):
        outcome = {o.test: o for o in check_sample.judge([*{**right, dtype.name: forged}.items()], seed)}[dtype.name]
        assert outcome.passed is passed, forged


# ---------------------------------------------------------------- 04's generate and 05's sampler agree on the order


def strict_boundary(logits, temperature, top_k, top_p):
    logits = logits / temperature
    logits = check_top_k_reference(logits, top_k) if top_k is not None else logits
    return nucleus_of(logits, top_p, lambda probs, cum: cum - probs > top_p) if top_p is not None else logits


def exactly_k(logits, temperature, top_k, top_p):
    logits = logits / temperature
    logits = top_k_by_scattered_mask(logits, top_k) if top_k is not None else logits
    return check_top_p_reference(logits, top_p) if top_p is not None else logits


@pytest.mark.parametrize("order", ["reference", "temperature last", "top-p before top-k", "strict boundary",
                                   "exactly k kept when others tie"])
def test_generate_of_04_and_the_sampler_of_05_agree_on_the_order(order):
    """CHECKS-HELPERS item 8: the same next-token rule passes or fails both checks (temperature, top-k, top-p,
    then softmax and multinomial; the nucleus keeps the token where the cumulative sum first reaches p)."""
    import test_checks_gpt as gpt_tests
    from coursekit.checks import check_generate
    from coursekit.sampling import check_sampling_arguments

    rule = {"reference": lambda x, t, k, p: gpt_tests.GPT.next_logits(None, x, t, k, p),
            "temperature last": gpt_tests.temperature_after_filters, "top-p before top-k": top_p_before_top_k,
            "strict boundary": strict_boundary, "exactly k kept when others tie": exactly_k}[order]

    def sample(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
        check_sampling_arguments(temperature, top_k, top_p)
        if temperature == 0:
            return logits.argmax(-1)
        return torch.multinomial(rule(logits, temperature, top_k, top_p).softmax(-1), 1, generator=generator)[:, 0]

    generate_passes = not [o for o in check_generate.judge(check_generate.probe_all(
        (gpt_tests.gpt_generating(next_logits=rule),), 0), 0) if not o.passed]
    for seed in (0, 2):
        assert (failures(check_sample, sample, seed) == []) == generate_passes == (order == "reference"), seed
