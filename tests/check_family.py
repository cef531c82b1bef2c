"""Shared by the tests of a notebook's checks (tests/test_checks_sampling.py, tests/test_checks_gpt2.py): run a check
as the grader does (probe_all, then judge, under one run seed), and the tests every buggy set gets."""

import pytest


def outcomes(check, function, seed):
    return check.judge(check.probe_all((function,), seed), seed)


def failures(check, function, seed):
    return [outcome for outcome in outcomes(check, function, seed) if not outcome.passed]


def mistake_tests(checks: dict, bugs: dict):
    """Three tests over {exercise: {message regex: buggy function}}: each mistake is named in the notebook, each
    fails under a secret run seed (with plain numbers in its messages), and each exercise has at least 15."""
    @pytest.mark.parametrize("exercise, mistake", [(e, m) for e, named in bugs.items() for m in named])
    def test_each_mistake_is_named(exercise, mistake):
        with pytest.raises(AssertionError, match=mistake):
            checks[exercise](bugs[exercise][mistake])

    @pytest.mark.parametrize("exercise", bugs)
    def test_every_mistake_fails_under_a_secret_seed_too(exercise):
        for mistake, function in bugs[exercise].items():
            failed = failures(checks[exercise], function, seed=1)
            assert failed, (exercise, mistake)
            assert not [o for o in failed if "np.float" in o.message or "tensor(" in o.message], failed

    def test_buggy_sets_are_broad():
        assert all(len(named) >= 15 for named in bugs.values()), {e: len(named) for e, named in bugs.items()}

    return test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too, test_buggy_sets_are_broad


class _Blocker:
    """A meta-path finder that refuses to import the given modules (as the grader's sandbox lacks them)."""

    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name in self.names:
            raise ImportError(f"{name} is not in the sandbox")
        return None


def assert_probes_need_none_of(modules, check, function, seeds=(0, 2)):
    """Probing with `modules` unimportable (as in the grader's sandbox), then judging, passes `function`."""
    for seed in seeds:
        results = probe_without(modules, check, function, seed)
        assert all(outcome.passed for outcome in check.judge(results, seed)), results


def probe_without(modules, check, function, seed):
    """check.probe_all((function,), seed) with `modules` unimportable and unloaded, as in the grader's sandbox."""
    import sys

    saved = {name: sys.modules.pop(name) for name in modules if name in sys.modules}
    blocker = _Blocker(modules)
    sys.meta_path.insert(0, blocker)
    try:
        return check.probe_all((function,), seed)
    finally:
        sys.meta_path.remove(blocker)
        sys.modules.update(saved)
