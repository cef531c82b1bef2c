"""How an exercise is checked: a Check is a list of Tests; a Test is a probe and a judge.

- The probe calls the student's code on inputs the test chooses and returns *plain data*: None, bool, int,
  float, str, lists, dicts with string keys and numpy arrays (tensors are converted).
- The judge looks only at that plain data and returns None when it is right, or a message that names the
  likely mistake in words a student understands.

In a notebook both run in the student's kernel: `check_encode(encode)` prints one line or raises
AssertionError with the first failing test's message. The grader runs the probes in a sandbox, carries the
plain data out, and runs the judges in its own process, so nothing student code does can change a verdict:
a lying `__eq__` or a patched `torch.allclose` never reaches the judge.

Inputs can be public or secret. In a notebook every probe runs under the public run seed (0), so a student sees
the same inputs every time. The grader draws a secret run seed: a probe that asks `probe_rng()` (or
`probe_torch_generator()`) for its inputs gets other ones, and the judge, run in the grader's process under the
same seed, recomputes the expected values from the reference for exactly those inputs. Code that only imitates
the outputs the public probes expect then fails, and a forged result must be the right answer to inputs it never
saw. `is_public()` lets a probe keep hand-made inputs (ties, exact boundaries) for the notebook and vary them for
the grader.

Tests carry weights: an exercise's points are split by the weights of the tests passed (`Check.fraction`), so
an edge case can be worth less than the behaviour the exercise teaches. A test of a property that wrong code can
have too (the past never sees the future, dropout is off in eval, no biases, a ValueError for a bad argument) is
marked `needs_right_outputs`: in grading it earns its points only when the tests that compare outputs with the right
answer (the check's other tests) earned at least half of their weight. A causal running mean is not attention,
whatever properties it shares with it, and an `encode` that returns [] is right about '' only.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import hashlib
import linecache
import math
import numbers
import os
import sysconfig
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

PACKAGE_DIR = os.path.dirname(os.path.dirname(__file__)) + os.sep  # coursekit/: frames a student never needs
LIBRARY_DIRS = tuple({sysconfig.get_paths()[key] + os.sep for key in ("stdlib", "platstdlib", "purelib", "platlib")})
PLAIN_SCALARS = (type(None), bool, int, float, str)
PUBLIC_SEED = 0  # the run seed of every check called in a notebook
PROPERTY_WITHOUT_OUTPUTS = ("this property holds, but it earns points only once the outputs are right (see the other "
                            "tests' messages)")

_current = contextvars.ContextVar("probe_seed", default=(PUBLIC_SEED, PUBLIC_SEED))  # (run seed, test seed)


def seed_of_test(run_seed: int, exercise: str, test: str) -> int:
    """The seed of one test's inputs in one grading run: a hash of the run seed, the exercise and the test name.

    >>> seed_of_test(0, "encode", "a") == seed_of_test(0, "encode", "a") != seed_of_test(1, "encode", "a")
    True
    """
    digest = hashlib.sha256(f"{run_seed}\0{exercise}\0{test}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


@contextlib.contextmanager
def seeded(run_seed: int, exercise: str = "", test: str = ""):
    """Run the probes or judges inside under `run_seed` (see probe_rng): probes and judges must use the same."""
    token = _current.set((int(run_seed), seed_of_test(int(run_seed), exercise, test)))
    try:
        yield
    finally:
        _current.reset(token)


def is_public() -> bool:
    """True when running under the public run seed (a check called in a notebook), False in a grading run."""
    return _current.get()[0] == PUBLIC_SEED


def probe_rng() -> np.random.Generator:
    """A fresh numpy Generator for the current test's inputs: the same numbers for its probe and its judge."""
    return np.random.default_rng(_current.get()[1])


def shared_probe_rng(name: str) -> np.random.Generator:
    """A fresh numpy Generator seeded by the run seed and `name`, not by the test: the tests of a check that read
    one and the same expensive run (e.g. a training run) draw its inputs from here, so the run can be shared.

    >>> with seeded(3, "exercise", "a"):
    ...     a = shared_probe_rng("run").integers(10**9)
    >>> with seeded(3, "exercise", "b"):
    ...     bool(a == shared_probe_rng("run").integers(10**9))
    True
    """
    return np.random.default_rng(seed_of_test(_current.get()[0], "shared", name))


def probe_torch_generator() -> torch.Generator:
    """A fresh torch.Generator for the current test's inputs: the same numbers for its probe and its judge."""
    return torch.Generator().manual_seed(_current.get()[1] % 2**63)


