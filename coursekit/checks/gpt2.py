"""Checks for notebook 06, part 3: sample_top_n draws one token among the n most likely.

Tested statistically (1,500 draws, one call each, from one generator), for which tokens come out and how often, and
for reproducibility: the same generator seed gives the same tokens even when the global RNG moved in between. The
frequencies see mistakes of a few percent; smaller distortions of the weights (a softmax in half precision, + 0.01
"smoothing") are seen where the sampler draws with torch.multinomial, whose weights the probe records: they must be
the probabilities of the n kept tokens (in any order, any positive scale) or of the whole row with the rest at 0.
A second draw uses n = 50 of 80 tokens, as the notebook does, so that an n capped at a fixed number (min(n, 10)) shows.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, is_public, probe_rng
from coursekit.checks.probing import FRESH_GENERATOR, large_magnitudes, with_global_rng_perturbed
from coursekit.checks.sampling_filters import rounded


# ---------------------------------------------------------------- top-n sampling

# Probabilities chosen so the three most likely tokens (ids 3, 0 and 5) differ clearly, and are not the first ids.
SAMPLER_PROBABILITIES = torch.tensor([0.20, 0.06, 0.03, 0.45, 0.04, 0.10, 0.07, 0.05])
SAMPLER_SHIFT = 3.0  # logits are log-probabilities up to a constant; +3 keeps the top ones positive
SAMPLER_LOGITS = SAMPLER_PROBABILITIES.log() + SAMPLER_SHIFT
SAMPLER_N = 3
DRAWS = 1500
REPEAT_DRAWS = 100
LARGE_DRAWS = 200  # per shift; the frequencies' noise is about 0.035
GLOBAL_CALLS = 20  # without a generator: 20 draws all alike has probability below 0.45 ** 19


def _sampler_case() -> tuple[torch.Tensor, int]:
    """(logits, n): the public ones, or permuted, shifted logits and another n in a grading run."""
    if is_public():
        return SAMPLER_LOGITS.clone(), SAMPLER_N
    rng = probe_rng()
    permuted = SAMPLER_PROBABILITIES[torch.from_numpy(rng.permutation(len(SAMPLER_PROBABILITIES)))]
    return permuted.log() + float(rng.uniform(2.5, 4.0)), int(rng.integers(2, 5))


def _draw(function, logits: torch.Tensor, n: int, seed: int, draws: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    tokens = []
    try:
        for _ in range(draws):
            tokens.append(int(function(logits.clone(), n, generator)))
    except RuntimeError as error:
        if "multinomial" in str(error) or "probability" in str(error):
            return {"error": f"multinomial: {error}"}
        raise
    return {"tokens": tokens}


def _sampler_probe(function) -> dict:
    """DRAWS tokens (seed 0), then REPEAT_DRAWS more with seed 0 after the global RNG moved, and with seed 1."""
    logits, n = _sampler_case()
    sizes = iter((DRAWS, REPEAT_DRAWS))
    drawn, again = with_global_rng_perturbed(lambda: _draw(function, logits, n, seed=0, draws=next(sizes)))
    if "error" in drawn:
        return drawn
    other = _draw(function, logits, n, seed=1, draws=REPEAT_DRAWS)
    return {"tokens": drawn["tokens"], "again": again.get("tokens"), "other": other.get("tokens"),  # the judge counts
            "weights": _multinomial_weights(function, logits, n)}


def _multinomial_weights(function, logits: torch.Tensor, n: int) -> list:
    """The weights a few calls hand torch.multinomial (none when the sampler draws another way)."""
    weights, original = [], torch.multinomial

    def multinomial(input, *args, **kwargs):
        weights.append(input.detach().clone())
        return original(input, *args, **kwargs)
    torch.multinomial = multinomial
    try:
        for seed in range(3):
            function(logits.clone(), n, torch.Generator().manual_seed(seed))
    finally:
        torch.multinomial = original
    return weights


def _weights_mistake(weights: list, logits: torch.Tensor, n: int) -> str | None:
    """The weights given to torch.multinomial are the kept tokens' probabilities, to float32 precision, or None."""
    top = torch.topk(logits.double(), n)
    kept = torch.softmax(top.values, -1)
    for given in weights:
        given = torch.from_numpy(np.asarray(given, dtype=np.float64)).reshape(-1)
        if given.numel() == n:
            got, expected = given.sort(descending=True).values, kept
        elif given.numel() == len(logits):
            got, expected = given, torch.zeros(len(logits), dtype=torch.float64).index_copy(0, top.indices, kept)
        else:
            continue
        got = got / got.sum()
        if not torch.allclose(got, expected, atol=1e-5):
            return (f"torch.multinomial was given weights {rounded(got, 4)} (scaled to sum to 1), not the "
                    f"probabilities {rounded(expected, 4)} of the kept tokens: no smoothing (+ 0.01) and no half "
                    f"precision (.half() rounds to about 3 digits); take the softmax of the kept logits in their dtype")
    return None


