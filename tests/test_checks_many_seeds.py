"""Right answers earn every point under many grading secrets, not only the few seeds the family tests use.

Secret probes draw sizes, configs and values from the run seed; a draw a right answer cannot handle costs every
honest student of that run points (red team 3's F8: one secret in ten drew fewer channels than heads, and the head's
judge divided by zero). Here the reference and the valid alternatives of the families' tests are graded under run
seeds made from 24 random secrets, the way the grader makes them.
"""

import random

import pytest
import test_checks_04_students
import test_checks_attention
import test_checks_gpt2
import test_checks_sampling
import test_checks_tokenization

from coursekit import gpt
from coursekit.checks import CHECKS
from coursekit.grading.grader import run_seed

SEEDS = [run_seed(f"{random.Random(index).getrandbits(128):032x}") for index in range(24)]

ANSWERS = [(check.exercise, answer) for check, answers in test_checks_attention.VALID for answer in answers]
ANSWERS += [(exercise, answer) for family in (test_checks_sampling.VALID, test_checks_gpt2.VALID)
            for exercise, answers in family.items() for answer in answers]
ANSWERS += [("mlp", gpt.MLP), ("block", gpt.Block), ("gpt_constructor", gpt.GPT), ("forward", gpt.GPT)]
ANSWERS += [("forward", answer) for answer in test_checks_04_students.MORE_VALID["forward"]]
ANSWERS += [("hf_tokenizer", make()) for make in test_checks_tokenization.HF_VALID.values()]
BY_EXERCISE = {check.exercise: check for check in CHECKS.values()}


@pytest.mark.parametrize("exercise, answer", ANSWERS, ids=lambda value: getattr(value, "__name__", value))
def test_a_right_answer_gets_full_marks_under_every_secret(exercise, answer):
    check = BY_EXERCISE[exercise]
    lost = {}
    for seed in SEEDS:
        outcomes = check.judge(check.probe_all((answer,), seed), seed)
        if check.fraction(outcomes) != 1.0:
            lost[seed] = [(o.test, o.message) for o in outcomes if not o.passed]
    assert not lost, lost
