"""Running one student notebook in a child process the parent controls, and reading back plain data.

The child (worker.py) gets its own session and process group, a fresh temporary directory as cwd and HOME, no
stdin, resource limits (address space, CPU time, file size, processes) and an environment without the parent's
secrets; it never learns where grades are written. The parent enforces wall-clock limits per cell, per exercise
and per notebook and kills the whole process group when one is exceeded, when the child stops talking, and
always at the end. A crash or kill is pinned on the cell or test that was running: that one is skipped and the
notebook is run again, so one infinite loop or `os._exit` costs one exercise, not the submission.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import coursekit
from coursekit.grading import wire

PACKAGE_ROOT = str(Path(coursekit.__file__).resolve().parent.parent)
BOOT = (f"import sys; sys.dont_write_bytecode = True; sys.path.insert(0, {PACKAGE_ROOT!r}); "
        "from coursekit.grading.worker import main; main()")
SYSTEM_READ_ROOTS = ("/usr", "/lib", "/lib64", "/etc", "/dev/null", "/dev/urandom", "/dev/random", "/dev/shm",
                     "/sys/devices/system/cpu", "/sys/fs/cgroup", "/opt")


@dataclass
class Limits:
    """Safe defaults; the tests use much smaller ones."""

    cell_seconds: float = 120.0
    exercise_seconds: float = 60.0
    notebook_seconds: float = 900.0  # all runs of one notebook together, restarts included
    memory_bytes: int = 6 * 2**30  # address space of the child (torch alone maps ~1 GB)
    exercise_memory_bytes: int = 2 * 2**30  # extra address space one exercise's tests may take
    file_bytes: int = 64 * 2**20
    processes: int = 512  # RLIMIT_NPROC when not root (root ignores it: the audit hook refuses processes)
    threads: int = 1  # torch threads per child; with --jobs N, N children share the cores
    restarts: int = 3
    startup_seconds: float = 120.0
    fork_server: bool = True  # fork sandboxes from a process that imported torch once (much faster)

    def grace(self, seconds: float) -> float:
        return seconds + max(2.0, 0.25 * seconds)


@dataclass
class Run:
    """What came back from a notebook's sandbox runs: plain data and reasons, nothing executable."""

    results: dict[str, list[tuple[str, object]]] = field(default_factory=dict)  # exercise -> [(test, data)]
    missing: dict[str, str] = field(default_factory=dict)  # exercise -> why it could not be probed at all
    cell_errors: dict[int, str] = field(default_factory=dict)
    flags: list[str] = field(default_factory=list)
    cheating: dict[str, list[str]] = field(default_factory=dict)  # exercise -> what it tried
    notes: list[str] = field(default_factory=list)
    names_used: dict[str, list[str]] = field(default_factory=dict)


def _policy(sandbox: str, protected: list[str], data_dirs: list[str]) -> dict:
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sysconfig.get_paths()["stdlib"],
                sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    prefixes = sorted(os.path.realpath(p) for p in prefixes if p)
    return {"protected_paths": [os.path.realpath(p) for p in protected],
            "read_roots": [sandbox, *map(os.path.realpath, data_dirs), *prefixes, *SYSTEM_READ_ROOTS],
            "write_roots": [sandbox],
            "trusted_code": prefixes}


def _environment(sandbox: str, data_dirs: list[str], threads: int) -> dict:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": sandbox, "TMPDIR": sandbox, "LANG": "C.UTF-8",
           "MPLBACKEND": "Agg", "MPLCONFIGDIR": os.path.join(sandbox, ".matplotlib"), "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "COURSEKIT_DATA_DIR": os.pathsep.join([os.path.join(sandbox, "cache"), *data_dirs])}
    return env


def _describe_exit(code: int | None, killed_by_us: str | None) -> str:
    if killed_by_us:
        return killed_by_us
    if code is None:
        return "the kernel stopped answering"
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        why = {"SIGSEGV": "crashed (segmentation fault)", "SIGKILL": "was killed (out of memory?)",
               "SIGXCPU": "used up its CPU time limit", "SIGABRT": "aborted"}.get(name, f"died of {name}")
        return f"the kernel {why}"
    return f"the kernel exited (exit code {code}, e.g. os._exit or sys.exit)"


