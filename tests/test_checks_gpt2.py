"""The notebook 06 checks: they pass the reference and valid alternatives under the public and secret run seeds,
name each plausible mistake, give a wrong-everywhere notebook almost nothing, and cannot be replayed."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from check_family import assert_probes_need_none_of, failures, mistake_tests, outcomes, student_tests
from coursekit import gpt2_inspection as gpt2  # the reference answers of notebook 06
from coursekit.checks import check_cosine_similarity_matrix, check_sample_top_n, check_top_k_table
from coursekit.checks import gpt2 as sampler_checks
from coursekit.checks import gpt2_table
from coursekit.checks.core import PUBLIC_SEED

SECRET_SEEDS = (1, 2, 3, 4, 5)
CHECKS = {"cosine_similarity_matrix": check_cosine_similarity_matrix, "top_k_table": check_top_k_table,
          "sample_top_n": check_sample_top_n}
POINTS = {"cosine_similarity_matrix": 2, "top_k_table": 2, "sample_top_n": 3}  # as in the solution notebook


# ---------------------------------------------------------------- valid implementations


def similarity_by_normalize(vectors):
    unit = F.normalize(vectors, dim=-1)
    return unit @ unit.T


def similarity_by_broadcasting(vectors):
    return F.cosine_similarity(vectors[:, None, :], vectors[None, :, :], dim=-1)


def similarity_by_loops(vectors):
    rows = vectors.tolist()
    length = [math.sqrt(sum(x * x for x in row)) for row in rows]
    return torch.tensor([[sum(a * b for a, b in zip(u, v)) / (length[i] * length[j]) for j, v in enumerate(rows)]
                         for i, u in enumerate(rows)])


def similarity_by_outer_norms(vectors):
    norms = torch.linalg.vector_norm(vectors, dim=1)
    return (vectors @ vectors.T) / torch.outer(norms, norms)


def table_by_argsort(logits, k):
    probabilities = logits.softmax(-1)
    order = probabilities.argsort(descending=True)[:k]
    return [(token.item(), probabilities[token].item()) for token in order]


def table_by_sorted(logits, k):
    top = max(logits.tolist())
    exps = [math.exp(x - top) for x in logits.tolist()]
    total = sum(exps)
    return sorted(((i, e / total) for i, e in enumerate(exps)), key=lambda row: -row[1])[:k]


def table_by_log_softmax(logits, k):
    top = torch.topk(logits, k)
    return [(int(i), math.exp(float(v))) for i, v in zip(top.indices, top.values - torch.logsumexp(logits, -1))]


def sample_with_filter(logits, n, generator=None):
    kth = torch.topk(logits, n).values[-1]
    probabilities = logits.masked_fill(logits < kth, -math.inf).softmax(-1)
    return torch.multinomial(probabilities, 1, generator=generator).item()


def sample_by_inverse_cdf(logits, n, generator=None):
    values, tokens = torch.sort(logits, descending=True)
    probabilities = values[:n].softmax(-1)
    u = torch.rand((), generator=generator)
    position = int(torch.searchsorted(probabilities.cumsum(-1), u).clamp(max=n - 1))
    return int(tokens[position])


def sample_by_gumbel(logits, n, generator=None):
    top = torch.topk(logits, n)
    gumbel = -torch.log(-torch.log(torch.rand(n, generator=generator).clamp_min(1e-20)))
    return int(top.indices[(top.values + gumbel).argmax()])


VALID = {
    "cosine_similarity_matrix": [gpt2.cosine_similarity_matrix, similarity_by_normalize, similarity_by_broadcasting,
                                 similarity_by_loops, similarity_by_outer_norms],
    "top_k_table": [gpt2.top_k_table, table_by_argsort, table_by_sorted, table_by_log_softmax],
    "sample_top_n": [gpt2.sample_top_n, sample_with_filter, sample_by_inverse_cdf, sample_by_gumbel],
}


@pytest.mark.parametrize("exercise, function", [(e, f) for e, fs in VALID.items() for f in fs],
                         ids=lambda value: getattr(value, "__name__", value))
def test_valid_implementations_pass_under_public_and_secret_seeds(exercise, function):
    for seed in (PUBLIC_SEED, *SECRET_SEEDS):
        assert failures(CHECKS[exercise], function, seed) == [], (exercise, function.__name__, seed)


# ---------------------------------------------------------------- mistakes


def normalise_in_place(vectors):
    vectors /= vectors.norm(dim=-1, keepdim=True)
    return vectors @ vectors.T


SIMILARITY_BUGS = {
    "plain dot products": lambda v: v @ v.T,
    "normalised each column": lambda v: F.normalize(v, dim=0) @ F.normalize(v, dim=0).T,
    "only one side is normalised": lambda v: F.normalize(v, dim=-1) @ v.T,
    "squared lengths": lambda v: (v @ v.T) / (v.norm(dim=-1, keepdim=True) ** 2 @ (v.norm(dim=-1, keepdim=True) ** 2).T),
    "cosine distance": lambda v: 1 - similarity_by_normalize(v),
    "similarity with itself": lambda v: F.cosine_similarity(v, v),
    "changed the tensor it was given": normalise_in_place,
    "should return an \\(N, N\\) tensor": lambda v: "a matrix",
    "should return a torch.Tensor": lambda v: similarity_by_normalize(v).numpy(),
    "pair of \\*columns\\*": lambda v: F.normalize(v, dim=-1).T @ F.normalize(v, dim=-1),
    "length of the whole matrix": lambda v: (v / v.norm()) @ (v / v.norm()).T,
    "keepdim=True\\), a \\(5, 1\\) column": lambda v: (v / v.norm(dim=-1)) @ (v / v.norm(dim=-1)).T,
    "L1 norm": lambda v: F.normalize(v, p=1, dim=-1) @ F.normalize(v, p=1, dim=-1).T,
    "angles \\(arccos": lambda v: torch.arccos(similarity_by_normalize(v).clamp(-1, 1)),
    "right shape but wrong values": lambda v: similarity_by_normalize(v) ** 2,
    "similarity matrix of 5 vectors has the right shape": lambda v: similarity_by_normalize(v).abs(),
}


def table_from(values, largest=True):
    def table(logits, k):
        top = torch.topk(logits, k, largest=largest)
        return [(int(token), float(value)) for token, value in zip(top.indices, values(logits, top))]
    return table


TABLE_BUGS = {
    "returned the logits": table_from(lambda logits, top: top.values),
    "softmax of the k kept logits only": table_from(lambda logits, top: top.values.softmax(-1)),
    "log-probabilities": table_from(lambda logits, top: logits.log_softmax(-1)[top.indices]),
    "most likely first": lambda logits, k: list(reversed(gpt2.top_k_table(logits, k))),
    "least likely tokens": table_from(lambda logits, top: logits.softmax(-1)[top.indices], largest=False),
    "should return 5 rows, got 4": lambda logits, k: gpt2.top_k_table(logits, k)[:-1] if k > 1 else [],
    "list of \\(token id, probability\\) pairs": lambda logits, k: torch.topk(logits.softmax(-1), k).values,
    "each row is \\(probability, token id\\)": lambda logits, k: [(p, t) for t, p in gpt2.top_k_table(logits, k)],
    "gives NaN for logits around 100": table_from(lambda logits, top: top.values.exp() / logits.exp().sum()),
    "a Python int and a Python float": lambda logits, k: list(zip(*torch.topk(logits.softmax(-1), k)[::-1])),
    "should return 12 rows, got 10": lambda logits, k: gpt2.top_k_table(logits, min(k, 10)),
    "should list tokens": lambda logits, k: gpt2.top_k_table(logits, k + 1)[1:],
    "probabilities should be": table_from(lambda logits, top: (logits / 2).softmax(-1)[top.indices]),
    "the first entry of each row should be a token id": lambda logits, k: [
        (t + 0.5, p) for t, p in gpt2.top_k_table(logits, k)],
    "k=1\\) should return 1 rows": lambda logits, k: gpt2.top_k_table(logits, max(k, 2)),
}


def sample_uniformly(logits, n, generator=None):
    tokens = torch.topk(logits, n).indices
    return tokens[torch.randint(n, (1,), generator=generator)].item()


def sample_from(k_of_n=lambda n: n, largest=True, weights=lambda values: values.softmax(-1), use_generator=True,
                reseed=False, as_int=True):
    def sample(logits, n, generator=None):
        top = torch.topk(logits, k_of_n(n), largest=largest)
        if reseed:
            torch.manual_seed(0)
        choice = torch.multinomial(weights(top.values), 1, generator=generator if use_generator else None)
        return int(top.indices[choice]) if as_int else top.indices[choice][0]
    return sample


SAMPLER_BUGS = {
    "about equally often": sample_uniformly,
    "that is greedy decoding": lambda logits, n, generator=None: int(logits.argmax()),
    "least likely": sample_from(largest=False),
    "off by one, keep exactly n": sample_from(lambda n: n + 1),
    "in proportion to their logits": sample_from(weights=lambda values: values.clamp(min=0)),
    "pass the generator on": sample_from(use_generator=False),
    "draws gave token .*do not reseed": sample_from(use_generator=False, reseed=True),
    "frequencies near": lambda logits, n, generator=None: sample_from()(logits * 3, n, generator),
    "positions 0..2 among the kept tokens, not their token ids": lambda logits, n, generator=None: int(
        torch.multinomial(torch.topk(logits, n).values.softmax(-1), 1, generator=generator)),
    "with logits around 100 or -120 sample_top_n failed": sample_from(weights=lambda values: values.exp()),
    "as a Python int, got a Tensor": sample_from(as_int=False),
    "kept n - 1 tokens, off by one": sample_from(lambda n: max(n - 1, 1)),
    "only the most likely token \\(3\\) can come out": lambda logits, n, generator=None: sample_from()(
        logits, max(n, 2), generator),
    "multinomial": sample_from(weights=lambda values: values),  # negative weights at -120: refused
    "the kept tokens \\[3, 0, 5\\] should come out with frequencies": sample_from(
        weights=lambda values: values.softmax(-1) ** 0.5),
}

BUGS = {"cosine_similarity_matrix": SIMILARITY_BUGS, "top_k_table": TABLE_BUGS, "sample_top_n": SAMPLER_BUGS}


(test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too,
 test_buggy_sets_are_broad) = mistake_tests(CHECKS, BUGS)


# ---------------------------------------------------------------- points, secrets, plumbing


@pytest.mark.parametrize("notebook", [
    {"cosine_similarity_matrix": lambda v: torch.eye(len(v)), "top_k_table": lambda x, k: [(0, 1.0)] * k,
     "sample_top_n": lambda x, n, generator=None: int(x.argmax())},
    {"cosine_similarity_matrix": lambda v: v @ v.T, "top_k_table": TABLE_BUGS["returned the logits"],
     "sample_top_n": sample_uniformly},
], ids=["constants", "plausible-but-wrong"])
def test_a_wrong_everywhere_notebook_scores_at_most_5_percent(notebook):
    earned = sum(POINTS[e] * CHECKS[e].fraction(outcomes(CHECKS[e], f, seed=3)) for e, f in notebook.items())
    assert earned / sum(POINTS.values()) <= 0.05


def replaying(exercise):
    """A fake that answers the public probes' inputs with the reference's outputs, and guesses elsewhere."""
    table = {}

    def recorder(*args):
        out = VALID[exercise][0](*args)
        table[repr(args[0].tolist()), repr(args[1:2])] = out
        return out
    CHECKS[exercise].probe_all((recorder,), PUBLIC_SEED)

    def fake(*args):
        key = repr(args[0].tolist()), repr(args[1:2])
        if key in table:
            return table[key]
        return {"cosine_similarity_matrix": lambda: torch.eye(len(args[0])),
                "top_k_table": lambda: [(i, 0.1) for i in range(args[1])],
                "sample_top_n": lambda: 3}[exercise]()
    return fake


@pytest.mark.parametrize("exercise", ["cosine_similarity_matrix", "top_k_table"])
def test_replaying_the_public_outputs_passes_in_the_notebook_but_not_in_grading(exercise):
    check, fake = CHECKS[exercise], replaying(exercise)
    assert check.fraction(outcomes(check, fake, PUBLIC_SEED)) == 1.0
    assert max(check.fraction(outcomes(check, fake, seed)) for seed in SECRET_SEEDS) <= 0.1


def test_a_fixed_favourite_token_earns_nothing_in_grading():
    """Always returning the public probe's most likely token (3) fails the sampler's core test once inputs change."""
    check = check_sample_top_n
    fixed = lambda logits, n, generator=None: 3  # noqa: E731
    for seed in SECRET_SEEDS[:3]:
        core = next(o for o in outcomes(check, fixed, seed) if o.test.startswith(f"{sampler_checks.DRAWS} draws"))
        assert not core.passed


@pytest.mark.parametrize("exercise", VALID)
def test_probes_need_no_reference(exercise):
    """The probes run where coursekit.gpt2_inspection (the answers) cannot be imported; the judges then pass them."""
    assert_probes_need_none_of(["coursekit.gpt2_inspection"], CHECKS[exercise], VALID[exercise][1])


def test_judges_work_on_probe_data_alone():
    """The grader runs probes in a sandbox and judges elsewhere: results must survive probe_all -> wire -> judge."""
    from coursekit.grading import wire

    for exercise, functions in VALID.items():
        for seed in (PUBLIC_SEED, 2):
            results = [(name, wire.decode_value(wire.encode_value(data)))
                       for name, data in CHECKS[exercise].probe_all((functions[0],), seed)]
            assert all(outcome.passed for outcome in CHECKS[exercise].judge(results, seed)), exercise


def test_checks_never_change_what_the_student_passed_or_the_public_inputs():
    logits = sampler_checks.SAMPLER_LOGITS.clone()
    check_sample_top_n(gpt2.sample_top_n)
    assert torch.equal(logits, sampler_checks.SAMPLER_LOGITS)
    assert np.isfinite(gpt2_table.TABLE_LOGITS.numpy()).all()


# ---------------------------------------------------------------- a second, adversarial set: written from the notebook
# alone, one per class of issue 12 item 1 that applies; each must be named under the public seed and every secret one.


def similarity_correlation(vectors):
    """Centres every vector first: Pearson correlation, not the cosine."""
    return similarity_by_normalize(vectors - vectors.mean(dim=-1, keepdim=True))


def table_with_tensors(logits, k):
    top = torch.topk(logits.softmax(-1), k)
    return [(token, probability) for token, probability in zip(top.indices, top.values)]  # 0-d tensors


def table_of_numpy_floats(logits, k):
    top = torch.topk(logits.softmax(-1), k)
    return [(int(token), probability) for token, probability in zip(top.indices, top.values.numpy())]


def table_of_clamped_logits(logits, k):
    probabilities = logits.clamp(-30, 30).softmax(-1)  # "to avoid overflow"
    top = torch.topk(probabilities, k)
    return [(int(token), float(p)) for token, p in zip(top.indices, top.values)]


def sample_all_tokens(logits, n, generator=None):
    return int(torch.multinomial(logits.softmax(-1), 1, generator=generator))  # n ignored


def sample_returning_a_tensor(logits, n, generator=None):
    top = torch.topk(logits, n)
    return top.indices[torch.multinomial(top.values.softmax(-1), 1, generator=generator)]  # shape (1,)


def sample_with_naive_softmax(logits, n, generator=None):
    top = torch.topk(logits, n)
    weights = top.values.exp() / top.values.exp().sum()
    return int(top.indices[torch.multinomial(weights, 1, generator=generator)])


def sample_clamped_weights(logits, n, generator=None):
    top = torch.topk(logits, n)
    return int(top.indices[torch.multinomial(top.values.clamp(min=1e-6), 1, generator=generator)])


STUDENT_SIMILARITY_BUGS = [
    ("similarity matrix of", lambda v: similarity_by_normalize(v).clamp(min=0)),
    ("similarity matrix of|only one side", similarity_correlation),
    ("similarity matrix of", lambda v: torch.triu(similarity_by_normalize(v))),
    ("similarity matrix of|plain dot products", lambda v: (v @ v.T) / (v.norm(dim=-1, keepdim=True) + 1.0) ** 2),
    ("should return a torch.Tensor", lambda v: similarity_by_normalize(v).tolist()),
    ("similarity matrix of", lambda v: torch.cdist(v, v)),
]


STUDENT_TABLE_BUGS = [
    ("a Python int and a Python float", table_with_tensors),
    ("a Python int and a Python float|float32", table_of_numpy_floats),
    ("same probability.*clamped", table_of_clamped_logits),
    ("should return \\d+ rows, got \\d+", lambda logits, k: gpt2.top_k_table(logits, k + 1)),
    ("should return \\d+ rows, got 5|should return 5 rows", lambda logits, k: gpt2.top_k_table(logits, 5)),
    ("list of \\(token id, probability\\) pairs|should return", lambda logits, k: dict(gpt2.top_k_table(logits, k))),
    ("most likely first", lambda logits, k: sorted(gpt2.top_k_table(logits, k), key=lambda row: row[1])),
]


STUDENT_SAMPLER_BUGS = [
    ("you also sampled", sample_all_tokens),
    ("as a Python int, got a Tensor", sample_returning_a_tensor),
    ("with logits around 100 or -120", sample_with_naive_softmax),
    ("in proportion to their logits", sample_clamped_weights),
    ("about equally often", lambda logits, n, generator=None: int(
        torch.topk(logits, n).indices[torch.randint(0, n, (), generator=generator)])),
]


# ---------------------------------------------------------------- more valid alternatives, written differently


def similarity_by_einsum_in_float64(vectors):
    unit = vectors.double() / vectors.double().norm(dim=1, keepdim=True)
    return torch.einsum("ic,jc->ij", unit, unit)


def similarity_by_rsqrt(vectors):
    gram = vectors @ vectors.T
    inverse_lengths = torch.rsqrt(torch.diagonal(gram))
    return gram * inverse_lengths[:, None] * inverse_lengths[None, :]


def table_by_log_softmax_topk(logits, k):
    values, indices = torch.topk(F.log_softmax(logits, dim=-1), k)
    return [(int(token), float(math.exp(value))) for token, value in zip(indices.tolist(), values.tolist())]


def table_by_zip_tolist(logits, k):
    probabilities, tokens = torch.sort(torch.softmax(logits.double(), dim=0), descending=True)
    return list(zip(tokens[:k].tolist(), probabilities[:k].tolist()))


def sample_first_of_draws_without_replacement(logits, n, generator=None):
    top = torch.topk(logits, n)
    order = torch.multinomial(top.values.softmax(-1), n, replacement=False, generator=generator)
    return top.indices[order[0]].item()


def sample_from_masked_vocabulary(logits, n, generator=None):
    probabilities = torch.softmax(logits, dim=-1)
    keep = torch.zeros_like(probabilities, dtype=torch.bool)
    keep[torch.topk(logits, n).indices] = True
    return int(torch.multinomial(probabilities * keep, 1, generator=generator)[0])


MORE_VALID = {"cosine_similarity_matrix": [similarity_by_einsum_in_float64, similarity_by_rsqrt],
              "top_k_table": [table_by_log_softmax_topk, table_by_zip_tolist],
              "sample_top_n": [sample_first_of_draws_without_replacement, sample_from_masked_vocabulary]}

STUDENT_BUGS = {"cosine_similarity_matrix": STUDENT_SIMILARITY_BUGS, "top_k_table": STUDENT_TABLE_BUGS,
                "sample_top_n": STUDENT_SAMPLER_BUGS}


(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing, _) = student_tests(CHECKS, STUDENT_BUGS, MORE_VALID, SECRET_SEEDS)  # < 8 bugs each:
# this set adds to BUGS, whose breadth test_buggy_sets_are_broad asserts


def test_clamped_weights_are_not_called_greedy():
    for seed in (PUBLIC_SEED, *SECRET_SEEDS):
        for function in (sample_clamped_weights, sample_from(weights=lambda values: values.clamp(min=0))):
            assert not [o for o in failures(check_sample_top_n, function, seed) if "greedy" in o.message]