@dataclass(frozen=True)
class Test:
    __test__ = False  # not a pytest test class, despite the name
    name: str  # what the test looks at, e.g. "encode('hello') uses the sorted vocabulary"
    probe: Callable[..., Any]  # (student objects...) -> plain data
    judge: Callable[[Any], str | None]  # plain data -> None, or the mistake
    weight: float = 1.0  # its share of the exercise's points, relative to the check's other tests
    needs_right_outputs: bool = False  # a property wrong code can share: earns only beside right outputs (above)


@dataclass(frozen=True)
class Outcome:
    test: str
    passed: bool
    message: str = ""


@dataclass
class Check:
    exercise: str  # the exercise id, as in the solution notebook's cell metadata
    expects: list[str]  # one description per argument, e.g. "a function encode(text) -> list[int]"
    tests: list[Test]
    accepts: list[Callable[[Any], bool]] = field(default_factory=list)  # per argument; default: callable

    def __call__(self, *student: Any) -> None:
        """Run every test in this kernel: print one line on success, raise AssertionError on the first failure."""
        __tracebackhide__ = True  # IPython and pytest then show the student the message, not this frame
        problem = self.argument_problem(student)
        if problem:
            raise for_the_student(TypeError(problem))
        for test in self.tests:
            try:
                data = self.probe(test, student)
            except Exception as error:
                raise for_the_student(error)
            with seeded(PUBLIC_SEED, self.exercise, test.name):
                message = test.judge(data) or nan_problem(data)
            if message:
                raise for_the_student(AssertionError(f"{self.exercise}: {message}"))
        print(f"✓ {self.exercise}: " + ("the test passed." if len(self.tests) == 1 else
                                        f"all {len(self.tests)} tests passed."))

    def argument_problem(self, student: tuple) -> str | None:
        """A message when the check was called with the wrong number or kind of objects, else None."""
        if len(student) != len(self.expects):
            wanted = "; ".join(self.expects)
            return f"check for {self.exercise!r} takes {len(self.expects)} argument(s) ({wanted}), got {len(student)}."
        accepts = self.accepts or [callable] * len(self.expects)
        for position, (value, accept, expected) in enumerate(zip(student, accepts, self.expects), start=1):
            if not accept(value):
                return f"argument {position} of the {self.exercise!r} check should be {expected}, got {describe(value)}."
        return None

    def probe(self, test: Test, student: tuple, run_seed: int = PUBLIC_SEED) -> Any:
        """Run one probe on copies of the student's objects and return its result as plain data."""
        __tracebackhide__ = True
        copies = tuple(_copy_if_possible(value) for value in student)
        try:
            with seeded(run_seed, self.exercise, test.name):
                result = test.probe(*copies)
        except NotImplementedError:
            raise
        except Exception as error:
            raise AssertionError(
                f"while testing '{test.name}', your code raised {type(error).__name__}: {error}"
            ) from error
        try:
            return to_plain(result)
        except TypeError as error:
            raise AssertionError(f"while testing '{test.name}': your code {error}") from None

    def probe_all(self, student: tuple, run_seed: int = PUBLIC_SEED) -> list[tuple[str, Any]]:
        """Run every probe, never raising: (test name, plain data or ProbeError) pairs, for the grader's sandbox."""
        results = []
        for test in self.tests:
            try:
                results.append((test.name, self.probe(test, student, run_seed)))
            except NotImplementedError:
                results.append((test.name, ProbeError("not implemented (NotImplementedError)")))
            except Exception as error:
                results.append((test.name, ProbeError(str(error))))
        return results

    def judge(self, results: list[tuple[str, Any]], run_seed: int = PUBLIC_SEED) -> list[Outcome]:
        """Judge probe results carried out of a sandbox: (test name, plain data or ProbeError) pairs, probed
        under `run_seed`."""
        by_name = dict(results)
        outcomes = []
        for test in self.tests:
            if test.name not in by_name:
                outcomes.append(Outcome(test.name, False, "this test did not run (time or memory limit, or a crash)"))
                continue
            data = by_name[test.name]
            if isinstance(data, ProbeError):
                outcomes.append(Outcome(test.name, False, data.message))
                continue
            with seeded(run_seed, self.exercise, test.name):
                message = test.judge(data) or nan_problem(data)
            outcomes.append(Outcome(test.name, message is None, message or ""))
        return self.counted(outcomes)

    def counted(self, outcomes: list[Outcome]) -> list[Outcome]:
        """The outcomes as they count for points: a passed `needs_right_outputs` test fails when the output tests
        earned less than half their weight. (A grader that judges test by test applies this to the whole list.)

        >>> right, wrong = Outcome("output", True), Outcome("output", False)
        >>> check = Check("x", ["f"], [Test("output", print, print), Test("causal", print, print, 1.0, True)])
        >>> [o.passed for o in check.counted([right, Outcome("causal", True)])]
        [True, True]
        >>> [o.passed for o in check.counted([wrong, Outcome("causal", True)])]
        [False, False]
        """
        properties = {test.name for test in self.tests if test.needs_right_outputs}
        outputs = [test for test in self.tests if not test.needs_right_outputs]
        passed = {o.test for o in outcomes if o.passed}
        if not properties or 2 * sum(t.weight for t in outputs if t.name in passed) >= sum(t.weight for t in outputs):
            return outcomes
        return [Outcome(o.test, False, PROPERTY_WITHOUT_OUTPUTS) if o.passed and o.test in properties else o
                for o in outcomes]

    def fraction(self, outcomes: list[Outcome]) -> float:
        """The share of the exercise's points these outcomes earn: weights of the tests passed / all weights.

        >>> check = Check("x", ["f"], [Test("core", print, print, 3.0), Test("edge", print, print, 1.0)])
        >>> check.fraction([Outcome("core", True), Outcome("edge", False)])
        0.75
        """
        weights = {test.name: test.weight for test in self.tests}
        total = sum(weights.values())
        earned = sum(weights.get(outcome.test, 0.0) for outcome in outcomes if outcome.passed)
        return earned / total if total else 0.0


