"""NaN in what a probe reports never passes a test, however the judge compares (NaN > tol is False)."""

import math

import numpy as np
import pytest
import torch

from coursekit.checks import attention
from coursekit.checks.core import Check, Test

SECRET_SEEDS = (1, 2, 3)


def change_is_small(data) -> str | None:
    """A judge written the natural way: it only complains about a change it can see."""
    return "the output changed" if data["change"] > 1e-5 else None


TOLERANT = Check("tolerant", ["a function f(x) -> tensor"], [Test("f(x) is stable", lambda f: {"change": f(1.0)},
                                                                  change_is_small)])


@pytest.mark.parametrize("returned", [math.nan, np.array([0.0, math.nan]), [1.0, [math.nan]]],
                         ids=["float", "array", "nested list"])
def test_nan_anywhere_in_the_data_fails_in_the_notebook_and_in_the_grader(returned):
    check = Check("tolerant", ["f"], [Test("f is stable", lambda f: {"change": 0.0, "out": f()}, change_is_small)])
    with pytest.raises(AssertionError, match="NaN"):
        check(lambda: returned)
    [outcome] = check.judge(check.probe_all((lambda: returned,), 7), 7)
    assert not outcome.passed and "NaN" in outcome.message


def test_finite_data_and_infinities_are_left_to_the_judge():
    TOLERANT(lambda x: 0.0)  # passes
    check = Check("masked", ["f"], [Test("scores", lambda f: f(), lambda got: None)])
    check(lambda: np.array([0.5, -math.inf]))  # masked scores are -inf, and that is right


class ReturnsNaN(torch.nn.Module):
    """Any attention module's constructor; its forward returns NaN of the right shape (red team F3)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x.sum(1, keepdim=True).expand(*x.shape[:-1], -1) * math.nan


def test_nan_attention_fails_the_causal_self_attention_check():
    check = attention.check_causal_self_attention
    with pytest.raises(AssertionError):
        check(ReturnsNaN)
    for seed in SECRET_SEEDS:
        outcomes = check.judge(check.probe_all((ReturnsNaN,), seed), seed)
        assert check.fraction(outcomes) == 0, [o for o in outcomes if o.passed]
