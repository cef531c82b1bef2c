"""Running one student notebook in a contained child process, and reading back plain data.

Each run of a notebook is a fresh child started in this machine's containment (containment.py: a bubblewrap
sandbox with its own PID, mount and network namespaces, running as uid 65534). The job arrives on an unnamed
temporary file, results come back on the run's own pipe, and nothing about the run is left on disk. The parent
enforces wall-clock limits per cell, per exercise and per notebook and kills the sandbox (and with it every
process inside) when one is exceeded, when the child stops talking, and always at the end. A crash or kill is
pinned on the cell or test that was running: that one is skipped and the notebook is run again, so one infinite
loop or `os._exit` costs one exercise, not the submission; results of earlier runs are kept.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field

from coursekit.grading import containment, protocol, wire

BOOT = ("import os, sys; sys.dont_write_bytecode = True; sys.path.insert(0, os.environ['COURSEKIT_STAGED']); "
        "from coursekit.grading.worker import main; main({job}, {channel})")


@dataclass
class Limits:
    """Safe defaults; the tests use much smaller ones."""

    cell_seconds: float = 120.0
    exercise_seconds: float = 60.0
    notebook_seconds: float = 900.0  # all runs of one notebook together, restarts included
    memory_bytes: int = 6 * 2**30  # address space of the child (torch alone maps ~1 GB)
    exercise_memory_bytes: int = 2 * 2**30  # extra address space one exercise's tests may take
    file_bytes: int = 64 * 2**20
    processes: int = 64  # RLIMIT_NPROC of the sandbox's uid (threads count too)
    threads: int = 1  # torch threads per child; with --jobs N, N children share the cores
    restarts: int = 3
    startup_seconds: float = 120.0
    tmpfs_bytes: int = 512 * 2**20  # the sandbox's private HOME/TMPDIR (held in memory)
    judge_seconds: float = 120.0  # judging one test's claim, in the grader's limited judge child (judging.py)
    submission_seconds: float = 3600.0  # sandbox time of all of one submission's notebooks together
    submission_judge_seconds: float = 600.0  # judging all of one submission's tests together

    def grace(self, seconds: float) -> float:
        return seconds + max(2.0, 0.25 * seconds)


class Budget:
    """What is left of one submission's time for one kind of work (sandbox runs, judging), shared by the threads
    that spend it: `take` reserves up to a limit's worth, `give_back` returns what a run did not use. Once it is
    spent, `reason` says which budget it was.

    >>> budget = Budget(10, "spent")
    >>> budget.take(6), budget.take(6), budget.take(6)
    (6, 4, 0)
    >>> budget.give_back(3); budget.take(6)
    3
    """

    def __init__(self, seconds: float, reason: str):
        self.left, self.reason = seconds, reason
        self.lock = threading.Lock()

    def take(self, most: float) -> float:
        with self.lock:
            granted = max(0, min(most, self.left))
            self.left -= granted
            return granted

    def give_back(self, seconds: float) -> None:
        with self.lock:
            self.left += max(0, seconds)


@dataclass
class Run:
    """What came back from a notebook's sandbox runs: plain data and reasons, nothing executable."""

    results: dict[str, list[tuple[str, object]]] = field(default_factory=dict)  # exercise -> [(test, data)]
    missing: dict[str, str] = field(default_factory=dict)  # exercise -> why it could not be probed at all
    cell_errors: dict[int, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    names_used: dict[str, list[str]] = field(default_factory=dict)


def _describe_exit(code: int | None, killed_by_us: str | None) -> str:
    if killed_by_us:
        return killed_by_us
    if code is None:
        return "the kernel stopped answering"
    if code > 128 and code - 128 in signal.Signals._value2member_map_:  # bwrap reports a signal as 128 + n
        code = 128 - code
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        why = {"SIGSEGV": "crashed (segmentation fault)", "SIGKILL": "was killed (out of memory?)",
               "SIGXCPU": "used up its CPU time limit", "SIGABRT": "aborted"}.get(name, f"died of {name}")
        return f"the kernel {why}"
    return f"the kernel exited (exit code {code}, e.g. os._exit or sys.exit)"


class _Child:
    """One run of the worker: start it, read its frames, enforce the deadlines, always kill it at the end."""

    def __init__(self, job: dict, limits: Limits, staged: str, data_dirs: list[str], deadline: float,
                 deadline_reason: str):
        self.limits, self.deadline, self.deadline_reason = limits, deadline, deadline_reason
        self.read = self.process = self.returncode = None
        self.log = tempfile.TemporaryFile()  # unnamed: nothing of the run is left on disk
        self.held = contextlib.ExitStack()
        self.uid = self.held.enter_context(containment.sandbox_uid())
        with tempfile.TemporaryFile() as job_file:
            job_file.write(json.dumps(job).encode())
            job_file.seek(0)
            read, write = os.pipe()
            for_the_child = ()  # descriptors the containment hands the child (its seccomp filter)
            try:
                argv, options = containment.command(BOOT.format(job=job_file.fileno(), channel=write), staged,
                                                    data_dirs, limits.tmpfs_bytes, limits.threads, self.uid)
                self.home = options.pop("home", None)
                for_the_child = options.pop("pass_fds", ())
                self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                                stderr=subprocess.STDOUT,
                                                pass_fds=(job_file.fileno(), write, *for_the_child), **options)
            except BaseException:
                os.close(read)
                self.held.close()
                raise
            finally:
                for fd in (write, *for_the_child):
                    os.close(fd)
        self.read = read
        self.reader = wire.FrameReader()
        self.stage = ("startup", None, None)
        self.stage_deadline = time.monotonic() + limits.startup_seconds
        self.killed_by_us = None
        self.done = False  # the worker said it is done: give it a moment to exit by itself before the kill

    def messages(self):
        """Yield messages until the child finishes, dies, misbehaves or runs out of time."""
        total = 0
        try:
            while True:
                now = time.monotonic()
                limit = min(self.stage_deadline, self.deadline)
                if now >= limit:
                    self.killed_by_us = (f"stopped: {self.deadline_reason}"
                                         if self.deadline <= self.stage_deadline else "stopped: time limit")
                    return
                ready, _, _ = select.select([self.read], [], [], limit - now)
                if not ready:
                    continue
                chunk = os.read(self.read, 1 << 20)
                if not chunk:  # the worker is gone: let bwrap report how it ended before killing the rest
                    try:
                        self.returncode = self.process.wait(timeout=2)
                    except subprocess.TimeoutExpired:
                        pass
                    return
                total += len(chunk)
                if total > 4 * wire.MAX_FRAME:
                    raise wire.WireError("the child sent far more data than any probe returns")
                yield from self.reader.feed(chunk)
        finally:
            self.stop()

    def stop(self):
        """Kill the sandbox's process group (bwrap takes everything in its namespace with it) and reap it."""
        if self.read is None:
            return
        if self.done:
            try:
                self.returncode = self.process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            code = self.process.wait(timeout=30)
            self.returncode = code if self.returncode is None else self.returncode
        except subprocess.TimeoutExpired:
            pass
        os.close(self.read)
        self.read = None

    def exit_reason(self) -> str:
        return _describe_exit(self.returncode, self.killed_by_us)

    def log_tail(self) -> str:
        self.log.seek(0, os.SEEK_END)
        self.log.seek(max(0, self.log.tell() - 2000))
        return self.log.read().decode("utf-8", "replace")

    def cleanup(self):
        """After `stop`: in the uid fallback, kill whatever of the sandbox's uid is left (setsid daemons), then
        free the uid and the run's files."""
        self.log.close()
        with self.held:
            if containment.level() == "separate uid":
                containment.kill_uid(self.uid)
            if self.home:
                shutil.rmtree(self.home, ignore_errors=True)