class _Child:
    """One run of the worker: start it, read its frames, enforce the deadlines, always kill it at the end."""

    def __init__(self, job: dict, limits: Limits, data_dirs: list[str], protected: list[str], deadline: float,
                 server=None):
        self.limits, self.deadline, self.server = limits, deadline, server
        self.sandbox = tempfile.mkdtemp(prefix="coursekit-sandbox-")
        os.chmod(self.sandbox, 0o700)
        read, write = os.pipe()
        self.key = os.urandom(32)
        job = {**job, "channel_fd": write, "key": self.key.hex(), "policy": _policy(self.sandbox, protected, data_dirs)}
        Path(self.sandbox, "job.json").write_text(json.dumps(job))
        env = _environment(self.sandbox, data_dirs, limits.threads)
        self.process, self.returncode = None, None
        if server is not None:
            self.pid = server.spawn(self.sandbox, env, write)
        else:
            with open(os.path.join(self.sandbox, ".worker.log"), "wb") as log:
                self.process = subprocess.Popen(
                    [sys.executable, "-I", "-c", BOOT], cwd=self.sandbox, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, pass_fds=(write,), start_new_session=True, env=env)
            self.pid = self.process.pid
        os.close(write)
        self.read = read
        self.reader = wire.FrameReader(self.key)
        self.stage = ("startup", None, None)
        self.stage_deadline = time.monotonic() + limits.startup_seconds
        self.killed_by_us = None

    def messages(self):
        """Yield messages until the child finishes, dies, misbehaves or runs out of time."""
        total = 0
        try:
            while True:
                now = time.monotonic()
                limit = min(self.stage_deadline, self.deadline)
                if now >= limit:
                    self.killed_by_us = ("stopped: the notebook's total time limit was reached"
                                         if self.deadline <= self.stage_deadline else "stopped: time limit")
                    return
                ready, _, _ = select.select([self.read], [], [], limit - now)
                if not ready:
                    continue
                chunk = os.read(self.read, 1 << 20)
                if not chunk:
                    return
                total += len(chunk)
                if total > 4 * wire.MAX_FRAME:
                    raise wire.WireError("the child sent far more data than any probe returns")
                yield from self.reader.feed(chunk)
        finally:
            self.stop()

    def stop(self):
        if self.read is None:
            return
        try:
            if self.pid:
                os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.process is not None:
            try:
                self.returncode = self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        elif self.pid:
            self.returncode = self.server.wait(self.pid, 30)
        os.close(self.read)
        self.read = None

    def exit_reason(self) -> str:
        return _describe_exit(self.returncode, self.killed_by_us)

    def log_tail(self) -> str:
        try:
            return Path(self.sandbox, ".worker.log").read_bytes()[-2000:].decode("utf-8", "replace")
        except OSError:
            return ""

    def cleanup(self):
        shutil.rmtree(self.sandbox, ignore_errors=True)


