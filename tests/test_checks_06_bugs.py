"""A third set of mistakes for notebook 06, written from the student notebook's text alone, and valid answers written
differently: each mistake is named under the public seed and every secret one, each valid answer passes them all."""

import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from check_family import student_tests
from coursekit.checks import check_cosine_similarity_matrix, check_sample_top_n, check_top_k_table

CHECKS = {"cosine_similarity_matrix": check_cosine_similarity_matrix, "top_k_table": check_top_k_table,
          "sample_top_n": check_sample_top_n}


# ---------------------------------------------------------------- cosine_similarity_matrix


def unit_rows(vectors):
    return vectors / vectors.norm(dim=-1, keepdim=True)


def sample_masking_the_callers_logits(logits, n, generator=None):
    logits[logits < torch.topk(logits, n).values[-1]] = float("-inf")
    return int(torch.multinomial(torch.softmax(logits, -1), 1, generator=generator))


SIMILARITY_BUGS = [
    ("\\(N, N\\)|similarity with itself|pairs", lambda v: F.cosine_similarity(v, v, dim=-1)),
    ("whole matrix", lambda v: v @ v.T / v.norm() ** 2),
    ("only one side is normalised", lambda v: unit_rows(v) @ v.T),
    ("columns", lambda v: unit_rows(v).T @ unit_rows(v)),
    ("wrong values", lambda v: (v / (v.norm(dim=-1, keepdim=True) + 1)) @ (v / (v.norm(dim=-1, keepdim=True) + 1)).T),
    ("should return a torch.Tensor", lambda v: (unit_rows(v) @ unit_rows(v).T).numpy()),
    ("wrong values", lambda v: (unit_rows(v) @ unit_rows(v).T).clamp(0, 1)),  # negative cosines lost
    ("wrong values", lambda v: torch.round(unit_rows(v) @ unit_rows(v).T, decimals=2)),
    ("changed the tensor", lambda v: v.div_(v.norm(dim=-1, keepdim=True)) @ v.T),
    ("raised|shape", lambda v: unit_rows(v.view(-1, 4)) @ unit_rows(v.view(-1, 4)).T),  # the notebook's 4 columns
    ("squared lengths", lambda v: (v / v.pow(2).sum(-1, keepdim=True)) @ (v / v.pow(2).sum(-1, keepdim=True)).T),
    ("cosine distance", lambda v: 1 - unit_rows(v) @ unit_rows(v).T),
]


def similarity_by_cdist(vectors):
    """|a - b|^2 = 2 - 2 cos for unit vectors."""
    unit = F.normalize(vectors, p=2, dim=1)
    return 1 - torch.cdist(unit, unit) ** 2 / 2


def similarity_by_mm_and_rsqrt(vectors):
    gram = torch.mm(vectors, vectors.t())
    inverse_length = gram.diagonal().rsqrt()
    return gram * inverse_length[:, None] * inverse_length[None, :]


def similarity_by_einsum(vectors):
    unit = vectors / torch.linalg.norm(vectors, dim=1, keepdim=True)
    return torch.einsum("ic,jc->ij", unit, unit)


# ---------------------------------------------------------------- top_k_table


def table(logits, k, probabilities=lambda x: x.softmax(-1), row=lambda i, p: (int(i), float(p)), largest=True,
          skip=0):
    probs = probabilities(logits)
    top = torch.topk(probs, k + skip, largest=largest)
    return [row(i, p) for i, p in list(zip(top.indices, top.values))[skip:]]


def table_zeroing_the_logits(logits, k):
    rows = table(logits, k)
    logits.zero_()  # "free the memory"
    return rows


def table_with_softmax_in_place(logits, k):
    logits.copy_(logits.softmax(-1))  # the caller's logits become probabilities
    return table(logits, k, probabilities=lambda x: x)


def table_skipping_equal_probabilities(logits, k):
    """Lists each probability once: a token tied with one already listed is skipped."""
    rows, listed = [], set()
    for token, probability in table(logits, logits.numel()):
        if probability not in listed:
            listed.add(probability)
            rows.append((token, probability))
    return rows[:k]


