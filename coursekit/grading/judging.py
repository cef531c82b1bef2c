"""The checks' judges, run in a child process of the grader with a memory limit and a deadline per test.

A judge is the course's own code, but what it looks at is a claim written by student code: a claim shaped to
make a judge loop or allocate (a huge hidden size, a sequence the judge replays step by step) must cost one
test, not the grader. So every judge call goes to one long-lived child (spawned once per batch: it imports
torch and the checks once, and keeps the references' caches warm), whose address space is capped; a test whose
judging raises (MemoryError included) fails with the reason, and one that takes longer than the deadline or
kills the child fails with a note, the child is replaced, and the batch goes on. All of one submission's tests
share its judging budget (sandbox.Budget, Limits.submission_judge_seconds): once it is spent they fail naming it.

>>> from coursekit.checks import CHECKS, ProbeError
>>> judges = Judges([], memory_bytes=4 * 2**30, seconds=60)
>>> outcomes = judges.judge("check_chars", [(t.name, ProbeError("x")) for t in CHECKS["check_chars"].tests], 1)
>>> [(o.passed, o.message) for o in outcomes][0]
(False, 'x')
>>> judges.close()
"""

from __future__ import annotations

import multiprocessing
import resource
import threading
import time

from coursekit.checks.core import Outcome
from coursekit.grading.sandbox import Budget



def _serve(connection, check_modules: list[str], memory_bytes: int) -> None:
    """The child: judge (check, test, data, seed) requests until the pipe closes; replies are (passed, message)."""
    import torch

    from coursekit.checks import CHECKS, Check
    from coursekit.grading.grader import register_check_modules

    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_bytes if hard == resource.RLIM_INFINITY else min(memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    torch.set_num_threads(1)  # the judges' tensors are small: one thread is many times faster
    register_check_modules(check_modules)
    connection.send("ready")  # the deadlines count from here: importing torch is not judging
    while True:
        try:
            name, test_name, data, seed = connection.recv()
        except EOFError:
            return
        check = CHECKS[name]
        try:
            [test] = [test for test in check.tests if test.name == test_name]
            [outcome] = Check(check.exercise, check.expects, [test], check.accepts).judge([(test_name, data)], seed)
            reply = (bool(outcome.passed), str(outcome.message))
        except MemoryError:
            reply = (False, "judging this result needed more memory than the grader allows (is it far too large?)")
        except BaseException as error:  # a judge that chokes on odd data fails that test only
            reply = (False, f"the result could not be judged ({type(error).__name__})")
        del data
        connection.send(reply)


class Judges:
    """`judge(check_name, results, seed)` -> Outcomes, each test judged in the limited child (thread-safe)."""

    def __init__(self, check_modules: list[str], memory_bytes: int, seconds: float):
        self.check_modules, self.memory_bytes, self.seconds = list(check_modules), memory_bytes, seconds
        self.process = self.connection = None
        self.lock = threading.Lock()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: none of the grader's threads
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs, self.check_modules, self.memory_bytes),
                                       daemon=True, name="coursekit-judges")
        self.process.start()
        theirs.close()
        # No deadline here: the child imports torch and the checks, which no student data reaches, and a starved
        # machine can take minutes over it. A deadline would fail an honest student's tests for the machine's load.
        while not self.connection.poll(1.0):
            if not self.process.is_alive():
                raise RuntimeError(f"the grader's judge process exited while starting (exit code "
                                   f"{self.process.exitcode})")
        if self.connection.recv() != "ready":
            raise RuntimeError("the grader's judge process did not say it was ready")

    def judge(self, name: str, results: list[tuple[str, object]], seed: int, budget: Budget | None = None
              ) -> list[Outcome]:
        """Each test's outcome; with `budget` (the submission's judging time), a test judged once it is spent
        fails with its reason, and one that spends it is stopped."""
        from coursekit.checks import CHECKS, Check, ProbeError

        check, by_name = CHECKS[name], dict(results)
        outcomes = []
        for test in check.tests:
            if test.name in by_name and not isinstance(by_name[test.name], ProbeError):
                outcomes.append(Outcome(test.name, *self._ask(name, test.name, by_name[test.name], seed, budget)))
            else:  # nothing to judge (the test did not run, or raised): no judge is called, so no need to ask
                single = Check(check.exercise, check.expects, [test], check.accepts)
                outcomes.extend(single.judge([r for r in results if r[0] == test.name], seed))
        return check.counted(outcomes)  # the child judged each test alone: properties are weighed here

    def _ask(self, name: str, test: str, data, seed: int, budget: Budget | None) -> tuple[bool, str]:
        with self.lock:
            granted = self.seconds if budget is None else budget.take(self.seconds)
            if granted <= 0:
                return False, f"not judged: {budget.reason}"
            started = time.monotonic()
            try:
                if self.process is None or not self.process.is_alive():
                    self._start()
                    started = time.monotonic()  # not charged: starting the child is not judging this submission
                self.connection.send((name, test, data, seed))
                if self.connection.poll(granted):
                    passed, message = self.connection.recv()
                    return bool(passed), str(message)
                why = (f"judging this result took longer than {self.seconds:g} s, so the grader stopped it"
                       if granted >= self.seconds else f"judging stopped: {budget.reason}")
            except (EOFError, OSError, RuntimeError) as error:
                why = f"judging this result stopped the grader's judge process ({type(error).__name__}: out of memory?)"
            finally:
                if budget is not None:
                    budget.give_back(granted - (time.monotonic() - started))
            self._stop()
            return False, why

    def _stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.connection.close()
        self.process = self.connection = None

    def close(self) -> None:
        with self.lock:
            self._stop()