def _shifted_weights(weights: list, values: torch.Tensor) -> bool:
    """Whether the weights given to torch.multinomial are the n kept logits minus their minimum (up to scale)."""
    shifted = values - values.min()
    if len(values) < 2 or shifted.sum() <= 0:
        return False
    for given in weights:
        given = torch.from_numpy(np.asarray(given, dtype=np.float64)).reshape(-1)
        if given.numel() == len(values) and given.sum() > 0 and torch.allclose(
                given.sort(descending=True).values / given.sum(), shifted / shifted.sum(), atol=1e-4):
            return True
    return False


def _global_rng_probe(function) -> list:
    """GLOBAL_CALLS calls without a generator after torch.manual_seed(1), and again after torch.manual_seed(2)."""
    logits, n = _sampler_case()
    return with_global_rng_perturbed(lambda: [int(function(logits.clone(), n)) for _ in range(GLOBAL_CALLS)])


def _global_rng_mistake(got) -> str | None:
    first, second = got
    if len(set(first)) == 1 or first == second:
        what = "all gave the same token" if len(set(first)) == 1 else \
            "gave the same tokens after torch.manual_seed(1) as after torch.manual_seed(2)"
        return f"{GLOBAL_CALLS} calls of sample_top_n(logits, n) without a generator {what}: {FRESH_GENERATOR}"
    return None


def _sampler_mistake(got) -> str | None:
    if "error" in got:
        return ("torch.multinomial refused its input (" + got["error"] + "): it needs non-negative weights, so "
                "turn the kept logits into probabilities with softmax first")
    logits, n = _sampler_case()
    tokens = got["tokens"]
    if len(tokens) != DRAWS or not all(0 <= token < len(logits) for token in tokens):
        return f"sample_top_n should return one token id between 0 and {len(logits) - 1}"
    counts = np.bincount(tokens, minlength=len(logits))
    got = {**got, "first": tokens[:REPEAT_DRAWS]}
    top = torch.topk(logits, n)
    kept = top.indices.tolist()
    seen = np.nonzero(counts)[0].tolist()
    outside = [token for token in seen if token not in kept]
    if outside:
        if set(seen) <= set(range(n)):
            return (f"you returned positions 0..{n - 1} among the kept tokens, not their token ids: map the "
                    f"sampled position back with top.indices[choice] (the kept tokens are {sorted(kept)})")
        bottom = torch.topk(logits, n, largest=False).indices.tolist()
        if set(seen) <= set(bottom):
            return f"you sample among the {n} least likely tokens; keep the {n} largest logits"
        if len(seen) == n + 1:
            return f"with n={n} you sampled {n + 1} different tokens ({seen}): off by one, keep exactly n tokens"
        return f"with n={n} only tokens {sorted(kept)} (the {n} most likely) may come out, but you also sampled {outside}"
    frequencies = counts[kept] / DRAWS
    expected = torch.softmax(top.values.double(), -1).numpy()
    if np.abs(frequencies - expected).max() <= 0.05:
        weights = _weights_mistake(got.get("weights") or [], logits, n)
        if weights:
            return weights
        if got["again"] != got["first"]:
            return ("two runs with generators seeded alike gave different tokens once the global RNG had moved: "
                    "pass the generator on (torch.multinomial(..., generator=generator)) so results can be reproduced")
        if got["other"] == got["first"]:
            return ("generators seeded differently gave the same tokens: draw from the generator you are given (do "
                    "not reseed anything inside sample_top_n)")
        return None
    if _shifted_weights(got.get("weights") or [], top.values.double()):
        return (f"torch.multinomial was given the kept logits shifted by their minimum (logits - logits.min()), so "
                f"the least likely of the {n} kept tokens gets weight about 0 and never comes out: the weights must "
                f"be probabilities, torch.softmax(top.values, dim=-1)")
    clamped = top.values.clamp(min=0).double()
    if clamped.sum() > 0 and np.abs(frequencies - (clamped / clamped.sum()).numpy()).max() < 0.05:
        return (f"the kept tokens come out in proportion to their logits ({rounded(frequencies, 2)}), not to their "
                f"probabilities: torch.multinomial treats its input as weights, so give it "
                f"torch.softmax(top.values, dim=-1)")
    if n > 1 and seen == sorted(kept[:n - 1]):
        return (f"with n={n} only the {n - 1} most likely token(s) {seen} came out: "
                + ("either you always return the most likely token (greedy decoding; draw at random among the n "
                   "kept tokens with torch.multinomial) or " if n == 2 else "")
                + f"you kept n - 1 tokens, off by one (or is n capped at {n - 1}?): keep exactly n, "
                  f"torch.topk(logits, n)")
    if seen == [kept[0]]:
        return ("you always return the most likely token: that is greedy decoding; draw at random among the n "
                "kept tokens with torch.multinomial")
    if len(seen) == 1:
        return (f"all {DRAWS} draws gave token {seen[0]}: the draws do not vary. Draw with torch.multinomial(..., "
                f"generator=generator) and do not reseed anything inside sample_top_n")
    if len(seen) < n:
        return (f"over {DRAWS} draws with n={n} only tokens {seen} came out; each of the {n} most likely tokens "
                f"{sorted(kept)} should appear (off by one?)")
    if np.abs(frequencies - 1 / n).max() < 0.05:
        return (f"the {n} kept tokens come out about equally often ({rounded(frequencies, 2)}): sample in "
                f"proportion to their probabilities, softmax of the kept logits")
    return (f"the kept tokens {kept} should come out with frequencies near {rounded(expected, 2)} (their "
            f"probabilities, renormalised to sum to 1); got {rounded(frequencies, 2)}")