TABLE_BUGS = [
    ("same logit, so the same probability.*both belong", table_skipping_equal_probabilities),
    ("changed the logits it was given", table_zeroing_the_logits),
    ("changed the logits it was given", table_with_softmax_in_place),
    ("returned a zip, not a list", lambda x, k: zip(x.softmax(-1).topk(k).indices.tolist(),
                                                    x.softmax(-1).topk(k).values.tolist())),
    ("\\(probability, token id\\)", lambda x, k: table(x, k, row=lambda i, p: (float(p), int(i)))),
    ("softmax of the k kept logits", lambda x, k: [(int(i), float(p)) for i, p in zip(
        x.topk(k).indices, x.topk(k).values.softmax(-1))]),
    ("you returned the logits", lambda x, k: table(x, k, probabilities=lambda l: l)),
    ("log-probabilities", lambda x, k: table(x, k, probabilities=lambda l: l.log_softmax(-1))),
    ("a Python int and a Python float", lambda x, k: list(zip(x.softmax(-1).topk(k).indices,
                                                              x.softmax(-1).topk(k).values))),
    ("NaN|around 100", lambda x, k: table(x, k, probabilities=lambda l: l.exp() / l.exp().sum())),
    ("least likely", lambda x, k: table(x, k, largest=False)),
    ("should list tokens", lambda x, k: table(x, k, skip=1)),
    ("list of \\(token id, probability\\) pairs|should return \\d+ rows",
     lambda x, k: dict(table(x, k))),  # iterating a dict gives its keys only
    ("clamped", lambda x, k: table(x, k, probabilities=lambda l: l.clamp(-20, 20).softmax(-1))),
    ("probabilities should be", lambda x, k: table(x, k, row=lambda i, p: (int(i), round(float(p), 2)))),
    ("should return \\d+ rows", lambda x, k: table(x, 5)),  # the notebook's k hard-coded
    ("a Python int and a Python float", lambda x, k: table(x, k, row=lambda i, p: (float(i), float(p)))),
]


def table_by_topk_of_logits(logits, k):
    """topk of the logits (the same order), probabilities from the whole softmax."""
    top = logits.topk(k)
    probabilities = logits.softmax(0)[top.indices]
    return [(i, p) for i, p in zip(top.indices.tolist(), probabilities.tolist())]


def table_of_lists(logits, k):
    probs = F.softmax(logits.double(), dim=0)
    order = sorted(range(len(probs)), key=lambda i: float(probs[i]), reverse=True)[:k]
    return [[i, probs[i].item()] for i in order]


def table_as_a_tuple_after_a_copy(logits, k):
    """Softmax in place on a copy, and a tuple of pairs: the caller's logits are untouched."""
    probs = logits.clone()
    probs.sub_(probs.max()).exp_().div_(probs.sum())
    top = probs.topk(k)
    return tuple((int(i), float(p)) for i, p in zip(top.indices, top.values))


def table_by_logsumexp(logits, k):
    values, indices = torch.sort(logits, descending=True)
    log_z = torch.logsumexp(logits, dim=-1)
    return [(int(indices[j]), math.exp(float(values[j] - log_z))) for j in range(k)]


# ---------------------------------------------------------------- sample_top_n


def top_n(logits, n, weights=lambda values: values.softmax(-1), kept=lambda n: n, largest=True, generator=None,
          map_back=True):
    top = torch.topk(logits, kept(n), largest=largest)
    choice = torch.multinomial(weights(top.values), 1, generator=generator)
    return int(top.indices[choice]) if map_back else int(choice)


def sample_with_a_fresh_generator(logits, n, generator=None):
    return top_n(logits, n, generator=generator or torch.Generator())  # the same default seed at every call


SAMPLER_BUGS = [
    ("n capped at 3|off by one", lambda x, n, generator=None: top_n(x, n, kept=lambda n: min(n, 3),
                                                                    generator=generator)),
    ("kept logits shifted by their minimum", lambda x, n, generator=None: top_n(
        x, n, weights=lambda v: v - v.min() + 1e-6, generator=generator)),
    ("n capped at 10", lambda x, n, generator=None: top_n(x, n, kept=lambda n: min(n, 10), generator=generator)),
    ("without a generator all gave the same token.*global RNG", sample_with_a_fresh_generator),
    ("weights .* not the probabilities.*smoothing", lambda x, n, generator=None: top_n(
        x, n, weights=lambda v: v.softmax(-1) + 0.01, generator=generator)),
    ("weights .* not the probabilities.*half", lambda x, n, generator=None: top_n(
        x, n, weights=lambda v: v.half().softmax(-1).float(), generator=generator)),
    ("changed the logits it was given", sample_masking_the_callers_logits),
    ("n \\+ 1|off by one", lambda x, n, generator=None: top_n(x, n, kept=lambda n: n + 1, generator=generator)),
    ("only tokens|off by one", lambda x, n, generator=None: top_n(x, n, kept=lambda n: max(n - 1, 1),
                                                                 generator=generator)),
    ("around 100|overflows", lambda x, n, generator=None: top_n(
        x, n, weights=lambda v: v.exp() / v.exp().sum(), generator=generator)),
    ("Python int", lambda x, n, generator=None: torch.topk(x, n).indices[
        torch.multinomial(torch.topk(x, n).values.softmax(-1), 1, generator=generator)]),
    ("seeded differently|do not reseed", lambda x, n, generator=None: top_n(x, n, generator=torch.Generator().manual_seed(0))),
    ("least likely", lambda x, n, generator=None: top_n(x, n, largest=False, generator=generator)),
    ("equally often", lambda x, n, generator=None: int(torch.topk(x, n).indices[
        torch.randint(n, (1,), generator=generator)])),
    ("also sampled", lambda x, n, generator=None: int(torch.multinomial(x.softmax(-1), 1, generator=generator))),
    ("positions", lambda x, n, generator=None: top_n(x, n, map_back=False, generator=generator)),
    ("generator", lambda x, n, generator=None: top_n(x, n)),
    ("frequencies near|in proportion", lambda x, n, generator=None: top_n(x, n, weights=lambda v: (v / n).softmax(-1),
                                                            generator=generator)),
    ("generator|the draws do not vary", lambda x, n, generator=None: int(torch.topk(x, n).indices[
        torch.searchsorted(torch.topk(x, n).values.softmax(-1).cumsum(-1), torch.rand(1)).clamp(max=n - 1)])),
]


