"""The checks of a two-exercise course used by tests/test_grading.py (`double` 2 points, `square` 3 points).

`reference_double` plays the part of coursekit's reference implementations: the judges use it, and student
code must not be able to.
"""

import numpy as np
import torch

from coursekit.checks.core import Check, Test, array_mistake


def reference_double(x):
    return 2 * x


def _ints_judge(got):
    expected = [reference_double(n) for n in (2, -3, 0)]
    return None if got == expected else f"double(2), double(-3), double(0) should be {expected}, got {got}"


check_double = Check("double", ["a function double(x)"], [
    Test("double of small ints", lambda double: [double(2), double(-3), double(0)], _ints_judge),
    Test("double of a tensor", lambda double: double(torch.arange(3.0)),
         lambda got: array_mistake(got, np.array([0.0, 2.0, 4.0], dtype=np.float32), "double(tensor)")),
])

check_square = Check("square", ["a function square(x)"], [
    Test("square(3)", lambda square: square(3), lambda got: None if got == 9 else f"square(3) should be 9, got {got}"),
    Test("square(-2)", lambda square: square(-2), lambda got: None if got == 4 else f"square(-2) should be 4, got {got}"),
    Test("square of a tensor", lambda square: square(torch.tensor([1.0, 2.0])),
         lambda got: array_mistake(got, np.array([1.0, 4.0], dtype=np.float32), "square(tensor)")),
])
