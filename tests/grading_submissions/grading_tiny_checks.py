"""The checks of a two-exercise course used by tests/test_grading.py (`double` 2 points, `square` 3 points).

As in coursekit.checks, the probes run in the sandbox and the judges in the grader; the reference
(grading_tiny_reference.py) is imported by the judges only, so it never has to be in the sandbox. In a notebook
the probes use fixed inputs; in a grading run they draw secret ones, and the judges recompute the answers.
"""

import numpy as np
import torch

from coursekit.checks.core import Check, Test, array_mistake, is_public, probe_rng


def _ints():
    return [2, -3, 0] if is_public() else [int(n) for n in probe_rng().integers(-1000, 1000, 3)]


def _ints_judge(got):
    from grading_tiny_reference import reference_double

    expected = [reference_double(n) for n in _ints()]
    return None if got == expected else f"double of {_ints()} should be {expected}, got {got}"


def _floats():
    return np.array([0.0, 1.0, 2.0] if is_public() else probe_rng().normal(size=3).round(3), dtype=np.float32)


def _tensor_judge(name):
    def judge(got):
        import grading_tiny_reference as reference

        expected = getattr(reference, f"reference_{name}")(_floats())
        return array_mistake(got, expected.astype(np.float32), f"{name}(tensor)")
    return judge


def _int_judge(n):
    def judge(got):
        from grading_tiny_reference import reference_square

        value = n if is_public() else n + int(probe_rng().integers(2, 50))
        return None if got == reference_square(value) else f"square({value}) should be {value * value}, got {got}"
    return judge


def _square_of(n):
    return lambda square: square(n if is_public() else n + int(probe_rng().integers(2, 50)))


check_double = Check("double", ["a function double(x)"], [
    Test("double of small ints", lambda double: [double(n) for n in _ints()], _ints_judge),
    Test("double of a tensor", lambda double: double(torch.from_numpy(_floats())), _tensor_judge("double")),
])

check_square = Check("square", ["a function square(x)"], [
    Test("square(3)", _square_of(3), _int_judge(3)),
    Test("square(-2)", _square_of(-2), _int_judge(-2)),
    Test("square of a tensor", lambda square: square(torch.from_numpy(_floats())), _tensor_judge("square")),
])
