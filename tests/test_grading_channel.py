"""What the sandbox sends is a claim the grader checks twice: its frames must come in the worker's own order
(protocol.Order), and its data is judged in a limited child (judging.Judges) that a crafted claim cannot hang
or exhaust. The corpus (test_grading.py: injects_frames, replaces_check_tests) shows both in a real batch."""

import sys
import time
from pathlib import Path

import pytest

from coursekit.checks.core import ProbeError
from coursekit.grading import grader, judging, protocol, wire

sys.path.insert(0, str(Path(__file__).parent / "grading_submissions"))

EXERCISES = [{"exercise": "double", "after_cell": 1}, {"exercise": "square", "after_cell": None}]
TESTS = {"double": ["ints", "tensor"], "square": ["three"]}


def stage_cell(index):
    return {"type": "stage", "stage": "cell", "cell": index}


def stage_probe(exercise, test):
    return {"type": "stage", "stage": "probe", "exercise": exercise, "test": test}


def result(exercise, test):
    return {"type": "test", "exercise": exercise, "test": test, "data": 1}


# What a worker running cells 0, 1, 3 (2 was skipped) sends, probing double after cell 1 and square at the end.
HONEST = [{"type": "ready"}, stage_cell(0), {"type": "cell_error", "cell": 0, "error": "NameError"}, stage_cell(1),
          stage_probe("double", ""), stage_probe("double", "ints"), result("double", "ints"),
          {"type": "flag", "kind": "process", "detail": "started a process"},
          stage_probe("double", "tensor"), result("double", "tensor"), stage_cell(3),
          {"type": "stage", "stage": "end"}, stage_probe("square", ""), stage_probe("square", "three"),
          result("square", "three"), {"type": "done"}]


def order(skip_tests=None):
    return protocol.Order([0, 1, 3], EXERCISES, TESTS, skip_tests or {})


def test_the_worker_s_own_order_is_accepted():
    checked = order()
    for message in HONEST:
        checked.check(message)


def test_a_restart_expects_only_the_tests_not_yet_judged():
    checked = order({"double": ["ints"]})
    messages = [m for m in HONEST if m not in (stage_probe("double", "ints"), result("double", "ints"))]
    for message in messages:
        checked.check(message)
    with pytest.raises(wire.WireError):  # the test judged in an earlier run comes again
        run_until(order({"double": ["ints"]}), HONEST, stage_probe("double", "ints"))


def run_until(checked, messages, last):
    for message in messages:
        checked.check(message)
        if message == last:
            return


@pytest.mark.parametrize("position, injected", [
    (6, result("double", "ints")),  # a second result for the test that just answered
    (5, result("double", "tensor")),  # a result for a test that is not running
    (4, result("double", "ints")),  # a result before its test is announced
    (3, result("square", "three")),  # during a cell: another exercise's result
    (3, stage_probe("square", "")),  # square is probed at the end, not after cell 1
    (3, stage_cell(1)),  # a cell announced again
    (2, stage_cell(3)),  # a cell out of turn (cell 1 comes first)
    (2, {"type": "cell_error", "cell": 0, "error": "x"}),  # a second error for cell 0
    (3, {"type": "cell_error", "cell": 3, "error": "=HYPERLINK(...)"}),  # an error for a cell not running
    (5, stage_probe("double", "tensor")),  # the tests out of the check's order
    (-1, stage_cell(0)),  # anything before "ready"
    (10, {"type": "done"}),  # done before the end
    (15, result("square", "three")),  # anything after done
    (5, {"type": "missing", "exercise": "square", "reason": "forged"}),  # an exercise given up out of turn
])
def test_a_frame_out_of_the_worker_s_order_is_junk(position, injected):
    checked = order()
    for message in HONEST[:position + 1]:
        checked.check(message)
    with pytest.raises(wire.WireError):
        checked.check(injected)


def test_the_worker_s_next_frame_after_an_injection_that_fits_is_junk():
    """Student code in cell 1 writes the double probes' frames first: the worker's own then repeat them."""
    checked = order()
    for message in HONEST[:4] + HONEST[4:10]:  # injected copies, in the worker's order
        checked.check(message)
    with pytest.raises(wire.WireError):
        checked.check(stage_probe("double", ""))  # the worker, after cell 1, starts probing double


@pytest.fixture(scope="module")
def judges():
    grader.register_check_modules(["grading_hostile_judges"])
    made = judging.Judges(["grading_hostile_judges"], memory_bytes=3 * 2**30, seconds=3)
    yield made
    made.close()


def test_a_claim_that_makes_a_judge_allocate_or_loop_fails_that_test_and_judging_goes_on(judges):
    started = time.monotonic()
    outcomes = judges.judge("check_greedy", [("allocates what it is told", 10**12),
                                             ("loops while it is told", [1]), ("honest", 1)], seed=7)
    took = time.monotonic() - started
    assert [o.passed for o in outcomes] == [False, False, True], outcomes
    assert "more memory than the grader allows" in outcomes[0].message
    assert "longer than 3 s" in outcomes[1].message
    assert took < 60  # the loop was stopped at its deadline (plus one restart of the judge child)
    again = judges.judge("check_greedy", [("allocates what it is told", 1), ("loops while it is told", []),
                                          ("honest", 2)], seed=7)
    assert [(o.passed, o.message) for o in again] == [(True, ""), (True, ""), (False, "expected 1, got 2")]


def test_results_that_did_not_run_are_not_sent_to_the_judges(judges):
    outcomes = judges.judge("check_greedy", [("loops while it is told", ProbeError("your code raised X"))], seed=7)
    assert [(o.passed, o.message) for o in outcomes][1] == (False, "your code raised X")
    assert all(not o.passed for o in outcomes) and "did not run" in outcomes[0].message