def _greedy_probe(function) -> dict:
    logits, _ = _sampler_case()
    return _draw(function, logits, 1, seed=1, draws=50)


def _greedy_mistake(got) -> str | None:
    if "error" in got:
        return "no token came out (see the first test)"
    best = int(_sampler_case()[0].argmax())
    if set(got["tokens"]) != {best}:
        return f"with n=1 only the most likely token ({best}) can come out, got {sorted(set(got['tokens']))}"
    return None


def _large_probe(function) -> dict:
    logits, n = _sampler_case()
    draws = []
    for shifted in large_magnitudes(logits):
        try:
            draws.append(_draw(function, shifted, n, seed=2, draws=LARGE_DRAWS))
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
    return {"draws": draws}


def _large_mistake(got) -> str | None:
    logits, n = _sampler_case()
    problems = [got.get("error")] + [draw.get("error") for draw in got.get("draws", [])]
    if any(problems):
        return (f"with logits around 100 or -120 sample_top_n failed ({next(p for p in problems if p)}): exp of such "
                f"logits overflows to inf (or underflows to 0); torch.softmax subtracts the maximum first")
    top = torch.topk(logits, n)
    expected = torch.softmax(top.values.double(), -1).numpy()
    for draw in got["draws"]:
        counts = np.bincount(draw["tokens"], minlength=len(logits))
        if counts.sum() != len(draw["tokens"]) or len(counts) != len(logits) or \
                np.abs(counts[top.indices.numpy()] / LARGE_DRAWS - expected).max() > 0.15:
            return (f"with logits around 100 or -120 the draws should still come from the {n} most likely tokens "
                    f"{sorted(top.indices.tolist())}, in proportion to their probabilities {rounded(expected, 2)}; "
                    f"got tokens {sorted(set(draw['tokens']))}, {rounded(counts / max(counts.sum(), 1), 2)}")
    return None


MANY_N = 50  # the notebook's prompt_topk(text, 50)
MANY_DRAWS = 600  # the 25 least likely of the 50 kept hold about 0.3 of the mass; its noise is about 0.02


