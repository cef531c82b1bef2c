"""Checks for notebook 05, part 4: sample_next_token, the sampler that chains the three filters.

`sample` is tested statistically: thousands of draws in one call (a batch of identical rows), whose frequencies are
compared with the distribution they should come from. The order is the one GPT.generate (notebook 04) uses:
temperature, then top-k, then top-p, then the softmax and torch.multinomial(..., generator=generator); temperature 0
is greedy. In a grading run the distribution is permuted and shifted by the test's rng.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe, is_public, probe_rng
from coursekit.checks.probing import FRESH_GENERATOR, large_magnitudes, with_global_rng_perturbed
from coursekit.checks.sampling_filters import reference, rounded


DRAWS = 4000
SAMPLE_LOGITS = torch.tensor([0.5, -1.0, 2.0, 0.0, 1.4, -2.0, 1.0, -0.5])  # not sorted: positions are not ids
SAMPLE_V = SAMPLE_LOGITS.numel()
TIED_LOGITS = torch.tensor([1.0, -1.0, 2.0, 0.0, 1.4, -2.0, 1.0, -0.5])  # the 3rd and 4th most likely tie
GREEDY_ROWS = 200  # rows of the greedy-ties and global-RNG probes
ONE_ROW_CALLS = 40  # the most likely token (p = 0.41) comes out 40 times in a row with probability 3e-16
LARGE_V = 300  # a vocabulary over 256
TOLERANCE = 0.035  # total variation distance; the sampling noise of 4000 draws is about 0.015
CLAMPS = (5.0, 10.0, 20.0, 30.0, 50.0)  # the bounds students clamp logits to "for stability"


def _sample_logits(logits: torch.Tensor = SAMPLE_LOGITS) -> torch.Tensor:
    """The distribution every draw comes from: SAMPLE_LOGITS in a notebook; permuted and shifted in a grading run."""
    if is_public():
        return logits.clone()
    rng = probe_rng()
    return logits[torch.from_numpy(rng.permutation(SAMPLE_V))] + float(rng.uniform(-3, 3))


def _tied_logits() -> torch.Tensor:
    return _sample_logits(TIED_LOGITS)


def _exactly_three(logits: torch.Tensor) -> torch.Tensor:
    """What a top-k keeping exactly k = 3 tokens (torch.topk's indices) samples from: one of the tied is dropped."""
    kept = torch.zeros_like(logits, dtype=torch.bool).scatter(-1, logits.topk(3).indices, True)
    return logits.masked_fill(~kept, float("-inf")).softmax(-1)


# Powers of two, exact in float32: the two most likely tokens hold exactly 0.75, so top_p=0.75 keeps those two only.
BOUNDARY_PROBABILITIES = torch.tensor([0.125, 0.5, 0.0078125, 0.25, 0.03125, 0.0625, 0.0078125, 0.015625])


def _boundary_logits() -> torch.Tensor:
    """log(BOUNDARY_PROBABILITIES), permuted in a grading run (no shift: the sums stay exact)."""
    logits = BOUNDARY_PROBABILITIES.log()
    return logits if is_public() else logits[torch.from_numpy(probe_rng().permutation(SAMPLE_V))]


def _call_sample(sample, batch: torch.Tensor, settings: dict, seed: int):
    return sample(batch, generator=torch.Generator().manual_seed(seed), **settings)


def _draws(settings: dict, magnitudes: bool = False, distribution=_sample_logits):
    """Probe: DRAWS tokens in one call (a batch of DRAWS identical rows), as returned (the judge checks and counts
    them). With magnitudes, the logits are shifted to about 100 and to about -120 and both batches are drawn, each
    with its own generator seed (one seed for both would draw the same tokens twice: half the evidence, doubled)."""
    def probe(sample):
        logits = distribution()
        batches = large_magnitudes(logits) if magnitudes else [logits]
        outputs = []
        for seed, row in enumerate(batches):
            try:
                out = _call_sample(sample, row.expand(DRAWS // len(batches), -1).clone(), settings, seed=seed)
            except Exception as error:
                return {"error": f"raised {type(error).__name__}: {error}"}
            outputs.append(out if isinstance(out, torch.Tensor) else describe(out))
        return {"error": None, "outputs": outputs}
    return probe


def _counts(outputs: list) -> dict:
    """{"counts": tokens drawn per id} from the outputs of a _draws probe, or {"error": what is wrong with them}."""
    if not isinstance(outputs, list) or not outputs:
        return {"error": "returned no token ids"}
    counts = np.zeros(SAMPLE_V, dtype=np.int64)
    for out in outputs:
        rows = DRAWS // len(outputs)
        if not isinstance(out, np.ndarray) or out.shape != (rows,):
            shown = out if isinstance(out, str) else f"Tensor of shape {out.shape} and dtype torch.{out.dtype}"
            return {"error": f"returned {shown}; expected one token id per row, a tensor of shape ({rows},)"
                             + _shape_hint(out)}
        if not np.issubdtype(out.dtype, np.integer):
            return {"error": f"returned dtype {out.dtype}; token ids are integers (torch.long)"}
        counts += np.bincount(out.astype(np.int64).clip(0, SAMPLE_V - 1), minlength=SAMPLE_V)
    return {"error": None, "counts": counts}


def _shape_hint(out) -> str:
    """Why a batch of ids came back in another shape, for the message."""
    if getattr(out, "ndim", None) == 2:
        return " (torch.multinomial returns (batch, 1): .squeeze(-1))"
    if getattr(out, "ndim", None) == 0:
        return (" (a single id for the whole batch: logits.argmax(dim=-1) and .squeeze(-1) keep one id per row; "
                "argmax() and squeeze() without a dim do not)")
    if getattr(out, "ndim", None) == 1 and out.shape[0] == SAMPLE_V:
        return f" (one id per token, {SAMPLE_V}: argmax over dim=-1, the tokens of each row, not over dim=0)"
    return ""


def _frequency_judge(call: str, expected, mistakes=(), tolerance: float = TOLERANCE, error_hint: str = "",
                     clamped=None, distribution=_sample_logits):
    """expected(logits) -> probabilities; mistakes: (message, variant(logits) -> probabilities) pairs;
    clamped(c) -> variant: the distribution when the logits are clamped to [-c, c] before the softmax."""
    def judge(got):
        got = got if got.get("error") else _counts(got.get("outputs"))
        if got["error"]:
            hint = f": {error_hint}" if error_hint and got["error"].startswith("raised") else ""
            if "probability" in got["error"]:
                hint = hint or (": torch.multinomial needs finite, non-negative weights; take torch.softmax of the "
                                "filtered logits (it subtracts the maximum, so logits of 100 do not overflow)")
            return f"{call} {got['error']}{hint}"
        logits = distribution()
        counts = got["counts"]
        frequencies = counts / counts.sum()
        target = expected(logits).numpy()
        outside = np.flatnonzero((target == 0) & (counts > 0))
        if len(outside) == 0 and 0.5 * np.abs(frequencies - target).sum() < tolerance:
            return None
        for message, variant in mistakes:
            if 0.5 * np.abs(frequencies - variant(logits).numpy()).sum() < TOLERANCE:
                return message
        for bound in CLAMPS if clamped else ():
            if 0.5 * np.abs(frequencies - clamped(bound)(logits).numpy()).sum() < TOLERANCE:
                return (f"{call}: the draws follow the logits clamped to a fixed range (e.g. .clamp(-{bound:g}, "
                        f"{bound:g})), which changes the distribution (divided by a small temperature, or around 100, "
                        f"the large logits all become the same number); torch.softmax needs no clamping: it subtracts "
                        f"each row's maximum first")
        if len(outside):
            return (f"{call} sampled tokens {outside.tolist()}, which have probability 0 after filtering "
                    f"({int(counts[outside].sum())} of {int(counts.sum())} draws)")
        return (f"{call}: the frequencies of the {SAMPLE_V} tokens were {rounded(frequencies)}, expected about "
                f"{rounded(target)}")
    return judge


def _probs(temperature=1.0, top_k=None, top_p=None, clamp=None):
    def compute(logits):
        answers = reference()
        logits = logits / temperature
        if top_k is not None:
            logits = answers.top_k_filter(logits, top_k)
        if top_p is not None:
            logits = answers.top_p_filter(logits, top_p)
        return (logits if clamp is None else logits.clamp(-clamp, clamp)).softmax(-1)
    return compute


def _clamped_large(bound):
    """The draws of the magnitudes test when the logits (around 100, and around -120) are clamped to +-bound."""
    return lambda x: sum(_probs(clamp=bound)(row) for row in large_magnitudes(x)) / 2


def _positions(top_k):
    """The distribution of the positions among the k kept tokens (0 .. k-1) taken for token ids."""
    def compute(logits):
        values = logits.topk(top_k).values
        return torch.cat([values.softmax(-1), torch.zeros(SAMPLE_V - top_k)])
    return compute


def _sampled_then_filtered(top_k):
    """Drawn from softmax(logits), and a token outside the top k replaced by the most likely one."""
    def compute(logits):
        probs = logits.softmax(-1)
        kept = ~torch.isneginf(reference().top_k_filter(logits, top_k))
        return torch.where(kept, probs, 0.0) + _greedy(logits) * float(probs[~kept].sum())
    return compute


def _greedy(logits):
    return torch.nn.functional.one_hot(logits.argmax(), SAMPLE_V).float()


def _clamped(logits):
    return logits.clamp(min=0) / logits.clamp(min=0).sum()


def _uniform(logits):
    return torch.full((SAMPLE_V,), 1.0 / SAMPLE_V)


def _top_p_first(temperature, top_p):
    return lambda x: (reference().top_p_filter(x, top_p) / temperature).softmax(-1)


def _top_p_then_top_k(top_k, top_p):
    return lambda x: reference().top_k_filter(reference().top_p_filter(x, top_p), top_k).softmax(-1)


GREEDY = "sample_next_token always returns the most likely token: sample with torch.multinomial"
CLAMPED = ("the draws follow the logits themselves clamped at 0, not their softmax: torch.multinomial treats its "
           "input as weights, so pass it torch.softmax(logits, dim=-1)")
POSITIONS = ("the ids drawn are positions among the k kept tokens (0 .. k-1), not token ids: set the other logits to "
             "-inf (top_k_filter) and sample from the whole row, so that the position drawn is the token id")
UNIFORM = ("every token came out about equally often: the weights given to torch.multinomial do not follow the logits "
           "(clamped or constant weights?); pass it torch.softmax(logits, dim=-1)")
AFTER_SAMPLING = ("the filter was applied after sampling (a token outside the top k replaced by the most likely "
                  "one): filter the logits first, then sample from their softmax")
TOP_P_AFTER_TOP_K = ("top-p had no effect after top-k (the draws follow the 4 tokens top-k keeps, not their nucleus), "
                     "although it works alone: is top_p applied only when top_k is not (an elif: apply each filter "
                     "that is given, one after the other)? or does your top_p_filter break on the rows top_k_filter "
                     "hands on, which hold -inf? the mean of such a row, or -inf - (-inf), is NaN (e.g. logits - "
                     "logits.mean()), and NaN drops nothing")
MULTIPLIED = "the logits are multiplied by the temperature; divide them by it"
NO_TEMPERATURE = ("temperature has no effect on what is sampled: divide the logits by it before the softmax "
                  "(dividing the probabilities changes nothing, torch.multinomial renormalises them)")


def _generator_probe(settings: dict):
    """DRAWS tokens twice with the same generator seed and the global RNG moved in between; and another seed."""
    def probe(sample) -> dict:
        batch = _sample_logits().expand(DRAWS, -1).clone()
        try:
            first, second = with_global_rng_perturbed(lambda: _call_sample(sample, batch.clone(), settings, seed=5))
            third = _call_sample(sample, batch.clone(), settings, seed=6)  # a fresh batch: in place is another test
            generator = torch.Generator().manual_seed(7)
            start = generator.get_state()
            in_a_row = [sample(batch.clone(), generator=generator, **settings) for _ in range(2)]
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
        return {"error": None, "runs": [value if isinstance(value, torch.Tensor) else describe(value)
                                        for value in (first, second, third, *in_a_row)],
                "advanced": not torch.equal(start, generator.get_state())}
    return probe


def _generator_judge(settings: dict):
    call = "sample_next_token(logits, " + "".join(f"{name}={value}, " for name, value in settings.items()) + \
        "generator=...)"

    def judge(got) -> str | None:
        if got["error"]:
            return f"{call} raised {got['error']}"
        return _generator_mistake(got["runs"], call, _probs(**settings)(_sample_logits()).numpy(), bool(settings),
                                  got.get("advanced"))
    return judge


def _generator_mistake(runs, call: str, target: np.ndarray, filtered: bool, advanced) -> str | None:
    """runs: seed 5, seed 5 again after the global RNG moved, seed 6, then two calls in a row on one generator (seed
    7); advanced: whether that generator's state moved on."""
    if not isinstance(runs, list) or len(runs) != 5:
        return f"{call} should return one token id per row (see the other tests)"
    first, second, third, *in_a_row = runs
    if not all(isinstance(run, np.ndarray) and run.shape == (DRAWS,) for run in runs):
        return f"{call} should return one token id per row (see the other tests); it returned {describe(first)}"
    counts = np.bincount(first.astype(np.int64).clip(0, SAMPLE_V - 1), minlength=SAMPLE_V)
    if 0.5 * np.abs(counts / DRAWS - target).sum() >= TOLERANCE:
        missing = np.flatnonzero((counts == 0) & (target > 0.01)).tolist()
        missing = (f"; tokens {missing} never came out though they keep probability "
                   f"{target[missing].sum():.2f} (are fewer tokens kept than top_k and top_p allow? e.g. top_k capped "
                   f"at a fixed number)") if missing else ""
        return (f"{call}: the frequencies of the {SAMPLE_V} tokens were {rounded(counts / DRAWS)}, expected about "
                f"{rounded(target)}{missing}")
    if not np.array_equal(first, second):
        return (f"two calls of {call} with generators seeded alike gave different tokens once the global RNG had "
                f"moved: the generator is ignored{' when filters are given' if filtered else ''}. Pass it on "
                f"wherever you sample: torch.multinomial(probs, num_samples=1, generator=generator)")
    if np.array_equal(first, third):
        return ("generators seeded differently gave the same tokens: draw from the generator you are given (do "
                "not reseed anything inside sample_next_token)")
    if np.array_equal(*in_a_row) or advanced is not True:
        what = "gave the same tokens" if np.array_equal(*in_a_row) else "left its state where it was"
        return (f"two calls of {call} in a row with one generator {what}: the caller's generator never moves "
                f"forward, so every step of a generate loop draws the same random numbers. Is a new torch.Generator "
                f"seeded from generator.initial_seed(), or a copy of its get_state(), drawn from at each call? draw "
                f"from the generator itself, torch.multinomial(probs, num_samples=1, generator=generator)")
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
    """hint: the advice after a setting that was not rejected; {name} is the setting's name (top_k, top_p)."""
    def judge(got):
        for name in names:
            if got[name]["raised"] != "ValueError":
                what = f"returned {got[name]['returned']}" if got[name]["raised"] is None else \
                    f"raised {got[name]['raised']}: {got[name]['message']}"
                return (f"sample_next_token(logits, {name}) should raise a ValueError (out of range), but it "
                        f"{what}{hint.format(name=name.split('=')[0])}")
        return None
    return judge


FILTERED = {"temperature": 2.0, "top_k": 5, "top_p": 0.9}


def _tied_greedy_logits() -> tuple[torch.Tensor, list[int]]:
    """A row whose two largest logits are tied, and the two tied ids (argmax gives the first)."""
    row = _sample_logits()
    tied = sorted(row.topk(2).indices.tolist())
    return row.masked_fill(torch.isin(torch.arange(SAMPLE_V), torch.tensor(tied)), float(row.max())), tied


def _greedy_ties_probe(sample) -> dict:
    """Greedy on GREEDY_ROWS rows with a tied maximum: the ids, and the generator's state before and after."""
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    out = sample(_tied_greedy_logits()[0].expand(GREEDY_ROWS, -1).clone(), temperature=0.0, generator=generator)
    return {"ids": out if isinstance(out, torch.Tensor) else describe(out), "before": before,
            "after": generator.get_state()}  # the judge compares the states itself


def _greedy_ties_judge(got) -> str | None:
    ids, tied = got["ids"], _tied_greedy_logits()[1]
    if not isinstance(ids, np.ndarray) or ids.shape != (GREEDY_ROWS,):
        return "sample_next_token(logits, temperature=0) should return one id per row (see the tests above)"
    if not (ids == tied[0]).all():
        return (f"with tokens {tied} tied for the largest logit, temperature=0 gave {sorted(set(ids.tolist()))}: "
                f"greedy decoding is logits.argmax(dim=-1), which always gives the first of tied maxima ({tied[0]}); "
                f"sampling with top_k=1 keeps every tied token and draws among them")
    if not (isinstance(got["before"], np.ndarray) and isinstance(got["after"], np.ndarray)
            and np.array_equal(got["before"], got["after"])):
        return ("sample_next_token(logits, temperature=0, generator=generator) drew from the generator: greedy "
                "decoding uses no randomness, so return logits.argmax(dim=-1) before any sampling (the later draws "
                "of that generator must not change because one step was greedy)")
    return None


def _global_rng_probe(sample) -> list:
    """Two calls without a generator, under different global seeds: both draw from the global RNG, so they differ."""
    batch = _sample_logits().expand(GREEDY_ROWS, -1).clone()
    return [out if isinstance(out, torch.Tensor) else describe(out)
            for out in with_global_rng_perturbed(lambda: sample(batch.clone()))]


def _global_rng_judge(got) -> str | None:
    if not all(isinstance(out, np.ndarray) and out.shape == (GREEDY_ROWS,) for out in got):
        return f"sample_next_token(logits) should return one id per row (see the tests above); got {got[0]}"
    if np.array_equal(*got):
        return (f"two calls without a generator, after torch.manual_seed(1) and torch.manual_seed(2), gave the same "
                f"{GREEDY_ROWS} tokens: {FRESH_GENERATOR}")
    return None


def _any_row_probe(sample) -> dict:
    """ONE_ROW_CALLS calls on one row (seeds 0, 1, ...), and a batch over a vocabulary of LARGE_V tokens."""
    one_row = _sample_logits()[None]
    ids = []
    for seed in range(ONE_ROW_CALLS):
        out = _call_sample(sample, one_row.clone(), {}, seed=seed)
        ids.append(out if isinstance(out, torch.Tensor) else describe(out))
    large = torch.full((4, LARGE_V), -10.0).index_fill(-1, torch.tensor([LARGE_V - 10]), 10.0)
    out = _call_sample(sample, large, {}, seed=0)
    return {"one_row": ids, "large": out if isinstance(out, torch.Tensor) else describe(out)}


def _any_row_judge(got) -> str | None:
    ids = [out.reshape(-1).tolist() for out in got["one_row"] if isinstance(out, np.ndarray) and out.size == 1]
    if len(ids) != ONE_ROW_CALLS:
        return "for one row of logits sample_next_token should return one id (see the test above)"
    best = int(_sample_logits().argmax())
    if all(id_ == [best] for id_ in ids):
        return (f"for a batch of one row, {ONE_ROW_CALLS} calls with differently seeded generators all returned the "
                f"most likely token {best}: one row is sampled like any other (GPT.generate calls the sampler on "
                f"(1, vocab) logits)")
    large = got["large"]
    if not (isinstance(large, np.ndarray) and large.shape == (4,) and (large == LARGE_V - 10).all()):
        shown = sorted(set(large.reshape(-1).tolist())) if isinstance(large, np.ndarray) else large
        return (f"with a vocabulary of {LARGE_V} tokens where token {LARGE_V - 10} has practically all the "
                f"probability, sample_next_token returned {shown}: ids go up to vocab - 1 (no % or clamp to a fixed "
                f"size; the course's tokenizer has 512 tokens)")
    return None


def _one_row_probe(sample) -> dict:
    """generate calls the sampler on (1, vocab) logits and appends next_token[:, None]: one id per row, even then."""
    outputs = {}
    for name, settings in {"sampling": {}, "temperature=0": {"temperature": 0.0}}.items():
        out = _call_sample(sample, _sample_logits()[None].clone(), settings, seed=0)
        outputs[name] = out if isinstance(out, torch.Tensor) else describe(out)
    return outputs


def _one_row_judge(got) -> str | None:
    for name, out in got.items():
        shape = list(out.shape) if isinstance(out, np.ndarray) else out
        if shape != [1]:
            hint = _shape_hint(torch.zeros(shape)) if isinstance(shape, list) else ""
            return (f"for one row of logits, shape (1, vocab), sample_next_token ({name}) returned "
                    f"{tuple(shape) if isinstance(shape, list) else shape}; expected shape (1,), one id per row{hint}")
    return None


DTYPE_SETTINGS = {"sampling": {}, "temperature=0": {"temperature": 0.0}, "top_k=1": {"top_k": 1}}


def _in_place_probe(sample) -> dict:
    """The logits handed to the sampler, after the call (the judge compares them with the ones it chose)."""
    given = SAMPLE_LOGITS.expand(4, -1).clone()
    try:
        _call_sample(sample, given, FILTERED, seed=0)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "given_after": None}
    return {"error": None, "given_after": given}


def _in_place_judge(got) -> str | None:
    if got["error"]:
        return f"sample_next_token(logits, temperature=2.0, top_k=5, top_p=0.9) raised {got['error']}"
    if not (isinstance(got["given_after"], np.ndarray)
            and np.array_equal(got["given_after"], SAMPLE_LOGITS.expand(4, -1).numpy())):
        return ("sample_next_token modified the logits passed in (logits /= temperature, an operation ending in _, "
                "or assigning into logits[...]): the caller's logits must stay as they were; use logits / temperature "
                "and filters that return new tensors")
    return None


def _dtype_probe(sample) -> dict:
    """The ids of each path through the sampler (sampling, and the greedy ones), as returned."""
    outputs = {}
    for name, settings in DTYPE_SETTINGS.items():
        out = _call_sample(sample, SAMPLE_LOGITS.expand(4, -1).clone(), settings, seed=0)
        outputs[name] = out if isinstance(out, torch.Tensor) else describe(out)  # the judge reads the dtype
    return outputs


def _dtype_judge(got) -> str | None:
    if not isinstance(got, dict) or set(got) != set(DTYPE_SETTINGS):
        return "sample_next_token should return token ids as a torch.long (int64) tensor"
    for name, out in got.items():
        dtype = f"torch.{out.dtype}" if isinstance(out, np.ndarray) else out
        if not isinstance(out, np.ndarray) or out.dtype != np.int64:
            return (f"sample_next_token ({name}) should return token ids as a torch.long (int64) tensor, got "
                    f"{dtype}: torch.multinomial and argmax already return torch.long; do not convert them")
    return None


check_sample = Check(
    exercise="sample",
    expects=["a function sample_next_token(logits, temperature=1.0, top_k=None, top_p=None, generator=None) -> ids"],
    tests=[
        Test(f"{DRAWS} draws with the defaults follow softmax(logits)", _draws({}),
             _frequency_judge("sample_next_token(logits)", _probs(),
                              ((GREEDY, _greedy), (CLAMPED, _clamped), (UNIFORM, _uniform))),
             weight=3),
        Test("temperature=0 is greedy: always the most likely token", _draws({"temperature": 0.0}),
             _frequency_judge("sample_next_token(logits, temperature=0)", _greedy, tolerance=1e-9,
                              error_hint="temperature=0 means greedy decoding: return logits.argmax(dim=-1) before "
                                         "applying the temperature (dividing by 0 is not defined)"), weight=0.3),
        Test("temperature=0 with a tied maximum: the first argmax, no generator draws", _greedy_ties_probe,
             _greedy_ties_judge, weight=0.2),
        Test("temperature=0.01 is practically argmax", _draws({"temperature": 0.01}),
             _frequency_judge("sample_next_token(logits, temperature=0.01)", _greedy,
                              ((NO_TEMPERATURE, _probs()), (MULTIPLIED, _probs(temperature=100.0))),
                              tolerance=0.001, clamped=lambda c: _probs(temperature=0.01, clamp=c)), weight=0.2),
        Test("temperature=3 flattens the distribution", _draws({"temperature": 3.0}),
             _frequency_judge("sample_next_token(logits, temperature=3)", _probs(temperature=3.0), (
                 (NO_TEMPERATURE, _probs()),
                 (MULTIPLIED, _probs(temperature=1 / 3)))), weight=2),
        Test("top_k=1 is greedy", _draws({"top_k": 1}),
             _frequency_judge("sample_next_token(logits, top_k=1)", _greedy, (
                 ("top_k is ignored: apply top_k_filter when top_k is not None", _probs()),
                 (POSITIONS, _positions(1))), tolerance=1e-9),
             weight=0.2),
        Test("top_k=3 samples only the 3 most likely tokens", _draws({"top_k": 3}),
             _frequency_judge("sample_next_token(logits, top_k=3)", _probs(top_k=3), (
                 ("top_k is ignored: apply top_k_filter when top_k is not None", _probs()),
                 (POSITIONS, _positions(3)), (AFTER_SAMPLING, _sampled_then_filtered(3)))), weight=2),
        Test("top_k=3 keeps a token tied with the 3rd most likely", _draws({"top_k": 3}, distribution=_tied_logits),
             _frequency_judge("sample_next_token(logits whose 3rd and 4th largest tie, top_k=3)", _probs(top_k=3), ((
                 "exactly 3 tokens were kept, though the 4th ties with the 3rd: top-k keeps every logit >= the k-th "
                 "largest value (check top_k_filter, and that sample_next_token uses it)", _exactly_three),),
                 distribution=_tied_logits), weight=0.5),
        Test("top_p=0.6 never samples outside the nucleus", _draws({"top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, top_p=0.6)", _probs(top_p=0.6), (
                 ("top_p is ignored: apply top_p_filter when top_p is not None", _probs()),)), weight=2),
        Test("temperature=2 with top_p=0.6: the nucleus of the tempered distribution",
             _draws({"temperature": 2.0, "top_p": 0.6}),
             _frequency_judge("sample_next_token(logits, temperature=2, top_p=0.6)", _probs(2.0, None, 0.6), ((
                 ("top-p was applied before the temperature: divide by the temperature first, then filter (the "
                  "nucleus is that of the distribution you sample from)"), _top_p_first(2.0, 0.6)),)), weight=5),
        Test("top_k=4 with top_p=0.7: top-k first, then the nucleus of what is left",
             _draws({"top_k": 4, "top_p": 0.7}),
             _frequency_judge("sample_next_token(logits, top_k=4, top_p=0.7)", _probs(1.0, 4, 0.7), (
                 (TOP_P_AFTER_TOP_K, _probs(1.0, 4)),
                 (("top-p was applied before top-k: filter with top-k first, then take the nucleus of the tokens "
                   "that are left (temperature, then top-k, then top-p)"), _top_p_then_top_k(4, 0.7)))), weight=2),
        Test("top_p exactly at a boundary: the tokens before hold exactly p", _draws({"top_p": 0.75},
                                                                                distribution=_boundary_logits),
             _frequency_judge("sample_next_token(logits of powers of 2, top_p=0.75)", _probs(top_p=0.75), ((
                 "at an exact boundary one token too many was kept: the two most likely tokens hold exactly 0.75, so "
                 "the nucleus is those two (drop a token when cumsum - probs >= p, not > p), as GPT.generate does",
                 lambda x: x.masked_fill(x < x.topk(3).values[-1], float("-inf")).softmax(-1)),),
                 distribution=_boundary_logits), weight=0.5),
        Test("logits around 100 and -120 (exp overflows)", _draws({}, magnitudes=True),
             _frequency_judge("sample_next_token(logits around 100 and -120)", _probs(), (
                 (GREEDY, _greedy),), clamped=_clamped_large), weight=1),
        Test("sampling uses the generator it is given", _generator_probe({}), _generator_judge({}), weight=2),
        Test("with temperature, top_k and top_p too", _generator_probe(FILTERED), _generator_judge(FILTERED), weight=1),
        Test("without a generator, the global RNG", _global_rng_probe, _global_rng_judge, weight=0.3),
        Test("a batch of one row gives shape (1,)", _one_row_probe, _one_row_judge, weight=0.3,
             needs_right_outputs=True),
        Test("a batch of one row is sampled too; ids above 255", _any_row_probe, _any_row_judge, weight=0.1,
             needs_right_outputs=True),
        Test("token ids are torch.long", _dtype_probe, _dtype_judge, weight=0.05, needs_right_outputs=True),
        Test("the logits passed in are left as they are", _in_place_probe, _in_place_judge, weight=0.1,
             needs_right_outputs=True),
        Test("top_k=0 and top_p=0 are errors, not 'no filter'", _validation_probe,
             _validation_judge(("top_k=0", "top_p=0"), ": test `if {name} is not None:` (not `if {name}:`, "
                                                        "which treats 0 as not given) and let your filter reject it"),
             weight=0.1, needs_right_outputs=True),
        Test("a NaN or negative temperature is an error", _validation_probe,
             _validation_judge(("temperature=nan", "temperature=-1"), ": apply_temperature rejects it when "
                                                                      "temperature is not 0"), weight=0.05,
             needs_right_outputs=True),
    ],
)