def run_notebook(cells: list[dict], exercises: list[dict], tests: dict[str, list[str]], limits: Limits,
                 staged: str, data_dirs: list[str], unavailable: dict[str, str], run_seed: int,
                 budget: Budget | None = None) -> Run:
    """Run a student's code cells and probe `exercises` ({exercise, check, module, arguments, fallback_arguments,
    after_cell}) under `run_seed`, in a sandbox that holds the trimmed coursekit `staged`; `tests` lists each
    exercise's test names; `unavailable` notes why a module is missing. Restarts past crashes and hangs. All runs
    take at most `limits.notebook_seconds`, and at most what is left of the submission's `budget`."""
    run = Run()
    granted = limits.notebook_seconds if budget is None else budget.take(limits.notebook_seconds)
    if granted <= 0:
        run.missing = {item["exercise"]: f"not run: {budget.reason}" for item in exercises}
        return run
    deadline_reason = ("the notebook's total time limit was reached" if granted >= limits.notebook_seconds
                       else budget.reason)
    started = time.monotonic()
    skip_cells: set[int] = set()
    received: dict[str, dict[str, object]] = {item["exercise"]: {} for item in exercises}
    finished: set[str] = set()
    deadline = started + granted
    known_tests = {exercise: set(names) for exercise, names in tests.items()}
    try:
        for attempt in range(limits.restarts + 1):
            todo = [{**item, "skip_tests": sorted(received[item["exercise"]])} for item in exercises
                    if item["exercise"] not in finished]
            if not todo or time.monotonic() >= deadline:
                break
            job = {"cells": cells, "skip_cells": sorted(skip_cells), "exercises": todo, "unavailable": unavailable,
                   "run_seed": run_seed, "limits": {"cell_seconds": limits.cell_seconds, "exercise_seconds": limits.exercise_seconds,
                              "memory_bytes": limits.memory_bytes, "exercise_memory_bytes": limits.exercise_memory_bytes,
                              "cpu_seconds": int(limits.notebook_seconds) + 10, "file_bytes": limits.file_bytes,
                              "processes": limits.processes, "threads": limits.threads}}
            try:
                child = _Child(job, limits, staged, data_dirs, deadline, deadline_reason)
            except OSError as error:
                run.notes.append(f"the grader could not start a sandbox ({error}); results so far are kept")
                break
            done, corrupt = False, None
            exercise_started: dict[str, float] = {}
            claimed_since_cell: list[tuple[str, str]] = []  # voided if junk follows: maybe not the worker's
            order = protocol.Order([c["index"] for c in cells if c["index"] not in skip_cells], todo, tests,
                                   {item["exercise"]: item["skip_tests"] for item in todo})
            try:
                for message in child.messages():
                    order.check(message)  # a frame out of the worker's order was written by someone else
                    kind = message.get("type")
                    now = time.monotonic()
                    if kind == "ready":
                        child.stage, child.stage_deadline = ("ready", None, None), now + 30
                    elif kind == "stage" and message.get("stage") == "cell" and type(message.get("cell")) is int:
                        child.stage = ("cell", message["cell"], None)
                        claimed_since_cell.clear()
                        child.stage_deadline = now + limits.grace(limits.cell_seconds)
                    elif kind == "stage" and message.get("stage") == "probe" and message.get("exercise") in received:
                        exercise, test = message["exercise"], message.get("test")
                        if type(test) is not str:
                            raise wire.WireError("bad stage")
                        exercise_started.setdefault(exercise, now)
                        child.stage = ("probe", exercise, test)
                        child.stage_deadline = exercise_started[exercise] + limits.grace(limits.exercise_seconds)
                        names = message.get("names")
                        if type(names) is list and all(type(n) is str for n in names):
                            run.names_used[exercise] = names
                    elif kind == "stage" and message.get("stage") == "end":
                        child.stage, child.stage_deadline = ("end", None, None), now + limits.grace(limits.exercise_seconds)
                    elif kind == "cell_error" and type(message.get("cell")) is int and type(message.get("error")) is str:
                        run.cell_errors[message["cell"]] = message["error"][:300]
                    elif kind == "test" and message.get("exercise") in received and message.get("test") in known_tests.get(
                            message.get("exercise"), ()) and message["test"] not in received[message["exercise"]]:
                        received[message["exercise"]][message["test"]] = wire.decode_value(message.get("data"))
                        claimed_since_cell.append((message["exercise"], message["test"]))
                        if set(received[message["exercise"]]) >= known_tests[message["exercise"]]:
                            finished.add(message["exercise"])
                    elif kind == "missing" and message.get("exercise") in received and type(message.get("reason")) is str:
                        run.missing[message["exercise"]] = message["reason"][:300]
                        finished.add(message["exercise"])
                    elif kind == "flag" and type(message.get("detail")) is str:
                        where = (f"cell {child.stage[1]}" if child.stage[0] == "cell" else
                                 f"while testing {child.stage[1]}" if child.stage[0] == "probe" else "at the end")
                        line = f"{where}: {message['detail'][:300]}"
                        known_note = message.get("kind") == "import" and message["detail"] in unavailable.values()
                        if message.get("kind") == "import" and not known_note:  # text the grader never wrote
                            line = f"{where}: sent a note the grader does not know (forged?): {message['detail'][:200]}"
                        target = run.notes if known_note else run.flags
                        if line not in target and len(target) < 50:
                            target.append(line)
                    elif kind == "done":
                        done = child.done = True
                        break
                    else:
                        raise wire.WireError(f"unexpected message {str(kind)[:40]!r}")
            except wire.WireError as error:
                corrupt = str(error)
            finally:
                child.stop()
            tail = child.log_tail()
            child.cleanup()
            if done:
                break
            if corrupt:  # only the student's own code can write this run's pipe
                run.notes.append(f"your code wrote something that is not a result into the grader's channel "
                                 f"({corrupt}); the tests after that point did not run")
                for exercise, test in claimed_since_cell:  # the frames before the junk may be forged in order too
                    received[exercise][test] = _error("your code wrote into the grader's channel while this was "
                                                      "tested, so its result is not used")
                run.flags.append(f"wrote junk into its results channel ({corrupt})")
                break
            stage, where, test = child.stage
            reason = child.exit_reason()
            if stage == "cell":
                skip_cells.add(where)
                run.cell_errors[where] = f"{reason}; this cell was skipped and the notebook run again without it"
            elif stage == "probe" and test:
                received[where][test] = _error(f"{reason} while running this test")
                if child.killed_by_us:  # the exercise's (or the notebook's) time is used up: no more of its tests
                    run.missing[where] = reason if child.killed_by_us != "stopped: time limit" else (
                        f"{reason}: the exercise's tests took longer than {limits.exercise_seconds:g} s")
                    finished.add(where)
                if set(received[where]) >= known_tests[where]:
                    finished.add(where)
            elif stage == "probe":
                run.missing[where] = f"{reason} while looking at your objects"
                finished.add(where)
            elif stage == "startup":
                run.notes.append(f"the grader's sandbox failed to start ({reason}): {tail[-300:]}")
                break
            else:
                run.notes.append(f"{reason} after the last cell")
        else:
            run.notes.append(f"gave up after {limits.restarts + 1} runs of the notebook (crashes or time limits)")
    except Exception as error:  # a grader bug: keep what earlier runs of this notebook produced
        run.notes.append(f"internal grader error ({type(error).__name__}: {error}); results so far are kept")
    for exercise, tests_done in received.items():
        if tests_done:
            run.results[exercise] = list(tests_done.items())
        if exercise not in finished and exercise not in run.missing:
            why = (deadline_reason if granted < limits.notebook_seconds and time.monotonic() >= deadline
                   else "the notebook ran out of time or crashed")
            run.missing[exercise] = f"not fully tested: {why} (remaining tests count as failed)"
    if budget is not None:
        budget.give_back(granted - (time.monotonic() - started))
    return run


def _error(message: str):
    from coursekit.checks.core import ProbeError
    return ProbeError(message)
