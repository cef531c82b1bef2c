"""A property that wrong code can share earns nothing beside wrong outputs (core.Test.needs_right_outputs).

Each impostor below has the properties an exercise's property tests look at (causal, dropout in training, no
biases, a ValueError for a bad argument) and none of its substance; graded as the grader grades, it earns 0 of the
exercise, though its property tests, judged alone, pass. (04's MLP and Block judges already refuse to judge a
property before the output is right.)
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from coursekit import checks, gpt
from coursekit.checks.characters import corpus

SECRET = 20261202
GATED = "earns points only once the outputs are right"
VOCABULARY = set(corpus())


def graded(check, *student):
    outcomes = check.judge(check.probe_all(student, SECRET), SECRET)
    return check.fraction(outcomes), outcomes


def test_every_check_keeps_most_of_its_weight_on_its_outputs():
    for name, check in checks.CHECKS.items():
        outputs = sum(test.weight for test in check.tests if not test.needs_right_outputs)
        properties = sum(test.weight for test in check.tests if test.needs_right_outputs)
        assert outputs > properties, (name, outputs, properties)


class RunningMeanHead(nn.Module):
    """Causal, bias-free, dropout on its weights: a uniform average over the past, not attention (no q . k)."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.query = nn.Linear(n_embd, head_size, bias=False)
        self.key = nn.Linear(n_embd, head_size, bias=False)
        self.value = nn.Linear(n_embd, head_size, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        T = x.shape[1]
        scores = torch.zeros(T, T).masked_fill(torch.ones(T, T).tril() == 0, float("-inf"))
        return self.dropout(F.softmax(scores, dim=-1)) @ self.value(x)


class RunningMeanMulti(nn.Module):
    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()
        self.heads = nn.ModuleList(RunningMeanHead(n_embd, n_embd // n_head, block_size, dropout)
                                   for _ in range(n_head))
        self.proj = nn.Linear(n_embd, n_embd)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        return self.dropout(self.proj(torch.cat([head(x) for head in self.heads], dim=-1)))


class RunningMeanCausal(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head = config.n_head
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.attn_dropout = nn.Dropout(config.attn_pdrop)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        B, T, C = x.shape
        v = self.c_attn(x).split(C, dim=2)[2].view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        scores = torch.zeros(T, T).masked_fill(torch.ones(T, T).tril() == 0, float("-inf"))
        y = self.attn_dropout(F.softmax(scores, dim=-1)) @ v
        return self.resid_dropout(self.c_proj(y.transpose(1, 2).reshape(B, T, C)))


def greedy_sampler(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Rejects every bad argument as it should, then always returns the most likely token."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k <= 0:
        raise ValueError(f"top_k must be positive, got {top_k}")
    if top_p is not None and not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")
    return logits.argmax(dim=-1)


def silent_encode(text):
    """Right about '' and about unknown characters, and about nothing else."""
    unknown = [character for character in text if character not in VOCABULARY]
    if unknown:
        raise ValueError(f"character {unknown[0]!r} is not in the vocabulary")
    return []


GREEDY_CASES = {"temperature=0 is greedy: always the most likely token", "temperature=0.01 is practically argmax",
                "top_k=1 is greedy"}
IMPOSTORS = [  # (check, impostor, the tests it is right about)
    (checks.check_attention_head, RunningMeanHead, set()),
    (checks.check_multi_head_attention, RunningMeanMulti, set()),
    (checks.check_causal_self_attention, RunningMeanCausal, set()),
    (checks.check_sample, greedy_sampler, GREEDY_CASES),
    (checks.check_encode, silent_encode, {"encode('')"}),
]


@pytest.mark.parametrize("check, impostor, right_about", IMPOSTORS, ids=[check.exercise for check, *_ in IMPOSTORS])
def test_an_impostor_with_the_properties_earns_only_what_it_is_right_about(check, impostor, right_about):
    fraction, outcomes = graded(check, impostor)
    weights = {test.name: test.weight for test in check.tests}
    assert {o.test for o in outcomes if o.passed} == right_about, [(o.test, o.message) for o in outcomes]
    assert math.isclose(fraction, sum(weights[name] for name in right_about) / sum(weights.values()))
    assert any(GATED in o.message for o in outcomes), "no property held: the impostor tests nothing"


def test_the_right_answers_still_earn_every_property():
    for check, answer in [(checks.check_mlp, gpt.MLP), (checks.check_block, gpt.Block)]:
        fraction, outcomes = graded(check, answer)
        assert fraction == 1.0, [o for o in outcomes if not o.passed]
