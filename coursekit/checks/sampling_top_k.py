"""Checks for notebook 05, part 2: top_k_filter keeps the k largest logits of each row.

Ties at the k-th value stay: the notebook sets every logit *below* the k-th largest to -inf (Hint 1: "ties with the
k-th stay"), so a tied token is as likely as the k-th and is kept; keeping exactly k (a mask scattered from
torch.topk's indices) drops some of them and is named. How a filter is checked: sampling_filters.py.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, is_public, probe_rng
from coursekit.checks.probing import large_magnitudes
from coursekit.checks.sampling_filters import (LOGITS, _significant, dtype_tests, error_judge, filter_case,
                                               filter_test, keep_only, random_logits, raises, reference, rounded)


def _rank(logits: torch.Tensor) -> torch.Tensor:
    """Rank of every entry within its row: 0 for the largest."""
    return logits.argsort(dim=-1, descending=True).argsort(dim=-1)


def _exactly_k(out: np.ndarray, logits: torch.Tensor, k: int) -> str | None:
    """The mistake of keeping exactly k per row where other tokens tie with the k-th largest, or None."""
    vocab = logits.size(-1)
    kept, logits = ~np.isneginf(out.reshape(-1, vocab)), logits.reshape(-1, vocab)
    kth = torch.topk(logits, min(k, vocab), dim=-1).values[:, -1:]
    above, tied = (logits > kth).numpy(), (logits == kth).numpy()
    dropped_ties = np.flatnonzero((tied & ~kept).any(-1))
    if (kept & ~(above | tied)).any() or (above & ~kept).any() or not (kept.sum(-1) == min(k, vocab)).all() \
            or len(dropped_ties) == 0:
        return None
    row = int(dropped_ties[0])
    return (f"exactly k tokens were kept, but in {rounded(logits[row])} other tokens tie with the k-th largest "
            f"({_significant(float(kth[row]))}) and were dropped: ties with the k-th stay (as likely as a kept "
            f"token), so keep every logit >= the k-th largest, masked_fill(logits < kth, -inf), rather than "
            f"exactly the k indices torch.topk returns")


def _capped(out: np.ndarray, logits: torch.Tensor, k: int) -> str | None:
    """The mistake of a k capped at a fixed number (min(k, 5), min(k, 50)): every row keeps its c largest, c < k."""
    vocab = logits.size(-1)
    kept, ranks = ~np.isneginf(out.reshape(-1, vocab)), _rank(logits.reshape(-1, vocab)).numpy()
    counts = set(kept.sum(-1).tolist())
    if len(counts) != 1:
        return None
    cap = counts.pop()
    if not 1 <= cap < min(k, vocab) - 1 or not (kept == (ranks < cap)).all():
        return None
    rows = ", the number of rows: the tokens are logits.size(-1)" if logits.ndim == 2 and logits.size(0) == cap else ""
    return (f"only the {cap} largest logits of each row were kept, not k = {k}: is k capped at {cap} (e.g. "
            f"min(k, {cap}){rows})? keep the k largest, torch.topk(logits, min(k, logits.size(-1)))")


def _diagnose(out: np.ndarray, logits: torch.Tensor, k: int) -> str | None:
    return _exactly_k(out, logits, k) or _capped(out, logits, k)


def _top_k_mistakes():
    def threshold_keep(keep):
        return lambda x, k: keep_only(x, keep(x, k))
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
         "them to float('-inf')", lambda x, k: reference().top_k_filter(x, k).nan_to_num(neginf=0.0)),
        ("the logits came back in sorted order (largest first): position i must still be token i; set the "
         "logits below the k-th largest to -inf where they are", lambda x, k: keep_only(
             x.sort(dim=-1, descending=True).values, torch.arange(x.size(-1)) < k)),
        ("argsort gives the token ids in sorted order, not each token's rank: compare each logit with the k-th "
         "largest value (or take the rank as argsort().argsort())",
         threshold_keep(lambda x, k: x.argsort(dim=-1, descending=True) < k)),
        *_fixed_counts(),
    )


def _fixed_counts():
    """Keeping the notebook's 7 tokens whatever k and the vocabulary are (a size hard-coded)."""
    vocab = LOGITS.size(-1)
    return ((f"{vocab} tokens were kept, not k: is the notebook's vocabulary of {vocab} hard-coded? keep the k largest "
             f"of each row, torch.topk(logits, min(k, logits.size(-1)))",
             lambda x, k: keep_only(x, _rank(x) < vocab)),)


def _top_k(x, k):
    return reference().top_k_filter(x, k)


TIED = torch.tensor([[1.0, 3.0, 2.0, 2.0, 0.0, -1.0],
                     [0.5, 0.5, 0.5, 2.0, -1.0, 0.5]])  # k = 2: the 2nd largest is tied in both rows


