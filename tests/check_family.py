"""Shared by the tests of a notebook's checks (tests/test_checks_sampling.py, test_checks_gpt2.py,
test_checks_attention.py, test_checks_gpt.py): run a check as the grader does (probe_all, then judge, under one run
seed), the tests every buggy set gets, and a detector of answer-like code in the modules a sandbox loads."""

import ast
import copy
import re
from pathlib import Path

import pytest

from coursekit.checks.core import PROPERTY_WITHOUT_OUTPUTS


def arguments(answer) -> tuple:
    """A check's arguments: a tuple as it is (e.g. (get_batch, train)), anything else as the only one."""
    return answer if isinstance(answer, tuple) else (answer,)


def outcomes(check, function, seed):
    return check.judge(check.probe_all(arguments(function), seed), seed)


def failures(check, function, seed):
    """The failed outcomes that name a mistake: a property test refused for want of right outputs names none."""
    return [outcome for outcome in outcomes(check, function, seed)
            if not outcome.passed and outcome.message != PROPERTY_WITHOUT_OUTPUTS]


def mistake_tests(checks: dict, bugs: dict):
    """Three tests over {exercise: {message regex: buggy function (or tuple of the check's arguments)}}: each
    mistake is named in the notebook, each fails under a secret run seed (with plain numbers in its messages), and
    each exercise has at least 15."""
    @pytest.mark.parametrize("exercise, mistake", [(e, m) for e, named in bugs.items() for m in named])
    def test_each_mistake_is_named(exercise, mistake):
        with pytest.raises(AssertionError, match=mistake):
            checks[exercise](*arguments(bugs[exercise][mistake]))

    @pytest.mark.parametrize("exercise", bugs)
    def test_every_mistake_fails_under_a_secret_seed_too(exercise):
        for mistake, function in bugs[exercise].items():
            failed = failures(checks[exercise], function, seed=1)
            assert failed, (exercise, mistake)
            assert not [o for o in failed if "np.float" in o.message or "tensor(" in o.message], failed

    def test_buggy_sets_are_broad():
        assert all(len(named) >= 15 for named in bugs.values()), {e: len(named) for e, named in bugs.items()}

    return test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too, test_buggy_sets_are_broad


def named_under_secret_seeds(checks: dict, bugs: dict, seeds=(1, 2)):
    """A test over {exercise: {message regex: buggy answer}}: under each secret run seed, a failing test's message
    names the mistake (the grader's feedback says what the notebook says)."""
    @pytest.mark.parametrize("exercise, mistake", [(e, m) for e, named in bugs.items() for m in named])
    def test_each_mistake_is_named_under_secret_seeds(exercise, mistake):
        for seed in seeds:
            messages = [o.message for o in failures(checks[exercise], bugs[exercise][mistake], seed)]
            assert any(re.search(mistake, message) for message in messages), (seed, messages)
    return test_each_mistake_is_named_under_secret_seeds


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


