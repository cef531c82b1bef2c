"""The sandboxed child: runs one student notebook and probes its exercises; never judges anything.

Started by sandbox.py inside the containment (containment.py) as `python -I -c …`; the job (cells, exercises,
limits, the run seed) arrives on an inherited, unnamed file, results leave on this run's own pipe. It sets its
own resource limits, imports the check modules its probes need from the trimmed coursekit it was handed, gives
student code a stand-in `coursekit.checks` whose checks do nothing, installs guard.py's notes, and only then runs
the student's cells in an IPython shell, errors or not. Right after the cell that checks an exercise (or at the
end, for exercises whose cell is gone) it evaluates the check's argument names and runs each probe under the
grader's run seed. Every step is announced to the parent first and every probe result is sent as soon as it
exists: if the child hangs or dies, the parent knows exactly which cell or test did it. Nothing it sends is
trusted: the parent decodes plain data and judges it against inputs it recomputes itself.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import sys
import time
import types


class GraderTimeout(BaseException):
    """Raised by the alarm inside a cell or a probe that ran out of time (BaseException: harder to swallow)."""


def _set_limits(limits: dict) -> None:
    def limit(kind, value):
        if value:
            soft, hard = resource.getrlimit(kind)
            value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
            resource.setrlimit(kind, (value, value if kind != resource.RLIMIT_CPU else value + 5))

    limit(resource.RLIMIT_AS, limits.get("memory_bytes"))
    limit(resource.RLIMIT_CPU, limits.get("cpu_seconds"))
    limit(resource.RLIMIT_FSIZE, limits.get("file_bytes"))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    limit(resource.RLIMIT_NPROC, limits.get("processes"))  # counts the sandbox uid's processes and threads
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an oversized write fails instead of killing the child


class _CappedOutput:
    """Where the student's prints go: at most `room` characters are kept, the rest is dropped."""

    def __init__(self, room: int = 200_000):
        self.room, self.parts = room, []

    def write(self, text):
        if isinstance(text, str) and self.room > 0:
            self.parts.append(text[: self.room])
            self.room -= len(text)
        return len(text) if isinstance(text, str) else 0

    def flush(self):
        pass

    def isatty(self):
        return False


