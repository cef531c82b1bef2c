"""The notebook 06 checks: they pass the reference and valid alternatives, and name each plausible mistake."""

import math

import pytest
import torch
from torch.nn import functional as F

from coursekit import gpt2_inspection as gpt2  # the reference answers of notebook 06
from coursekit.checks import gpt2 as checks
from coursekit.sampling import top_k_filter

# ---------------------------------------------------------------- cosine_similarity_matrix


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


@pytest.mark.parametrize("implementation", [gpt2.cosine_similarity_matrix, similarity_by_normalize,
                                            similarity_by_broadcasting, similarity_by_loops])
def test_cosine_similarity_accepts_valid_implementations(implementation):
    checks.check_cosine_similarity_matrix(implementation)


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
}


@pytest.mark.parametrize("mistake", SIMILARITY_BUGS)
def test_cosine_similarity_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_cosine_similarity_matrix(SIMILARITY_BUGS[mistake])


# ---------------------------------------------------------------- top_k_table


def table_by_argsort(logits, k):
    probabilities = logits.softmax(-1)
    order = probabilities.argsort(descending=True)[:k]
    return [(token.item(), probabilities[token].item()) for token in order]


def table_by_sorted(logits, k):
    exps = [math.exp(x) for x in logits.tolist()]
    total = sum(exps)
    return sorted(((i, e / total) for i, e in enumerate(exps)), key=lambda row: -row[1])[:k]


def table_of_tensors(logits, k):
    top = torch.topk(logits, k)
    return list(zip(top.indices, top.values.exp() / logits.exp().sum()))  # tensors in the pairs are fine


@pytest.mark.parametrize("implementation", [gpt2.top_k_table, table_by_argsort, table_by_sorted, table_of_tensors])
def test_top_k_table_accepts_valid_implementations(implementation):
    checks.check_top_k_table(implementation)


def table_from(values):
    def table(logits, k, largest=True):
        top = torch.topk(logits, k, largest=largest)
        return [(int(token), float(value)) for token, value in zip(top.indices, values(logits, top))]
    return table


TABLE_BUGS = {
    "returned the logits": table_from(lambda logits, top: top.values),
    "softmax of the k kept logits only": table_from(lambda logits, top: top.values.softmax(-1)),
    "log-probabilities": table_from(lambda logits, top: logits.log_softmax(-1)[top.indices]),
    "most likely first": lambda logits, k: list(reversed(gpt2.top_k_table(logits, k))),
    "least likely tokens": lambda logits, k: [(int(t), float(logits.softmax(-1)[t]))
                                              for t in torch.topk(logits, k, largest=False).indices],
    "should return 5 rows, got 4": lambda logits, k: gpt2.top_k_table(logits, k)[:-1] if k > 1 else [],
    "list of \\(token id, probability\\) pairs": lambda logits, k: torch.topk(logits.softmax(-1), k).values,
    "each row is \\(probability, token id\\)": lambda logits, k: [(p, t) for t, p in gpt2.top_k_table(logits, k)],
}


@pytest.mark.parametrize("mistake", TABLE_BUGS)
def test_top_k_table_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_top_k_table(TABLE_BUGS[mistake])


# ---------------------------------------------------------------- sample_top_n


def sample_with_filter(logits, n, generator=None):
    probabilities = top_k_filter(logits, n).softmax(-1)  # -inf outside the top n: probability 0
    return torch.multinomial(probabilities, 1, generator=generator).item()


def sample_by_inverse_cdf(logits, n, generator=None):
    values, tokens = torch.sort(logits, descending=True)
    probabilities = values[:n].softmax(-1)
    u = torch.rand((), generator=generator)
    position = int(torch.searchsorted(probabilities.cumsum(-1), u).clamp(max=n - 1))
    return tokens[position]  # a 0-d tensor is fine: int() of it is the id


@pytest.mark.parametrize("implementation", [gpt2.sample_top_n, sample_with_filter, sample_by_inverse_cdf])
def test_sample_top_n_accepts_valid_implementations(implementation):
    checks.check_sample_top_n(implementation)


def sample_uniformly(logits, n, generator=None):
    tokens = torch.topk(logits, n).indices
    return tokens[torch.randint(n, (1,), generator=generator)].item()


def sample_from(k_of_n, largest=True, softmax=True, use_generator=True):
    def sample(logits, n, generator=None):
        top = torch.topk(logits, k_of_n(n), largest=largest)
        weights = top.values.softmax(-1) if softmax else top.values
        choice = torch.multinomial(weights, 1, generator=generator if use_generator else None)
        return top.indices[choice].item()
    return sample


SAMPLER_BUGS = {
    "about equally often": sample_uniformly,
    "greedy decoding": lambda logits, n, generator=None: int(logits.argmax()),
    "least likely": sample_from(lambda n: n, largest=False),
    "off by one": sample_from(lambda n: n + 1),
    "needs non-negative weights": sample_from(lambda n: n, softmax=False),
    "pass the generator on": sample_from(lambda n: n, use_generator=False),
    "frequencies near": lambda logits, n, generator=None: sample_from(lambda n: n)(logits * 3, n, generator),
    "positions 0..2 among the kept tokens, not their token ids": lambda logits, n, generator=None: int(
        torch.multinomial(torch.topk(logits, n).values.softmax(-1), 1, generator=generator)),
}


@pytest.mark.parametrize("mistake", SAMPLER_BUGS)
def test_sample_top_n_names_the_mistake(mistake):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_sample_top_n(SAMPLER_BUGS[mistake])


def test_checks_never_change_what_the_student_passed():
    logits = checks.SAMPLER_LOGITS.clone()
    checks.check_sample_top_n(gpt2.sample_top_n)
    assert torch.equal(logits, checks.SAMPLER_LOGITS)


def test_judges_work_on_probe_data_alone():
    """The grader runs probes in a sandbox and judges elsewhere: results must survive probe_all -> judge."""
    for check, implementation in [(checks.check_cosine_similarity_matrix, gpt2.cosine_similarity_matrix),
                                  (checks.check_top_k_table, gpt2.top_k_table),
                                  (checks.check_sample_top_n, gpt2.sample_top_n)]:
        outcomes = check.judge(check.probe_all((implementation,)))
        assert all(outcome.passed for outcome in outcomes), outcomes