def for_the_student(error: BaseException) -> BaseException:
    """Give `error` the traceback a student should see in Jupyter: the lines of their own notebook (the call of
    the check, and for an error their code raised, their code's lines), then the message; no coursekit frames.

    IPython (JupyterLab, nbclient, nbconvert) shows what an exception's `_render_traceback_()` returns.
    """
    error._render_traceback_ = lambda: _student_traceback(error)
    return error


def _is_students(filename: str) -> bool:
    """Notebook cells and the student's own files, not coursekit, Python or an installed library."""
    return not filename.startswith(PACKAGE_DIR) and not filename.startswith(LIBRARY_DIRS)


def _student_traceback(error: BaseException) -> list[str]:
    frames = []
    for exception in (error, error.__cause__):
        tb = exception.__traceback__ if exception is not None else None
        while tb is not None:
            code = tb.tb_frame.f_code
            here = (code.co_filename, tb.tb_lineno, code.co_name)
            if _is_students(code.co_filename) and not (frames and frames[-1][:2] == here[:2]):  # comprehensions
                frames.append(here)
            tb = tb.tb_next
    lines = []
    for filename, lineno, name in frames:
        lines.append(f"{_cell_name(filename)}, line {lineno}" + ("" if name == "<module>" else f", in {name}"))
        lines.append(f"----> {lineno} {linecache.getline(filename, lineno).strip()}")
    return [*lines, "", f"{type(error).__name__}: {error}"]


def _cell_name(filename: str) -> str:
    """'Cell In[3]' for a notebook cell's file in IPython, else the file's name."""
    try:
        from IPython import get_ipython

        named = get_ipython().compile.format_code_name(filename)
        return " ".join(named) if named else filename
    except Exception:  # not in IPython
        return filename


@dataclass(frozen=True)
class ProbeError:
    """A probe that raised instead of returning data (kept as text: it crossed a process boundary)."""

    message: str


def to_plain(value: Any) -> Any:
    """Convert a probe's result to plain data; anything else is refused.

    >>> to_plain((1, torch.tensor([2.0])))
    [1, array([2.], dtype=float32)]
    """
    if type(value) in PLAIN_SCALARS:
        return value
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, np.ndarray):
        return np.array(value, copy=True)
    if isinstance(value, np.generic):
        return value.item()
    if type(value) in (list, tuple):
        return [to_plain(item) for item in value]
    if type(value) is dict and all(type(key) is str for key in value):
        return {key: to_plain(item) for key, item in value.items()}
    raise TypeError(f"returned {describe(value)} where a plain value (number, string, list, tensor) was expected")


def nan_problem(data: Any) -> str | None:
    """No right answer in this course holds NaN, yet NaN slips through comparisons (`NaN > tol` is False), so a
    judge that found nothing wrong is overruled when the probe's data holds one.

    >>> nan_problem([1.0, np.array([0.5, np.nan])])
    'your code returned NaN (not a number): look for 0 * inf (e.g. dropout applied to -inf scores), 0 / 0, log(0) or exp of a large number'
    >>> nan_problem({"loss": 2.5}) is None
    True
    """
    if _holds_nan(data):
        return ("your code returned NaN (not a number): look for 0 * inf (e.g. dropout applied to -inf scores), "
                "0 / 0, log(0) or exp of a large number")
    return None


