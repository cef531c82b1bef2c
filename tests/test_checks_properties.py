"""A property that wrong code can share earns nothing beside wrong outputs (core.Test.needs_right_outputs).

Each impostor below has the properties an exercise's property tests look at (causal, dropout in training, no
biases, a ValueError for a bad argument) and none of its substance; graded as the grader grades, it earns 0 of the
exercise, though its property tests, judged alone, pass. (04's MLP and Block judges already refuse to judge a
property before the output is right.)
"""

import math

import pytest
import torch

from coursekit import checks, gpt
from coursekit.checks.characters import corpus
from coursekit.checks.core import PROPERTY_WITHOUT_OUTPUTS
from test_checks_03_students import attend_with, causal_bug, head_bug, multi_bug

SECRET = 20261202
VOCABULARY = set(corpus())


def graded(check, *student):
    outcomes = check.judge(check.probe_all(student, SECRET), SECRET)
    return check.fraction(outcomes), outcomes


def test_every_check_keeps_most_of_its_weight_on_its_outputs():
    for name, check in checks.CHECKS.items():
        outputs = sum(test.weight for test in check.tests if not test.needs_right_outputs)
        properties = sum(test.weight for test in check.tests if test.needs_right_outputs)
        assert outputs > properties, (name, outputs, properties)


def no_queries_or_keys(self, q, k):
    """Every score 0: after the causal mask and the softmax, a uniform average over the past, not attention."""
    return torch.zeros(*q.shape[:-1], k.shape[-2])


# Causal, bias-free where asked, with every dropout in its place: running means with the notebook's modules.
RunningMeanHead = head_bug(scores=no_queries_or_keys)
RunningMeanMulti = multi_bug(head=RunningMeanHead)
RunningMeanCausal = causal_bug(attend=attend_with(scores=no_queries_or_keys))


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
                "top_k=1 is greedy", "temperature=0 with a tied maximum: the first argmax, no generator draws"}
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
    assert any(o.message == PROPERTY_WITHOUT_OUTPUTS for o in outcomes), "no property held: the impostor tests nothing"


def test_the_right_answers_still_earn_every_property():
    for check, answer in [(checks.check_mlp, gpt.MLP), (checks.check_block, gpt.Block)]:
        fraction, outcomes = graded(check, answer)
        assert fraction == 1.0, [o for o in outcomes if not o.passed]


def test_the_graders_judge_process_weighs_the_properties_too():
    """The grader judges test by test in a child process (grading/judging.py); the gate holds there as well."""
    from coursekit.grading.judging import Judges

    check = checks.check_attention_head
    judges = Judges([], memory_bytes=4 * 2**30, seconds=120)
    try:
        outcomes = judges.judge("check_attention_head", check.probe_all((RunningMeanHead,), SECRET), SECRET)
    finally:
        judges.close()
    assert check.fraction(outcomes) == 0.0
    assert any(o.message == PROPERTY_WITHOUT_OUTPUTS for o in outcomes)