def run_notebook(cells: list[dict], exercises: list[dict], tests: dict[str, list[str]], allowed_modules: list[str],
                 limits: Limits, data_dirs: list[str], protected: list[str], check_modules: list[str] = (),
                 server=None) -> Run:
    """Run a student's code cells and probe `exercises` ({exercise, check, arguments, fallback_arguments,
    after_cell}); `tests` lists each exercise's test names. Restarts past crashes and hangs, within the limits."""
    run = Run()
    skip_cells: set[int] = set()
    received: dict[str, dict[str, object]] = {item["exercise"]: {} for item in exercises}
    finished: set[str] = set()
    deadline = time.monotonic() + limits.notebook_seconds
    known_tests = {exercise: set(names) for exercise, names in tests.items()}
    for attempt in range(limits.restarts + 1):
        todo = [{**item, "skip_tests": sorted(received[item["exercise"]])} for item in exercises
                if item["exercise"] not in finished]
        if not todo or time.monotonic() >= deadline:
            break
        job = {"cells": cells, "skip_cells": sorted(skip_cells), "exercises": todo, "allowed_modules": allowed_modules,
               "check_modules": list(check_modules), "module_paths": _module_paths(check_modules),
               "limits": {"cell_seconds": limits.cell_seconds, "exercise_seconds": limits.exercise_seconds,
                          "memory_bytes": limits.memory_bytes, "exercise_memory_bytes": limits.exercise_memory_bytes,
                          "cpu_seconds": int(limits.notebook_seconds) + 10, "file_bytes": limits.file_bytes,
                          "processes": limits.processes, "threads": limits.threads}}
        child = _Child(job, limits, data_dirs, protected, deadline, server)
        done, corrupt = False, None
        exercise_started: dict[str, float] = {}
        try:
            for message in child.messages():
                kind = message.get("type")
                now = time.monotonic()
                if kind == "ready":
                    child.stage, child.stage_deadline = ("ready", None, None), now + 30
                elif kind == "stage" and message.get("stage") == "cell" and type(message.get("cell")) is int:
                    child.stage = ("cell", message["cell"], None)
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
                        message.get("exercise"), ()):
                    received[message["exercise"]][message["test"]] = wire.decode_value(message.get("data"))
                    if set(received[message["exercise"]]) >= known_tests[message["exercise"]]:
                        finished.add(message["exercise"])
                elif kind == "missing" and message.get("exercise") in received and type(message.get("reason")) is str:
                    run.missing[message["exercise"]] = message["reason"][:300]
                    finished.add(message["exercise"])
                elif kind == "flag" and type(message.get("detail")) is str and type(message.get("cheating")) is bool:
                    where = (f"cell {child.stage[1]}" if child.stage[0] == "cell" else
                             f"while testing {child.stage[1]}" if child.stage[0] == "probe" else "at the end")
                    run.flags.append(f"{where}: {message['detail'][:300]}")
                    if message["cheating"] and child.stage[0] == "probe":
                        run.cheating.setdefault(child.stage[1], []).append(message["detail"][:300])
                elif kind == "done":
                    done = True
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
        if corrupt:
            run.flags.append(f"the results channel was tampered with or corrupted ({corrupt}); grading stopped")
            run.cheating.setdefault("*", []).append("tampered with the grader's results channel")
            break
        stage, where, test = child.stage
        reason = child.exit_reason()
        if stage == "cell":
            skip_cells.add(where)
            run.cell_errors[where] = f"{reason}; this cell was skipped and the notebook run again without it"
        elif stage == "probe" and test:
            received[where][test] = _error(f"{reason} while running this test")
            if child.killed_by_us:  # the exercise's time is used up: its remaining tests are not run
                run.missing[where] = f"{reason}: the exercise's tests took longer than {limits.exercise_seconds:g} s"
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
    for exercise, tests_done in received.items():
        if tests_done:
            run.results[exercise] = list(tests_done.items())
        if exercise not in finished and exercise not in run.missing:
            run.missing[exercise] = ("not fully tested: the notebook ran out of time or crashed "
                                     "(remaining tests count as failed)")
    return run


def start_server(check_modules: list[str] = (), threads: int = 1):
    """A fork server for many notebooks (see forkserver.py); None if it cannot start."""
    from coursekit.grading.forkserver import ForkServer

    home = tempfile.mkdtemp(prefix="coursekit-forkserver-")
    env = _environment(home, [], threads)
    try:
        return ForkServer(PACKAGE_ROOT, list(check_modules), _module_paths(check_modules), env)
    except OSError:
        return None


def _module_paths(names) -> list[str]:
    """Where the extra check modules live, so that the isolated child (python -I) can import them too."""
    import importlib

    paths = []
    for name in names:
        module = importlib.import_module(name)
        root = Path(module.__file__).resolve().parent
        for _ in range(name.count(".")):
            root = root.parent
        paths.append(str(root))
    return paths


def _error(message: str):
    from coursekit.checks.core import ProbeError
    return ProbeError(message)