def _holds_nan(data: Any) -> bool:
    if type(data) is float:
        return math.isnan(data)
    if isinstance(data, np.ndarray):
        return data.dtype.kind in "fc" and bool(np.isnan(data).any())
    if type(data) is list:
        return any(_holds_nan(item) for item in data)
    if type(data) is dict:
        return any(_holds_nan(item) for item in data.values())
    return False


def type_and_value(value) -> dict:
    """A probe's view of a returned value: its type name and, when it is plain data, the value itself.

    >>> type_and_value((1, 2)), type_and_value(b"hi")
    ({'type': 'tuple', 'value': [1, 2]}, {'type': 'bytes', 'value': None})
    """
    try:
        plain = to_plain(value)
    except TypeError:  # e.g. a list of bytes: the judge says what to return instead
        plain = None
    return {"type": type(value).__name__, "value": plain}


def describe(value: Any, limit: int = 80) -> str:
    """A short description of a value for messages: its type and a truncated repr.

    >>> describe([1, 2, 3])
    'list [1, 2, 3]'
    """
    if isinstance(value, (torch.Tensor, np.ndarray)):
        return f"{type(value).__name__} of shape {tuple(value.shape)} and dtype {value.dtype}"
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(value).__name__} {text}"


def shown(items, limit: int = 12) -> str:
    """A list (or dict) for a message: its first `limit` items, and an ellipsis when some were left out, so a short
    list is never read as the whole of a long one.

    >>> shown([1, 2, 3], 2), shown({(1, 2): 2}), shown("abc")
    ('[1, 2, …] (3 in all)', '{(1, 2): 2}', "'abc'")
    """
    if isinstance(items, dict) and len(items) > limit:
        head = ", ".join(f"{key!r}: {value!r}" for key, value in list(items.items())[:limit])
        return f"{{{head}, …}} ({len(items)} in all)"
    if isinstance(items, list) and len(items) > limit:
        return f"{repr(items[:limit])[:-1]}, …] ({len(items)} in all)"
    return repr(items)


def integral(value) -> bool:
    """An int of any int-like type (Python's int, numpy's int64, ...), not a bool, a float or a 0-d tensor.

    >>> integral(3), integral(np.int64(3)), integral(3.0), integral(True)
    (True, True, False, False)
    """
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_module_class(value: Any) -> bool:
    """For Check.accepts: the class of a module itself, not an instance (checks build their own).

    >>> is_module_class(torch.nn.Linear), is_module_class(torch.nn.Linear(2, 2))
    (True, False)
    """
    return isinstance(value, type) and issubclass(value, torch.nn.Module)


def _copy_if_possible(value: Any) -> Any:
    """Checks never mutate what the student passed: each probe works on a deep copy when one can be made."""
    if callable(value) and not isinstance(value, torch.nn.Module):
        return value  # functions and classes are not copied (and need not be)
    if type(value) in (list, tuple) and all(type(item) in PLAIN_SCALARS for item in value):
        return type(value)(value)  # a shallow copy suffices, and is fast for a million characters
    try:
        return copy.deepcopy(value)
    except Exception:
        return value


def array_mistake(got: Any, expected: np.ndarray, what: str, atol: float = 1e-5) -> str | None:
    """For judges: None when `got` is an array equal to `expected` within atol, else what differs.

    >>> array_mistake(np.zeros((2, 3)), np.zeros((3, 2)), "the output")
    'the output should have shape (3, 2), got (2, 3)'
    """
    if not isinstance(got, np.ndarray):
        return f"{what} should be a tensor of shape {tuple(expected.shape)}, got {describe(got)}"
    if got.shape != expected.shape:
        return f"{what} should have shape {tuple(expected.shape)}, got {tuple(got.shape)}"
    if np.issubdtype(expected.dtype, np.floating) and not np.issubdtype(got.dtype, np.floating):
        return f"{what} should hold floating-point numbers, got dtype {got.dtype}"
    if np.issubdtype(expected.dtype, np.integer) and not np.issubdtype(got.dtype, np.integer):
        return f"{what} should hold integers (e.g. torch.long), got dtype {got.dtype}"
    if got.size and not np.allclose(got.astype(np.float64), expected.astype(np.float64), atol=atol, rtol=0):
        worst = float(np.max(np.abs(got.astype(np.float64) - expected.astype(np.float64))))
        return f"{what} has the right shape but wrong values (largest difference {worst:.3g})"
    return None