def student_tests(checks: dict, student_bugs: dict, more_valid: dict, secret_seeds=(1, 2, 3, 4, 5)):
    """Four tests over {exercise: [(message regex, buggy function)]} and {exercise: [valid functions]}: each valid
    function passes under the public and every secret seed; each bug's first failing test names it under every seed
    (with plain numbers); the notebook's stub and a function returning None score 0; every exercise has at least 8
    bugs and 3 valid alternatives."""
    seeds = (0, *secret_seeds)

    @pytest.mark.parametrize("exercise, function", [(e, f) for e, fs in more_valid.items() for f in fs],
                             ids=lambda value: getattr(value, "__name__", value))
    def test_more_valid_alternatives_pass_under_public_and_secret_seeds(exercise, function):
        for seed in seeds:
            assert failures(checks[exercise], function, seed) == [], (exercise, function.__name__, seed)

    @pytest.mark.parametrize("exercise, index", [(e, i) for e, bugs in student_bugs.items() for i in range(len(bugs))])
    def test_each_student_mistake_is_named_under_the_public_and_every_secret_seed(exercise, index):
        mistake, function = student_bugs[exercise][index]
        for seed in seeds:
            failed = failures(checks[exercise], function, seed)
            assert failed and re.search(mistake, failed[0].message), (seed, failed[:1])
            assert not [o for o in failed if "np.float" in o.message or "tensor(" in o.message], failed

    @pytest.mark.parametrize("exercise", checks)
    def test_a_stub_scores_nothing(exercise):
        def not_implemented(*args, **kwargs):
            raise NotImplementedError()

        for stub in (not_implemented, lambda *args, **kwargs: None):
            for seed in seeds[:3]:
                assert checks[exercise].fraction(outcomes(checks[exercise], stub, seed)) == 0.0

    def test_every_exercise_has_a_broad_set():
        assert all(len(student_bugs.get(exercise, ())) >= 8 for exercise in checks), \
            {exercise: len(student_bugs.get(exercise, ())) for exercise in checks}
        assert all(len(more_valid.get(exercise, ())) >= 3 for exercise in checks), \
            {exercise: len(more_valid.get(exercise, ())) for exercise in checks}

    return (test_more_valid_alternatives_pass_under_public_and_secret_seeds,
            test_each_student_mistake_is_named_under_the_public_and_every_secret_seed, test_a_stub_scores_nothing,
            test_every_exercise_has_a_broad_set)


# ---------------------------------------------------------------- answer-like code in modules a sandbox loads

TENSOR_OPS = {"transpose", "softmax", "masked_fill", "view", "tril", "triu", "cross_entropy", "layer_norm", "gelu",
              "split", "reshape", "scaled_dot_product_attention", "multinomial", "topk", "sort", "cumsum", "scatter"}


class _Shape(ast.NodeTransformer):
    """An expression's shape: variables and an object's parts (self.ln_1, attn) become `_`; tensor operations
    (transpose, softmax, ...), operators and constants stay."""

    def visit_Call(self, node):
        func = node.func
        node.args = [self.visit(argument) for argument in node.args]
        node.keywords = [self.visit(keyword) for keyword in node.keywords]
        if isinstance(func, ast.Attribute) and (func.attr in TENSOR_OPS or not isinstance(func.value, ast.Name)):
            node.func = ast.Attribute(value=self.visit(func.value), attr=func.attr, ctx=ast.Load())
        else:
            node.func = ast.Name(id="_", ctx=ast.Load())
        return node

    def visit_Name(self, node):
        return ast.Name(id="_", ctx=ast.Load())

    def visit_Attribute(self, node):
        self.generic_visit(node)
        return ast.Name(id="_", ctx=ast.Load()) if isinstance(node.value, ast.Name) else node


def computation_shapes(source: str, minimum: int = 7) -> dict[str, str]:
    """{shape: source} of every expression of `source` that computes (an operator or a tensor operation) and has
    at least `minimum` nodes; f-strings (messages) are left out."""
    found = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.expr) or any(isinstance(n, ast.JoinedStr) for n in ast.walk(node)):
            continue
        shape = _Shape().visit(copy.deepcopy(node))
        computes = any(isinstance(n, ast.BinOp) or (isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
                                                    and n.func.attr in TENSOR_OPS) for n in ast.walk(shape))
        if computes and sum(1 for _ in ast.walk(shape)) >= minimum:
            found.setdefault(ast.dump(shape, annotate_fields=False), ast.unparse(node))
    return found


def answer_like_code(reference_files, sources: dict[str, str]) -> list[str]:
    """The expressions of `sources` ({name: source}) shaped like one of the reference answers' expressions:
    "name: theirs ~ reference's". Probe modules must have none (student code can reach what is loaded)."""
    reference = {}
    for file in reference_files:
        reference.update(computation_shapes(Path(file).read_text(encoding="utf-8")))
    return [f"{name}: {code} ~ {reference[shape]}" for name, source in sources.items()
            for shape, code in computation_shapes(source).items() if shape in reference]