def _tied_case():
    if is_public():
        return TIED.clone(), 2
    rng = probe_rng()
    return torch.from_numpy(rng.integers(-2, 3, size=(3, 7))).float(), int(rng.integers(2, 5))


# Tokens near 100 and near -120 in the same row: past the first few, every probability underflows to 0 in float32.
SPREAD = torch.tensor([[100.0, -120.0, -121.0, -30.0, 99.0, -119.5, 98.0],
                       [-118.0, 97.5, -45.0, -122.0, 100.0, -60.0, -119.0]])
UNDERFLOW = ("the k-th largest was found among the probabilities: for logits from 100 down to -120 the probabilities "
             "of the unlikely tokens underflow to 0, so they all tie with a k-th probability of 0 and nothing is "
             "dropped; compare the logits themselves with the k-th largest logit")


def _on_probabilities(x, k):
    probs = x.softmax(-1)
    return keep_only(x, probs >= probs.topk(min(k, x.size(-1)), dim=-1).values[..., -1:])


LARGE_K = 55  # past 5 and past 50 (GPT-2's usual default), so that a k capped at either keeps fewer


def _large_k_case():
    """(logits, k): 2 rows of 80 tokens and k = 55, or a k from 51 on a vocabulary of 70-99 in a grading run."""
    if is_public():
        return torch.randn(2, 80, generator=torch.Generator().manual_seed(55)) * 1.5, LARGE_K
    rng = probe_rng()
    vocab = int(rng.integers(70, 100))
    return torch.from_numpy(rng.normal(0.0, 1.5, size=(2, vocab))).float(), int(rng.integers(51, vocab - 10))


def _spread_case():
    """(logits, k): 2-4 tokens near 100 per row, the rest far below (one around -40, the others around -120), and a
    k that reaches past the tokens near 100 (the public SPREAD and k = 4, or drawn from the test's rng)."""
    if is_public():
        return SPREAD.clone(), 4
    rng = probe_rng()
    logits = random_logits(rng)
    high, low = large_magnitudes(logits)
    top = int(rng.integers(2, 5))
    rank = logits.argsort(dim=-1, descending=True).argsort(dim=-1)
    spread = torch.where(rank < top, high, low)
    return torch.where(rank == top, spread + 80.0, spread), min(top + int(rng.integers(1, 3)), logits.size(-1) - 1)


check_top_k = Check(
    exercise="top_k",
    expects=["a function top_k_filter(logits, k) -> logits"],
    tests=[
        filter_test("top_k_filter keeps the k largest logits of each row",
                     filter_case(LOGITS, 3, lambda rng, x: int(rng.integers(2, x.size(-1) - 1))),
                     "top_k_filter(logits, {})", _top_k, _top_k_mistakes(), weight=6, diagnose=_diagnose),
        filter_test("k = 1 keeps only the largest", filter_case(LOGITS, 1, lambda rng, x: 1),
                     "top_k_filter(logits, {})", _top_k, _top_k_mistakes(), weight=2, diagnose=_diagnose),
        filter_test("ties at the k-th largest value", _tied_case, "top_k_filter(logits with ties, {})", _top_k,
                     _top_k_mistakes(), weight=0.5, diagnose=_diagnose),
        filter_test(f"a large k ({LARGE_K} of 80 tokens)", _large_k_case,
                     "top_k_filter(logits, {}) on a vocabulary of 70 or more", _top_k, _top_k_mistakes(), weight=0.5,
                     diagnose=_diagnose),
        filter_test("logits from 100 down to -120 in one row (probabilities underflow)", _spread_case,
                     "top_k_filter(logits from 100 to -120, {})", _top_k, ((UNDERFLOW, _on_probabilities),
                                                                          *_top_k_mistakes()), weight=0.5),
        filter_test("one distribution (a 1-D tensor) works too",
                     filter_case(LOGITS[1], 3, lambda rng, x: int(rng.integers(2, x.size(-1) - 1))),
                     "top_k_filter on a 1-D tensor of logits, k={}", _top_k, _top_k_mistakes(), weight=0.5,
                     diagnose=_diagnose),
        filter_test("k larger than the vocabulary keeps every token",  # 5 tokens here: not the 7 of the others
                     filter_case(LOGITS[:, 1:6], 50, lambda rng, x: int(rng.integers(x.size(-1) + 1, 100))),
                     "top_k_filter(logits, {}) with fewer tokens than k", lambda x, k: x, _fixed_counts(), weight=0.1),
        *dtype_tests("top_k_filter(logits, 3)", 3),
        *(Test(f"k = {k} raises a ValueError naming k", lambda f, k=k: raises(f, LOGITS, k),
               error_judge(f"top_k_filter(logits, {k})", "k"), weight=0.05, needs_right_outputs=True) for k in (0, -2)),
    ],
)