def _stub_checks() -> types.ModuleType:
    """What `coursekit.checks` is for student code in the sandbox: any check_x exists and does nothing."""
    stub = types.ModuleType("coursekit.checks", "Checks are run by the grader, not in the notebook.")

    def missing(name):
        if not name.startswith("check_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None

    stub.__getattr__ = missing
    stub.__path__ = []
    return stub


def main(job_fd: int, channel_fd: int) -> None:
    """Run the job read from job_fd (JSON); results go to channel_fd as wire frames."""
    with os.fdopen(job_fd, "rb") as handle:
        job = json.loads(handle.read())
    limits = job["limits"]
    _set_limits(limits)
    out = _CappedOutput()
    sys.stdout = sys.stderr = out

    import threading

    import matplotlib.pyplot  # noqa: F401  (its first import runs fc-list to list fonts: not the student's process)
    import numpy as np  # noqa: F401  (loaded before student code, as the probes need them)
    import torch
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import coursekit
    from coursekit.checks.core import ProbeError
    from coursekit.grading import guard, wire

    torch.set_num_threads(int(limits.get("threads") or 1))
    lock, write, kernel = threading.Lock(), os.write, os.getpid()

    def send(message):
        if os.getpid() != kernel:  # a process the student forked: only the kernel itself reports
            return
        data = wire.frame(message)
        with lock:
            while data:
                try:
                    written = write(channel_fd, data)
                except OSError:
                    os._exit(3)  # the channel is gone (closed by student code?): the parent will notice
                data = data[written:]

    flags_sent = [0]

    def report(kind, detail):
        flags_sent[0] += 1
        if flags_sent[0] <= 50:
            send({"type": "flag", "kind": kind, "detail": detail[:300]})

    checks, broken = {}, {}
    for item in job["exercises"]:
        try:
            checks[item["check"]] = getattr(importlib.import_module(item["module"]), item["check"])
        except Exception as error:  # e.g. a check module that imports a reference at its top level
            broken[item["check"]] = f"the grader could not load this check in the sandbox ({error_text(error)})"
    stub = _stub_checks()
    sys.modules["coursekit.checks"] = coursekit.checks = stub
    for name in {item["module"] for item in job["exercises"]} - {"coursekit.checks"}:
        if not name.startswith("coursekit."):
            sys.modules[name] = stub  # a course's own check module, as student code sees it
    guard.install(job["unavailable"], report)
    run_seed = int(job["run_seed"])

    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "NoColor"
    shell = InteractiveShell.instance(config=config)
    namespace = shell.user_ns
    timed_out = [False]

    def on_alarm(signum, frame):
        timed_out[0] = True
        raise GraderTimeout()

    def alarm(seconds):
        signal.signal(signal.SIGALRM, on_alarm)
        timed_out[0] = False
        signal.setitimer(signal.ITIMER_REAL, max(float(seconds), 0.001))

    def cancel():
        signal.setitimer(signal.ITIMER_REAL, 0)

    send({"type": "ready"})

    skip_cells = set(job["skip_cells"])
    pending = list(job["exercises"])

    def probe(item, final):
        """Probe one exercise; returns False when it should wait for a later point (names not defined yet)."""
        names = item["arguments"]
        if not all(name in namespace for name in names):
            fallback = item.get("fallback_arguments") or []
            if len(fallback) == len(names) and all(name and name in namespace for name in fallback):
                names = fallback
            elif not final:
                return False
            else:
                missing = [name for name in names if name not in namespace]
                send({"type": "missing", "exercise": item["exercise"],
                      "reason": f"your notebook never defines {', '.join(missing)}"})
                return True
        if item["check"] in broken:
            send({"type": "missing", "exercise": item["exercise"], "reason": broken[item["check"]]})
            return True
        check = checks[item["check"]]
        values = tuple(namespace[name] for name in names)
        started = time.monotonic()
        budget = float(limits["exercise_seconds"])
        send({"type": "stage", "stage": "probe", "exercise": item["exercise"], "test": "", "names": names})
        try:
            alarm(budget)
            problem = check.argument_problem(values)
            cancel()
        except BaseException as error:
            cancel()
            problem = "timed out" if timed_out[0] else error_text(error)
        if problem:
            if not final:
                return False
            send({"type": "missing", "exercise": item["exercise"], "reason": problem})
            return True
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        for test in check.tests:
            if test.name in item["skip_tests"]:
                continue
            send({"type": "stage", "stage": "probe", "exercise": item["exercise"], "test": test.name})
            room = budget - (time.monotonic() - started)
            if limits.get("exercise_memory_bytes"):
                try:
                    resource.setrlimit(resource.RLIMIT_AS, (min(_address_space() + int(limits["exercise_memory_bytes"]),
                                                               hard if hard > 0 else 2**62), hard))
                except (ValueError, OSError):
                    pass
            try:
                alarm(room)
                try:
                    result = check.probe(test, values, run_seed)
                finally:
                    cancel()
            except NotImplementedError:
                result = ProbeError("not implemented (NotImplementedError)")
            except GraderTimeout:
                result = ProbeError(f"timed out: the exercise's tests took more than {budget:g} s")
            except MemoryError:
                result = ProbeError("ran out of memory (the exercise's memory limit)")
            except BaseException as error:
                cause = error.__cause__ if isinstance(error, AssertionError) and error.__cause__ else error
                if isinstance(cause, GraderTimeout):
                    result = ProbeError(f"timed out: the exercise's tests took more than {budget:g} s")
                elif isinstance(cause, MemoryError):
                    result = ProbeError("ran out of memory (the exercise's memory limit)")
                elif isinstance(error, AssertionError):
                    result = ProbeError(error_text(error).removeprefix("AssertionError: "))
                else:
                    result = ProbeError(f"your code raised {error_text(error)}")
            finally:
                resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
            try:
                data = wire.encode_value(result)
                message = {"type": "test", "exercise": item["exercise"], "test": test.name, "data": data}
                if len(json.dumps(message)) > wire.MAX_FRAME - 1024:
                    raise wire.NotPlain("too large")
            except (ValueError, RecursionError, MemoryError):
                message = {"type": "test", "exercise": item["exercise"], "test": test.name,
                           "data": {"error": "the result was too large or not plain data"}}
            send(message)
        return True

    def probe_due(after_cell, final=False):
        for item in list(pending):
            if final or item["after_cell"] == after_cell:
                if probe(item, final):
                    pending.remove(item)

    for cell in job["cells"]:
        index = cell["index"]
        if index in skip_cells:
            continue
        send({"type": "stage", "stage": "cell", "cell": index})
        try:
            alarm(limits["cell_seconds"])
            result = shell.run_cell(cell["source"], store_history=False, silent=True)
            cancel()
            error = result.error_in_exec or result.error_before_exec
            if timed_out[0]:
                send({"type": "cell_error", "cell": index,
                      "error": f"stopped after {limits['cell_seconds']:g} s (the time limit for one cell)"})
            elif error is not None:
                alarm(2)
                text = error_text(error)
                cancel()
                send({"type": "cell_error", "cell": index, "error": text})
        except BaseException as error:  # a timeout between IPython's own handlers
            cancel()
            send({"type": "cell_error", "cell": index, "error": "stopped (time limit)" if timed_out[0]
                  else error_text(error)})
        probe_due(index)
    send({"type": "stage", "stage": "end"})
    probe_due(None, final=True)
    send({"type": "done"})
    os._exit(0)  # no atexit handlers or finalizers from student code


def error_text(error: BaseException) -> str:
    try:
        return f"{type(error).__name__}: {BaseException.__str__(error)}"[:300]
    except BaseException:
        return type(error).__name__


def _address_space() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