def sample_over_the_whole_vocabulary_masked(logits, n, generator=None):
    """-inf outside the top n, then the softmax over the whole vocabulary (the same renormalised weights)."""
    masked = torch.full_like(logits, -math.inf).scatter(0, logits.topk(n).indices, logits.topk(n).values)
    return int(torch.multinomial(masked.softmax(-1), num_samples=1, generator=generator).item())


def sample_of_top_probabilities(logits, n, generator=None):
    """topk of the probabilities; multinomial renormalises the weights itself."""
    top = logits.softmax(-1).topk(n)
    return top.indices[torch.multinomial(top.values, 1, generator=generator)].item()


def sample_by_sorting(logits, n, generator=None):
    values, ids = logits.sort(descending=True)
    position = torch.multinomial(F.softmax(values[:n], dim=0), 1, replacement=True, generator=generator)
    return ids[position].item()


def sample_by_gumbel_max(logits, n, generator=None):
    """argmax of the kept logits plus Gumbel noise is a draw from their softmax (no torch.multinomial)."""
    top = logits.topk(n)
    uniform = torch.rand(n, generator=generator).clamp_min(1e-12)
    return int(top.indices[(top.values - (-uniform.log()).log()).argmax()])


def sample_in_float64(logits, n, generator=None):
    top = logits.double().topk(n)
    return int(top.indices[torch.multinomial(top.values.softmax(-1), 1, generator=generator)])


VALID = {
    "cosine_similarity_matrix": [similarity_by_cdist, similarity_by_mm_and_rsqrt, similarity_by_einsum],
    "top_k_table": [table_by_topk_of_logits, table_of_lists, table_by_logsumexp, table_as_a_tuple_after_a_copy],
    "sample_top_n": [sample_over_the_whole_vocabulary_masked, sample_of_top_probabilities, sample_by_sorting,
                     sample_by_gumbel_max, sample_in_float64],
}
BUGS = {"cosine_similarity_matrix": SIMILARITY_BUGS, "top_k_table": TABLE_BUGS, "sample_top_n": SAMPLER_BUGS}

(test_third_set_valid_answers_pass_under_public_and_secret_seeds,
 test_third_set_mistakes_are_named_under_the_public_and_every_secret_seed, _,
 test_the_third_set_is_broad) = student_tests(CHECKS, BUGS, VALID)


# ---------------------------------------------------------------- judges trust only outputs for inputs they chose


def _judged(check, name, data, seed):
    test = next(t for t in check.tests if t.name.startswith(name))
    return {o.test: o for o in check.judge([(test.name, data)], seed)}[test.name]


@pytest.mark.parametrize("seed", [0, 4])
def test_an_identity_matrix_earns_nothing_on_the_diagonal_test(seed):
    right = dict(check_cosine_similarity_matrix.probe_all((similarity_by_einsum,), seed))["ones on the diagonal, symmetric"]
    assert _judged(check_cosine_similarity_matrix, "ones on the diagonal", right, seed).passed
    forged = {**right, "result": np.eye(len(right["result"]))}
    assert not _judged(check_cosine_similarity_matrix, "ones on the diagonal", forged, seed).passed
    changed = {**right, "given_after": right["given_after"] * 2, "input_changed": False}
    assert "changed the tensor" in _judged(check_cosine_similarity_matrix, "similarities of random", changed,
                                           seed).message


@pytest.mark.parametrize("seed", [0, 4])
def test_table_and_sampler_types_come_from_the_data(seed):
    """A claimed "types" list or type name is not read: the judge sees the entries and the id themselves."""
    rows = dict(check_top_k_table.probe_all((table_by_logsumexp,), seed))["rows are (int, float) pairs"]
    assert _judged(check_top_k_table, "rows are (int, float)", rows, seed).passed
    as_tensors = {"tables": [[[np.array(token), np.array(p)] for token, p in rows["tables"][0]]],
                  "types": ["int, float"]}
    assert "a Python int and a Python float" in _judged(check_top_k_table, "rows are (int, float)", as_tensors,
                                                        seed).message
    sample = "returns a Python int"
    drawn = dict(check_sample_top_n.probe_all((sample_by_sorting,), seed))[sample]
    assert type(drawn) is int and _judged(check_sample_top_n, sample, drawn, seed).passed
    for forged in ({"type": "int"}, "int", np.array(drawn), True, 10 ** 6):
        assert not _judged(check_sample_top_n, sample, forged, seed).passed, forged
