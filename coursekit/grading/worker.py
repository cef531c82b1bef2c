"""The sandboxed child: runs one student notebook and probes its exercises; never judges anything.

Started by sandbox.py as `python -I -c …` in a fresh directory holding job.json (read, then deleted). It sets
its own resource limits, imports what the probes need, hides the reference implementations and the real checks
(students get a stand-in `coursekit.checks` whose checks do nothing), installs the audit hook (guard.py), and only
then runs the student's cells in an IPython shell, errors or not. Right after the cell that checks an exercise
(or at the end, for exercises whose cell is gone), it evaluates the check's argument names and runs each probe.
Every step is announced to the parent first, and every probe result is sent as soon as it exists, as wire
frames: if the child hangs or dies, the parent knows exactly which cell or test did it.
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
    if os.geteuid() != 0:  # root ignores RLIMIT_NPROC; the audit hook refuses new processes anyway
        limit(resource.RLIMIT_NPROC, limits.get("processes"))
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


def _coursekit_modules(package_dir: str) -> set[str]:
    names = set()
    for root, dirs, files in os.walk(package_dir):
        dirs[:] = [d for d in dirs if not d.startswith((".", "__"))]
        prefix = "coursekit" if root == package_dir else "coursekit." + os.path.relpath(root, package_dir).replace(
            os.sep, ".")
        names.add(prefix)
        names.update(f"{prefix}.{f[:-3]}" for f in files if f.endswith(".py") and f != "__init__.py")
    return names


def _not_reference(package_dir: str) -> set[str]:
    """coursekit modules that hold no answers: the build tools, the command line and the grader itself."""
    return {name for name in _coursekit_modules(package_dir)
            if name.split(".")[1:2] in (["grading"], ["build"], ["cli"], ["__main__"])}


def main(channel_fd: int | None = None) -> None:
    """Run the job in ./job.json; results go to channel_fd (default: the job's channel_fd)."""
    with open("job.json") as handle:
        job = json.load(handle)
    os.remove("job.json")
    key = bytes.fromhex(job["key"])
    channel_fd = job["channel_fd"] if channel_fd is None else channel_fd
    channel = os.dup2(channel_fd, 100 + int.from_bytes(os.urandom(2), "big") % 800)  # somewhere unguessable
    os.close(channel_fd)
    write = os.write
    _set_limits(job["limits"])
    out = _CappedOutput()
    sys.stdout = sys.stderr = out

    import numpy as np  # noqa: F401  (loaded before the hook, as the probes need them)
    import torch
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import coursekit
    from coursekit.checks import CHECKS
    from coursekit.checks.core import Check, ProbeError
    from coursekit.grading import guard, wire

    torch.set_num_threads(int(job["limits"].get("threads") or 1))
    extra = []
    for path in job.get("module_paths", []):
        sys.path.append(path)
    for name in job.get("check_modules", []):
        module = importlib.import_module(name)
        extra.append(name)
        CHECKS.update({key: value for key, value in vars(module).items()
                       if key.startswith("check_") and isinstance(value, Check)})
    checks = {item["check"]: CHECKS[item["check"]] for item in job["exercises"] if item["check"] in CHECKS}
    encode_value, make_frame = wire.encode_value, wire.frame
    import hashlib

    sha256 = hashlib.sha256  # a C function: patching the hashlib module later does not change it

    def send(message):
        data = make_frame(message, key, sha256)
        while data:
            try:
                written = write(channel, data)
            except OSError:
                os._exit(3)  # the channel is gone (closed by student code?): the parent will notice
            data = data[written:]

    flags_sent = [0]

    def report(kind, detail, cheating):
        flags_sent[0] += 1
        if flags_sent[0] <= 50:
            send({"type": "flag", "kind": kind, "detail": detail[:300], "cheating": bool(cheating)})

    # Hide the reference implementations and the real checks from student code.
    package_dir = os.path.dirname(coursekit.__file__)
    allowed = set(job["allowed_modules"]) | {"coursekit", "coursekit.data"}
    protected = sorted((_coursekit_modules(package_dir) | {m for m in sys.modules if m.startswith("coursekit.")})
                       - allowed - _not_reference(package_dir)) + extra
    stub = _stub_checks()
    hidden = []

    def hide():
        for name in protected:
            module = sys.modules.pop(name, None)
            if module is not None:
                hidden.append(module)
                parent, _, child = name.rpartition(".")
                if getattr(sys.modules.get(parent), child, None) is module:
                    delattr(sys.modules[parent], child)
        sys.modules["coursekit.checks"] = stub
        for name in extra:
            sys.modules[name] = stub
        coursekit.checks = stub

    hide()
    policy = job["policy"]
    policy = guard.Policy(protected_modules=tuple(protected),
                          protected_paths=tuple(policy["protected_paths"]) + (os.path.join(package_dir, "checks"),),
                          read_roots=tuple(policy["read_roots"]) + (package_dir,),
                          write_roots=tuple(policy["write_roots"]),
                          trusted_code=tuple(policy["trusted_code"]) + (package_dir,))

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

    def error_text(error):
        try:
            return f"{type(error).__name__}: {BaseException.__str__(error)}"[:300]
        except BaseException:
            return type(error).__name__

    limits = job["limits"]
    guard.install(policy, report)
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
                    result = check.probe(test, values)
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
                hide()
            try:
                data = encode_value(result)
                message = {"type": "test", "exercise": item["exercise"], "test": test.name, "data": data}
                if len(json.dumps(message)) > wire.MAX_FRAME - 1024:
                    raise wire.WireError("too large")
            except (wire.WireError, ValueError, RecursionError, MemoryError):
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


def _address_space() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


if __name__ == "__main__":
    main()