def _many_case() -> tuple[torch.Tensor, int]:
    """(logits, n): n = 50 of 80 tokens, or 12-59 of 20-40 more in a grading run, so that a capped n shows."""
    if is_public():
        return torch.randn(80, generator=torch.Generator().manual_seed(50)) * 0.5, MANY_N
    rng = probe_rng()
    n = int(rng.integers(12, 60))
    return torch.from_numpy(rng.normal(0.0, 0.5, size=n + int(rng.integers(20, 40)))).float(), n


def _many_probe(function) -> dict:
    logits, n = _many_case()
    return _draw(function, logits, n, seed=3, draws=MANY_DRAWS)


def _many_mistake(got) -> str | None:
    if "error" in got:
        return "no token came out (see the first test)"
    logits, n = _many_case()
    tokens = got["tokens"]
    if len(tokens) != MANY_DRAWS or not all(0 <= token < len(logits) for token in tokens):
        return f"sample_top_n should return one token id between 0 and {len(logits) - 1}"
    rank = logits.argsort(descending=True).argsort().numpy()
    ranks = rank[tokens]
    if ranks.max() >= n:
        return (f"with n={n} of {len(logits)} tokens, tokens outside the {n} most likely came out: keep exactly n, "
                f"torch.topk(logits, n)")
    probabilities = torch.softmax(torch.topk(logits.double(), n).values, -1).numpy()  # by rank
    cap = int(ranks.max()) + 1
    if cap < n and probabilities[cap:].sum() * MANY_DRAWS > 20:
        return (f"with n={n} of {len(logits)} tokens only the {cap} most likely came out in {MANY_DRAWS} draws, though "
                f"the others kept hold {probabilities[cap:].sum():.2f} of the probability: is n capped at {cap} (e.g. "
                f"min(n, {cap}))? keep all n, torch.topk(logits, n) (the notebook samples among 50)")
    lower = float((ranks >= n // 2).mean())
    if abs(lower - probabilities[n // 2:].sum()) > 0.08:
        return (f"with n={n} the {n - n // 2} least likely kept tokens should come out in about "
                f"{probabilities[n // 2:].sum():.2f} of the draws (their probabilities renormalised over the n "
                f"kept), got {lower:.2f}")
    return None


def _type_probe(function):
    logits, n = _sampler_case()
    return function(logits.clone(), n, torch.Generator().manual_seed(0))  # the id itself: its type is in the data


def _type_mistake(got) -> str | None:
    if type(got) is not int:
        kind = "Tensor" if isinstance(got, np.ndarray) else type(got).__name__
        return (f"sample_top_n should return the token id as a Python int, got a {kind}: int(top.indices[choice]) "
                f"(the prompt loop appends it to a list of ids that the tokenizer decodes)")
    logits, n = _sampler_case()
    if got not in torch.topk(logits, n).indices.tolist():
        return f"sample_top_n returned {got}, which is not one of the {n} most likely tokens (see the first test)"
    return None


def _untouched_probe(function) -> bool:
    """Whether the logits sample_top_n was given are as they were after the call."""
    logits, n = _sampler_case()
    given = logits.clone()
    function(given, n, torch.Generator().manual_seed(0))
    return bool(torch.equal(given, logits))


def _untouched_mistake(got) -> str | None:
    if not got:
        return ("sample_top_n changed the logits it was given (an in-place edit such as logits[mask] = -inf or "
                ".masked_fill_): the caller's logits must stay as they are; filter a copy, or use masked_fill / "
                "torch.where, which return new tensors")
    return None


check_sample_top_n = Check(
    exercise="sample_top_n",
    expects=["a function sample_top_n(logits, n, generator) -> int"],
    tests=[
        Test(f"{DRAWS} draws with n of 8 tokens: which come out, how often, reproducibly with a generator",
             _sampler_probe, _sampler_mistake, weight=5),
        Test("n=1 always gives the most likely token", _greedy_probe, _greedy_mistake, weight=0.2),
        Test(f"a large n ({MANY_N} of 80 tokens, as the notebook samples)", _many_probe, _many_mistake, weight=1),
        Test("without a generator, the global RNG", _global_rng_probe, _global_rng_mistake, weight=0.3),
        Test("logits around 100 and -120 (exp overflows)", _large_probe, _large_mistake, weight=1),
        Test("returns a Python int", _type_probe, _type_mistake, weight=0.1),
        Test("the logits passed in are left as they are", _untouched_probe, _untouched_mistake, weight=0.3,
             needs_right_outputs=True),
    ],
)
