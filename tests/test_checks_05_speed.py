"""benchmarks/check_speed.py times a check as the notebook and the grader call it, on one cell (cheap: no notebook
runs); its table itself is a benchmark, out of the test run."""

import importlib.util
from pathlib import Path

from coursekit import sampling

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "check_speed.py"
spec = importlib.util.spec_from_file_location("check_speed", SCRIPT)
check_speed = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_speed)


def test_a_check_cell_is_found_and_timed_publicly_and_secretly():
    from coursekit.checks import check_temperature

    namespace = {"check_temperature": check_temperature, "apply_temperature": sampling.apply_temperature}
    [(name, check, arguments)] = check_speed.check_calls("x = 1\ncheck_temperature(apply_temperature)\n", namespace)
    assert name == "check_temperature" and check is check_temperature and arguments == (sampling.apply_temperature,)
    timed = check_speed.time_check(check, arguments, seed=3)
    assert timed["passed"] and timed["public"] > 0 and timed["secret"] >= timed["slowest_seconds"] > 0
    assert timed["slowest"] in [test.name for test in check_temperature.tests]
    assert not check_speed.time_check(check, (lambda logits, t: logits * t,), seed=3)["passed"]
