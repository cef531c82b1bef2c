"""Check for notebook 04's GPT.generate: context cropping, temperature, top-k, top-p and the generator.

generate is probed through a fake forward that returns known logits at the last position, so its sampling can be
measured on thousands of draws and compared with the distribution it should sample from. The order is the one
notebook 05's check_sample uses: divide by the temperature first, then top-k, then top-p, then softmax and
torch.multinomial(..., generator=generator). Top-p keeps the smallest set of most likely tokens whose probability
reaches p (the token that crosses p is kept; at an exact boundary the set ends with the token where the cumulative
sum first reaches p). top_k=0 and top_p=0 are errors, not "no filter", as in notebook 05; temperature=0 is an error
or greedy decoding (notebook 05's meaning). The crop is probed at two block sizes, and the model's mode is left to
the caller. In a grading run the token ranking and the generator's seed are secret.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F

from coursekit.checks.core import Check, Test, describe, is_module_class, is_public, probe_rng
from coursekit.checks.gpt_common import B, PUBLIC, GPTConfig
from coursekit.checks.probing import FRESH_GENERATOR, single_threaded, with_global_rng_perturbed

V = PUBLIC.vocab_size
# Token ids in order of likelihood (public): the most likely token is 4, then 9, ... The vocabulary order is not the
# rank order, so a filter that forgets to map sorted positions back to token ids keeps the wrong tokens.
PUBLIC_RANKING = [4, 9, 1, 7, 0, 10, 3, 6, 2, 8, 5]
BASE = [2.0, 1.2, 0.9, 0.3, 0.0, -0.3, -0.5, -1.0, -1.5, -2.0, -3.0]  # logits, best first
TIED = [2.0, 1.2, 0.9, 0.9, 0.0, -0.3, -0.5, -1.0, -1.5, -2.0, -3.0]  # BASE with the 3rd and 4th tied
NUCLEUS = [0.36, 0.22, 0.16, 0.10, 0.06, 0.04, 0.025, 0.015, 0.01, 0.006, 0.004]  # probabilities, best first
POWERS = [2.0 ** -(i + 1) for i in range(V - 1)] + [2.0 ** -(V - 1)]  # exact in float32: exact top-p boundaries
SAMPLES_B, SAMPLES_N = 500, 8  # 4000 draws per setting
TOLERANCE = 0.04  # total variation distance; sampling noise with 4000 draws is around 0.015
TOP_K = 3


def ranking() -> torch.Tensor:
    """The token ids from most to least likely: public, or a secret permutation in a grading run."""
    if is_public():
        return torch.tensor(PUBLIC_RANKING)
    return torch.from_numpy(probe_rng().permutation(V)).long()


def in_vocabulary_order(ranked) -> torch.Tensor:
    """Values given best first, placed at the token ids ranking() names."""
    return torch.empty(V).scatter_(0, ranking(), torch.tensor(ranked, dtype=torch.float32))


def base_logits() -> torch.Tensor:
    return in_vocabulary_order(BASE)


def tied_logits() -> torch.Tensor:
    return in_vocabulary_order(TIED)


def nucleus_logits() -> torch.Tensor:
    return in_vocabulary_order(NUCLEUS).log()


def powers_logits() -> torch.Tensor:
    return in_vocabulary_order(POWERS).log()


def keep_first(n: int, order: torch.Tensor | None = None) -> torch.Tensor:
    """The mask of the n most likely tokens (of ranking(), or of the token ids `order` names best first)."""
    return torch.zeros(V, dtype=torch.bool).index_fill_(0, (ranking() if order is None else order)[:n], True)


def sorted_positions_as_ids(n: int) -> torch.Tensor:
    """The bug of a filter that never maps back: it keeps token ids 0 .. n - 1, the positions in sorted order."""
    return torch.arange(V) < n


def gathered_instead_of_scattered(n: int) -> torch.Tensor:
    """The bug of a sorted mask read back with gather(-1, order) instead of scatter: token i is kept when order[i],
    the id of the token ranked i-th, is below n."""
    return ranking() < n


def seed() -> int:
    return 0 if is_public() else int(probe_rng().integers(2**31))


def boundary() -> tuple[float, int]:
    """(top_p, tokens kept) where top_p equals a cumulative probability of POWERS exactly: 0.75 keeps 2 tokens.

    Only 1/2 + 1/4 survives a softmax and a cumsum in float32 exactly (deeper sums come out a rounding off, which
    hides a strict `>`); in a grading run the tokens that hold those probabilities are secret (ranking())."""
    return float(sum(POWERS[:2])), 2


def _fake_forward(model, last_logits: torch.Tensor, calls: list, modes: list | None = None):
    """Replace model.forward: every position predicts token 9 except the last, which predicts from last_logits
    (one row of logits for every row of the batch, or one for each).
    calls receives each input, modes (if given) whether the model was in training mode."""
    def forward(idx, targets=None):
        calls.append(idx.detach().clone())
        if modes is not None:
            modes.append(model.training)
        logits = torch.full((idx.size(0), idx.size(1), V), -5.0)
        logits[:, :, 9] = 5.0
        logits[:, -1] = last_logits
        return logits, None
    model.forward = forward
    return model


@single_threaded
def _generate(gpt_class, last_logits, **settings):
    torch.manual_seed(0)
    calls = []
    model = _fake_forward(gpt_class(GPTConfig()).eval(), last_logits, calls)
    prompt = torch.zeros(SAMPLES_B, 1, dtype=torch.long)
    try:
        out = model.generate(prompt, SAMPLES_N, generator=torch.Generator().manual_seed(seed()), **settings)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "counts": None}
    if not isinstance(out, torch.Tensor) or out.shape != (SAMPLES_B, SAMPLES_N + 1):
        return {"error": f"returned {describe(out)}, expected shape {(SAMPLES_B, SAMPLES_N + 1)}", "counts": None}
    new = out[:, 1:].clamp(0, V - 1)
    return {"error": None, "counts": torch.bincount(new.flatten(), minlength=V),
            "row_counts": [torch.bincount(new[parity::2].flatten(), minlength=V) for parity in (0, 1)],
            "rows_alike": bool((new == new[:1]).all()), "steps_alike": bool((new == new[:, :1]).all())}


# (block_size, prompt length, new tokens) of the crop probes: the context outgrows block_size in both, and the
# second block_size is not the first's 8, so a crop to a fixed number of tokens shows.
CROPS = [(8, 5, 7), (11, 5, 9)]
CROP_TOKEN = 3  # the last position's logits put almost all mass on it


@single_threaded
def _crop_case(gpt_class, block_size: int, length: int, new: int, mode: str = "eval") -> dict:
    torch.manual_seed(0)
    calls, modes = [], []
    last = torch.zeros(V).index_fill_(0, torch.tensor([CROP_TOKEN]), 20.0)
    model = _fake_forward(gpt_class(GPTConfig(block_size=block_size)), last, calls, modes)
    model.train(mode == "train")
    prompt = torch.randint(V, (B, length), generator=torch.Generator().manual_seed(seed()))
    try:
        out = model.generate(prompt, new, generator=torch.Generator().manual_seed(0))
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"error": None, "prompt": prompt, "out": out if isinstance(out, torch.Tensor) else describe(out),
            "returned": describe(out), "calls": calls, "modes": modes, "training_after": model.training}


def _crop_probe(gpt_class):
    return [_crop_case(gpt_class, *crop) for crop in CROPS]


def _mode_probe(gpt_class):
    """generate on a model in eval mode and on one in training mode (the first crop probe's sizes)."""
    return {mode: _crop_case(gpt_class, *CROPS[0], mode=mode) for mode in ("eval", "train")}


def _mode_judge(got):
    if got["eval"]["error"] or got["train"]["error"]:
        return "fix the first test first (generate raised)"
    if any(got["eval"]["modes"]) or got["eval"]["training_after"]:
        return ("generate switches a model the caller put in eval mode to training mode (it calls self.train()): "
                "the tokens are then sampled with dropout on, and the model is left in training mode. Leave the "
                "mode to the caller, who calls model.eval() before sampling")
    if not got["train"]["training_after"]:
        return ("generate leaves the model in eval mode (it calls self.eval()): a model sampled from during training "
                "then trains without dropout. Leave the mode to the caller, or restore it when done "
                "(was_training = self.training ... self.train(was_training))")
    return None


def _cropped_at(got, length: int, new: int) -> int | None:
    """The number of tokens a case's contexts were cut to, if they grew until then and stayed there."""
    if got["error"] or not got["calls"]:
        return None
    seen = [call.shape[1] for call in got["calls"]]
    cap = max(seen)
    return cap if seen == [min(length + step, cap) for step in range(new)] else None


@single_threaded
def _crop_judge(got):
    caps = [_cropped_at(case, length, new) for (_, length, new), case in zip(CROPS, got)]
    if None not in caps and len(set(caps)) == 1 and any(cap != block_size for cap, (block_size, _, _) in
                                                         zip(caps, CROPS)):
        sizes = " and ".join(f"block_size={block_size}" for block_size, _, _ in CROPS)
        return (f"the context is cropped to {caps[0]} tokens whatever block_size is (with {sizes} alike): crop to "
                f"the model's own, idx[:, -self.config.block_size:], not a fixed number")
    for (block_size, length, new), case in zip(CROPS, got):
        message = _crop_case_problem(case, block_size, length, new)
        if message:
            return message
    return None


def _crop_case_problem(got, block_size: int, length: int, new: int) -> str | None:
    what = f"generate(idx of shape ({B}, {length}), max_new_tokens={new}) with block_size={block_size}"
    if got["error"]:
        return f"{what} raised {got['error']}"
    out, prompt, calls = got["out"], got["prompt"], got["calls"]
    total = length + new
    if not isinstance(out, np.ndarray) or out.shape != (B, total):
        return (f"{what} should return the prompt and the {new} new tokens, shape ({B}, {total}), got "
                f"{got['returned']}")
    if out.dtype != np.int64:
        return (f"{what} returned tokens of dtype {got['returned'].rsplit(' ', 1)[-1]}: token ids are torch.long "
                f"(int64), the dtype nn.Embedding and F.cross_entropy take and torch.multinomial returns; don't "
                f"convert them (.int(), .to(torch.int32))")
    if not np.array_equal(out[:, :length], prompt):
        return "the returned sequence should start with the prompt idx, followed by the new tokens (torch.cat)"
    if len(calls) != new:
        return f"the model should be called once per new token ({new} times), got {len(calls)} calls"
    for step, seen in enumerate(calls):
        so_far = length + step
        if seen.shape[1] > block_size:
            return (f"{what}: at step {step} the model was given {seen.shape[1]} tokens, more than block_size="
                    f"{block_size} (it has only {block_size} position embeddings): crop the context to the last "
                    f"block_size tokens, idx[:, -self.config.block_size:]")
        expected = out[:, max(0, so_far - block_size):so_far]
        if not np.array_equal(seen, expected):
            if np.array_equal(seen, out[:, :min(so_far, block_size)]):
                return ("the context is cropped to the first block_size tokens; the next token depends on the most "
                        "recent ones: idx[:, -block_size:]")
            return (f"{what}: at step {step} the model should see the last min(T, block_size) tokens of the "
                    f"sequence so far, {min(so_far, block_size)} tokens, got {seen.shape[1]}")
    if not (out[:, length:] == CROP_TOKEN).all():
        if (out[:, length:] == 9).all():
            return ("the new token is sampled from the logits of the first position; the prediction of the next token is "
                    "at the last position: logits[:, -1, :]")
        if (out[:, length:] == 0).all():
            return (f"every new token is 0, the position of the most likely token in sorted order, not its id "
                    f"({CROP_TOKEN}): after sampling among sorted probabilities return order.gather(-1, choice), or "
                    f"sample from the probabilities in vocabulary order")
        return (f"the new tokens do not follow the last position's logits (which put almost all mass on token "
                f"{CROP_TOKEN})")
    return None


def _distance(counts: np.ndarray, probs: torch.Tensor) -> float:
    return 0.5 * float(np.abs(counts / counts.sum() - probs.numpy()).sum())  # total variation distance


def _matches(counts, probs: torch.Tensor) -> bool:
    """The draws follow probs: within sampling noise, or exactly when probs is one token (greedy)."""
    if float(probs.max()) == 1.0:
        return _distance(counts, probs) == 0.0
    return _distance(counts, probs) < TOLERANCE


def _stat_test(description: str, weight: float, logits_of, settings: dict, expected, wrong: dict):
    """A test drawing 4000 tokens with generate(**settings) from logits_of() at the last position; expected and
    the values of `wrong` (message -> distribution) are functions of the logits."""
    name = ", ".join(f"{key}={value}" for key, value in settings.items())
    call = f"generate(..., {name})" if name else "generate(...)"

    def probe(gpt_class):
        return _generate(gpt_class, logits_of(), **settings)

    def judge(got):
        if got["error"]:
            if settings.get("top_k", 0) > V:  # topk's "out of range", a sort-based slice's "size of tensor b (0)"
                return (f"generate(..., top_k={settings['top_k']}) with a vocabulary of {V} tokens raised "
                        f"{got['error']}: top_k may exceed the vocabulary (then nothing is filtered); use "
                        f"torch.topk(logits, min(top_k, logits.size(-1)))")
            if "inf" in got["error"] or "nan" in got["error"]:
                return (f"{call} on logits around {float(logits_of().max()):.0f} raised "
                        f"{got['error']}: exp overflows there; take F.softmax(logits, dim=-1), which subtracts each "
                        f"row's maximum first, not exp(logits) / sum")
            return f"{call} raised {got['error']}"
        counts, logits = got["counts"], logits_of()
        probs = expected(logits)
        if float(probs.max()) < 1.0 and int((counts > 0).sum()) > 1:  # not greedy: then every draw is alike
            message = _same_draws_problem(got)
            if message:
                return message
        if _matches(counts, probs):
            return None
        for message, wrong_probs in wrong.items():
            if _matches(counts, wrong_probs(logits)):
                return message
        top = np.argsort(-probs.numpy())[:4]
        return (f"with {name or 'the default settings'} the sampled frequencies of tokens {top.tolist()} are "
                f"{[round(float(count) / float(counts.sum()), 3) for count in counts[top]]}, expected about "
                f"{[round(float(probability), 3) for probability in probs[top]]}")
    return Test(description, probe, judge, weight=weight)


def _same_draws_problem(got) -> str | None:
    """Draws that repeat across the batch's rows, or across steps, where the distribution has several tokens."""
    if got["rows_alike"]:
        return (f"at every step all {SAMPLES_B} rows of the batch got the same new token (the first row's?): sample "
                f"one token per row, torch.multinomial(probs, 1) on the (B, vocab_size) probabilities gives a (B, 1) "
                f"column to append")
    if got["steps_alike"]:
        return (f"each row repeats one token at all {SAMPLES_N} steps: the random numbers start over at every step "
                f"(a new torch.Generator().manual_seed(...), or a manual_seed, inside the loop?). Draw from the "
                f"generator you are given, seeded once by the caller: torch.multinomial(probs, 1, "
                f"generator=generator)")
    return None


def softmax(logits):
    return torch.softmax(logits, -1)


def only(keep):
    """The distribution of the logits with every token outside `keep` removed."""
    return lambda logits: torch.softmax(logits.masked_fill(~keep(), float("-inf")), -1)


def exactly(k: int):
    """The distribution of a top-k filter that keeps exactly k tokens (torch.topk's indices), dropping ties."""
    def distribution(logits):
        kept = torch.zeros(V, dtype=torch.bool).index_fill_(0, torch.topk(logits, k).indices, True)
        return torch.softmax(logits.masked_fill(~kept, float("-inf")), -1)
    return distribution


def greedy(logits):
    return F.one_hot(logits.argmax(), V).float()


# the generator tests' settings: sampling without a filter, and on each filter's branch
GENERATOR_SETTINGS = {"": {}, "top_k=3": {"top_k": TOP_K}, "top_p=0.9": {"top_p": 0.9}}


@single_threaded
def _generator_probe(gpt_class):
    """For each setting, two runs whose global seeds differ but whose generators are seeded alike (they must give
    the same tokens), then a run with the generator seeded otherwise (it must not)."""
    runs = {}
    for name, settings in GENERATOR_SETTINGS.items():
        runs[name] = _two_runs(gpt_class, lambda: torch.Generator().manual_seed(seed()), **settings)
        runs[name].append(_two_runs(gpt_class, lambda: torch.Generator().manual_seed(seed() + 1), seeds=(1,),
                                    **settings)[0])
    return runs


@single_threaded
def _global_rng_probe(gpt_class):
    """Two runs without a generator, under different global seeds: both draw from the global RNG, so they differ."""
    return _two_runs(gpt_class, lambda: None)


def _two_runs(gpt_class, generator, seeds=(1, 2), **settings):
    model = _fake_forward(gpt_class(GPTConfig()).eval(), base_logits(), [])

    def run():
        try:
            out = model.generate(torch.zeros(SAMPLES_B, 1, dtype=torch.long), 8, generator=generator(), **settings)
        except Exception as error:
            return f"{type(error).__name__}: {error}"
        return out if isinstance(out, torch.Tensor) else describe(out)
    return with_global_rng_perturbed(run, seeds)


def _generator_judge(got):
    for name, (first, second, other_seed) in got.items():
        call = f"generate(..., {name + ', ' if name else ''}generator=torch.Generator().manual_seed(...))"
        if isinstance(first, str):
            return f"{call} raised or returned {first}"
        if not all(isinstance(run, np.ndarray) for run in (first, second, other_seed)):
            return "fix the errors reported by the other tests first"
        if not np.array_equal(first, second):
            where = f" when {name.split('=')[0]} is given" if name else ""
            return (f"two calls of {call} with generators seeded alike gave different tokens: the generator is "
                    f"ignored{where}. Pass it on, torch.multinomial(probs, num_samples=1, generator=generator), on "
                    f"every branch, so runs are reproducible")
        if np.array_equal(first, other_seed):
            return (f"{call} gave the same tokens for generators seeded differently: generate draws from a generator "
                    f"of its own (torch.Generator().manual_seed(0) inside?), not from the one it is given. Use the "
                    f"generator argument as it is: torch.multinomial(probs, 1, generator=generator)")
    return None


def _global_rng_judge(got):
    first, second = got
    if not (isinstance(first, np.ndarray) and isinstance(second, np.ndarray)):
        return "fix the errors reported by the other tests first"
    if np.array_equal(first, second):
        return ("two calls without a generator, after torch.manual_seed(1) and torch.manual_seed(2), gave the same "
                f"tokens: {FRESH_GENERATOR}")
    return None


TEMPERATURE_IGNORED = "temperature is ignored: divide the logits by temperature before the softmax"
TEMPERATURE_MULTIPLIED = "the logits are multiplied by the temperature; divide them by it"
TOP_K_MESSAGES = {
    "top_k is ignored: set every logit below the k-th largest to -inf before the softmax": softmax,
    "top_k keeps k + 1 tokens: keep logits >= the k-th largest (torch.topk(logits, k).values[:, [-1]])":
        only(lambda: keep_first(TOP_K + 1)),
    "top_k keeps k - 1 tokens: keep logits >= the k-th largest (torch.topk(logits, k).values[:, [-1]])":
        only(lambda: keep_first(TOP_K - 1)),
    "top_k keeps the k least likely tokens: torch.topk returns the largest by default":
        only(lambda: ~keep_first(V - TOP_K)),
    ("top_k sets the other logits to 0 instead of -inf: exp(0) = 1, so those tokens are still sampled; fill them "
     "with float('-inf')"): lambda logits: softmax(logits.masked_fill(~keep_first(TOP_K), 0.0)),
    ("top_k keeps tokens 0 .. k - 1, positions in sorted order, not the k most likely token ids: map back with "
     "torch.topk(...).indices (or compare logits with the k-th largest value)"):
        only(lambda: sorted_positions_as_ids(TOP_K)),
    ("top-k was applied after the softmax and the result went through a softmax again, which flattens it: filter "
     "the logits (-inf outside the top k), then apply the softmax once"):
        lambda logits: softmax(softmax(logits).masked_fill(~keep_first(TOP_K), float("-inf"))),
}
NOT_MAPPED_BACK = ("the nucleus is computed in sorted order but applied to token ids 0 .. n - 1: map the mask back "
                   "to vocabulary order (mask.scatter(-1, order, mask), with order from torch.sort; gather reads "
                   "in sorted order instead of writing back), or sample among the sorted probabilities and return "
                   "order.gather(-1, choice)")
GATHERED = ("the nucleus mask is mapped back with gather(-1, order), which reads it in sorted order again; "
            "scatter writes it back to vocabulary order: mask.scatter(-1, order, mask)")
TOP_P = 0.6  # NUCLEUS: the 3 most likely tokens hold 0.74; sorted ascending, all but the most likely hold < 0.6
TOP_P_MESSAGES = {
    "top_p is ignored: keep the most likely tokens until their probabilities add up to top_p": softmax,
    ("top_p keeps the least likely tokens: the probabilities are sorted in ascending order, so the nucleus starts "
     "from the tail. Sort with torch.sort(logits, descending=True)"): only(lambda: ~keep_first(1)),
    ("the nucleus misses the token that crosses top_p: keep a token when the probability *before* it "
     "(cumsum - probs) is still < top_p, so the kept tokens hold at least top_p"): only(lambda: keep_first(2)),
    "the nucleus keeps one token too many: drop a token once the tokens before it hold >= top_p":
        only(lambda: keep_first(4)),
    NOT_MAPPED_BACK: only(lambda: sorted_positions_as_ids(3)),
    GATHERED: only(lambda: gathered_instead_of_scattered(3)),
}


def _boundary_test():
    def probe(gpt_class):
        return _generate(gpt_class, powers_logits(), top_p=boundary()[0])

    def judge(got):
        top_p, kept = boundary()
        if got["error"]:
            return f"generate(..., top_p={top_p}) raised {got['error']}"
        counts, logits = got["counts"], powers_logits()
        if _matches(counts, only(lambda: keep_first(kept))(logits)):
            return None
        if _matches(counts, only(lambda: keep_first(kept + 1))(logits)):
            return (f"at an exact boundary the nucleus keeps one token too many: the {kept} most likely tokens hold "
                    f"exactly top_p={top_p}, so the next is dropped. Drop a token when the tokens before it already "
                    f"hold top_p: cumsum - probs >= top_p (not > top_p)")
        if _matches(counts, only(lambda: keep_first(kept - 1))(logits)):
            return (f"at an exact boundary the nucleus misses the token where the cumulative probability reaches "
                    f"top_p={top_p}: keep tokens up to and including it (drop when cumsum - probs >= top_p)")
        return (f"with top_p={top_p} (probabilities 1/2, 1/4, 1/8, ...) generate should sample only the {kept} most "
                f"likely tokens, in proportion")
    return Test("top_p at an exact boundary keeps the tokens up to the one reaching it", probe, judge, weight=0.5)


def other_ranking() -> torch.Tensor:
    """The odd rows' token ids from most to least likely: ranking() reversed."""
    return ranking().flip(0)


def rows_logits() -> torch.Tensor:
    """(SAMPLES_B, V) last-position logits whose rows alternate: NUCLEUS in ranking() order, then BASE in
    other_ranking() order. The two differ in their best tokens, their k-th largest logit and their nucleus: top_k=3
    keeps 3 tokens of each, but row 0's threshold keeps 9 of an odd row; top_p=0.6 keeps 3 tokens of an even row and
    2 of an odd one (BASE's best two hold 0.61)."""
    odd = torch.empty(V).scatter_(0, other_ranking(), torch.tensor(BASE))
    return torch.stack([nucleus_logits(), odd]).repeat(SAMPLES_B // 2, 1)


# setting -> (tokens kept in an even row, in an odd row, in an odd row filtered with row 0's threshold or mask)
ROWS_SETTINGS = {"top_k=3": ({"top_k": TOP_K}, 3, 3, 9), "top_p=0.6": ({"top_p": TOP_P}, 3, 2, 3)}


def _rows_probe(gpt_class):
    return {name: _generate(gpt_class, rows_logits(), **settings)
            for name, (settings, *_) in ROWS_SETTINGS.items()}


def _rows_judge(got):
    rows = rows_logits()
    for name, (settings, even, odd, row0) in ROWS_SETTINGS.items():
        if got[name]["error"]:
            return f"generate(..., {name}) on a batch whose rows have different logits raised {got[name]['error']}"
        even_counts, odd_counts = got[name]["row_counts"]
        if not _matches(even_counts, only(lambda: keep_first(even))(rows[0])):
            return (f"with {name}, on a batch whose rows have different logits, row 0 and the other even rows (which "
                    f"share its logits) are not sampled from their own {even} best tokens: filter each row by its "
                    f"own logits")
        if _matches(odd_counts, only(lambda: keep_first(odd, other_ranking()))(rows[1])):
            continue
        if _matches(odd_counts, only(lambda: keep_first(row0, other_ranking()))(rows[1])):
            what = "k-th largest logit" if "top_k" in settings else "nucleus mask"
            fix = ("torch.topk(logits, k).values[:, [-1]], one threshold per row" if "top_k" in settings else
                   "the mask of each row from its own sorted probabilities, drop.scatter(-1, order, drop)")
            return (f"with {name}, on a batch whose rows have different logits, the filter of row 0 is used for every "
                    f"row (row 0's {what}, logits[0] or [:1], for the whole batch): each row keeps its own best "
                    f"tokens, so compute the filter over the last dimension for all rows at once, {fix}")
        return (f"with {name}, on a batch whose rows have different logits, row 1 should sample only its own {odd} "
                f"most likely tokens, in proportion: filter each row by its own logits, over dim=-1")
    return None


EDGE_SETTINGS = {"top_k=0": {"top_k": 0}, "top_p=0": {"top_p": 0.0}, "temperature=0": {"temperature": 0.0},
                 "top_p=1.0": {"top_p": 1.0}}


def _edge_probe(gpt_class):
    return {name: _generate(gpt_class, base_logits(), **settings) for name, settings in EDGE_SETTINGS.items()}


def _edge_judge(got):
    """top_k=0 and top_p=0 are errors, not "no filter" (as in notebook 05's sampler); temperature=0 is an error or
    greedy decoding (notebook 05's meaning), not temperature 1."""
    logits = base_logits()
    if got["top_p=1.0"]["error"]:
        return (f"generate(..., top_p=1.0) raised {got['top_p=1.0']['error']}: top_p may be anything in (0, 1], and "
                f"1.0 keeps every token (no token is ranked after the whole probability mass). Reject only "
                f"top_p <= 0 or top_p > 1")
    if not _matches(got["top_p=1.0"]["counts"], softmax(logits)):
        return ("generate(..., top_p=1.0) should keep every token (the nucleus of probability 1 is the whole "
                "vocabulary), but it dropped some: drop a token only when the tokens before it hold >= top_p")
    for name, setting in (("top_k=0", "top_k"), ("top_p=0", "top_p")):
        if got[name]["error"]:
            continue
        counts = got[name]["counts"]
        if _matches(counts, softmax(logits)):
            return (f"generate(..., {name}) sampled from every token, as if {setting} were None: {name} is out of "
                    f"range and should raise an error. Test `if {setting} is not None:` (`if {setting}:` treats 0 as "
                    f"not given), and raise a ValueError for it, as notebook 05's sampler does")
        if _matches(counts, greedy(logits)):
            return (f"generate(..., {name}) picked the most likely token, as if {name} meant greedy decoding: "
                    f"{name} is out of range ({'top_k >= 1' if setting == 'top_k' else '0 < top_p <= 1'}), so it "
                    f"should raise an error (don't clamp it to a valid value)")
        return (f"generate(..., {name}) should raise an error ({name} is out of range), but it sampled tokens: the "
                f"filter leaves no token, so the probabilities are NaN. torch.multinomial raises on them, a sampler "
                f"of your own does not: check the argument and raise a ValueError")
    if got["temperature=0"]["error"] is None and not _matches(got["temperature=0"]["counts"], greedy(logits)):
        if _matches(got["temperature=0"]["counts"], softmax(logits)):
            return ("generate(..., temperature=0) sampled as if the temperature were 1 (`temperature or 1.0`?): 0 is "
                    "not the default. Dividing by 0 raises an error, or make it greedy decoding (the most likely "
                    "token), as notebook 05 does")
        return ("generate(..., temperature=0) should raise an error or pick the most likely token (greedy "
                "decoding, as in notebook 05), but it sampled others: dividing by 0 makes the probabilities NaN, on "
                "which torch.multinomial raises and a sampler of your own does not")
    return None


check_generate = Check(
    exercise="generate",
    expects=["the class GPT itself, with its generate(idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, "
             "generator=None)"],
    accepts=[is_module_class],
    tests=[
        Test("the context is cropped to the last block_size tokens; the next token comes from the last position",
             _crop_probe, _crop_judge, weight=3.0),
        _stat_test("temperature 0.5 sharpens the distribution (4000 draws)", 1.0, base_logits, {"temperature": 0.5},
                   lambda logits: softmax(logits / 0.5), {
                       TEMPERATURE_IGNORED: softmax, TEMPERATURE_MULTIPLIED: lambda logits: softmax(logits * 0.5),
                       "generate always picks the most likely token: sample with torch.multinomial(probs, 1)": greedy}),
        _stat_test("temperature 2 flattens the distribution (4000 draws)", 1.0, base_logits, {"temperature": 2.0},
                   lambda logits: softmax(logits / 2.0), {
                       TEMPERATURE_IGNORED: softmax, TEMPERATURE_MULTIPLIED: lambda logits: softmax(logits * 2.0)}),
        _stat_test(f"top_k={TOP_K} samples only the {TOP_K} most likely tokens, in proportion", 1.0, base_logits,
                   {"top_k": TOP_K}, only(lambda: keep_first(TOP_K)), TOP_K_MESSAGES),
        _stat_test(f"top_k={TOP_K} keeps a token tied with the {TOP_K}rd most likely", 0.5, tied_logits,
                   {"top_k": TOP_K}, only(lambda: keep_first(TOP_K + 1)), {
                       ("top_k keeps exactly k tokens and drops a token tied with the k-th largest: keep every logit "
                        ">= the k-th largest value (compare with torch.topk(logits, k).values[:, [-1]]), as notebook "
                        "05's top_k_filter does"): exactly(TOP_K)}),
        _stat_test("top_k=1 is greedy decoding", 0.5, base_logits, {"top_k": 1}, greedy, {}),
        _stat_test(f"top_k={V + 4}, more than the vocabulary, filters nothing", 0.5, base_logits, {"top_k": V + 4},
                   softmax, {}),
        _stat_test(f"top_p={TOP_P} samples only from the nucleus (the fewest tokens holding >= {TOP_P:.0%}), in "
                   f"proportion", 1.5, nucleus_logits, {"top_p": TOP_P}, only(lambda: keep_first(3)), TOP_P_MESSAGES),
        _stat_test("temperature 2 is applied before top_p=0.7 (the nucleus of the flattened distribution)", 1.0,
                   nucleus_logits, {"temperature": 2.0, "top_p": 0.7},
                   lambda logits: only(lambda: keep_first(5))(logits / 2.0), {
                       ("the temperature is applied after top-p: the nucleus was chosen from the unscaled logits. "
                        "Divide the logits by the temperature first, then filter (top-k, then top-p), as "
                        "notebook 05's sample does"): lambda logits: only(lambda: keep_first(3))(logits / 2.0),
                       TEMPERATURE_IGNORED: only(lambda: keep_first(3)),
                       NOT_MAPPED_BACK: lambda logits: only(lambda: sorted_positions_as_ids(5))(logits / 2.0),
                       GATHERED: lambda logits: only(lambda: gathered_instead_of_scattered(5))(logits / 2.0)}),
        _stat_test(f"top_k={TOP_K} is applied before top_p=0.7 (the nucleus of the {TOP_K} tokens kept)", 1.0,
                   nucleus_logits, {"top_k": TOP_K, "top_p": 0.7}, only(lambda: keep_first(2)), {
                       ("with both top_k and top_p, top-p is applied before top-k (or not at all): the nucleus must "
                        "be chosen among the tokens top-k kept. Filter in the order temperature, top-k, then top-p, "
                        "as notebook 05's sample does"): only(lambda: keep_first(TOP_K))}),
        _boundary_test(),
        Test("top_k and top_p filter each row of the batch by its own logits", _rows_probe, _rows_judge, weight=1.0),
        _stat_test("logits around 100: the softmax does not overflow", 0.5, lambda: base_logits() + 100.0, {},
                   softmax, {}),
        Test("sampling uses the generator it is given", _generator_probe, _generator_judge, weight=1.0,
             needs_right_outputs=True),
        Test("without a generator, sampling draws from the global RNG", _global_rng_probe, _global_rng_judge,
             weight=0.3, needs_right_outputs=True),
        Test("generate leaves the model in the mode the caller set (eval or training)", _mode_probe, _mode_judge,
             weight=0.5, needs_right_outputs=True),
        Test("top_p=1.0 keeps every token; top_k=0 and top_p=0 are errors, not 'no filter'; temperature=0 is an error "
             "or greedy", _edge_probe,
             _edge_judge, weight=0.5, needs_right_outputs=True),
    ],
)
