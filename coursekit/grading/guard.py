"""The audit hook installed in the sandbox before any student code runs (it cannot be removed).

Python raises an audit event for every sensitive operation (open, import, subprocess, ctypes, frame access …).
The hook asks one question: is student code on the call stack? Student code is any frame whose file is not part
of the Python installation or of coursekit (notebook cells are `<ipython-input-…>`, and so is anything the student
compiles or writes to disk and imports). If so, it refuses:
- importing the reference implementations the checks compare against (Policy.protected_modules);
- reading protected paths (solutions, checks, tests, …) or anything outside the allowed read roots, and writing
  outside the sandbox's own directory;
- starting processes, sending signals, ctypes, sockets, tracing/profiling, changing resource limits, the garbage
  collector's object lists, and frames (sys._getframe, tb_frame, gi_frame) asked for directly by student code:
  the ways to reach the probe's globals. (Libraries the student calls may still use frames.)
Refusals raise in the student's code (ImportError, PermissionError, …) and are reported with `report(kind,
detail, cheating)`; cheating ones cost the exercise being probed and are flagged for the instructor.
The hook never calls student code: it only looks at values of built-in types.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass

PROCESS_EVENTS = {"subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
                  "os.forkpty", "pty.spawn", "os.kill", "os.killpg", "signal.pthread_kill", "os.startfile"}
INTROSPECTION_EVENTS = {"sys.settrace", "sys.setprofile", "sys.addaudithook", "sys._current_frames",
                        "gc.get_objects", "gc.get_referrers", "gc.get_referents", "resource.setrlimit",
                        "resource.prlimit", "sys.remote_exec"}
FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
SOCKET_EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.sendmsg", "socket.getaddrinfo"}
CHANGE_EVENTS = {"os.remove", "os.rename", "os.rmdir", "shutil.rmtree", "os.truncate", "os.chmod", "os.chown",
                 "os.symlink", "os.link", "os.mkdir", "os.utime", "os.chdir", "os.chroot", "shutil.move"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


@dataclass(frozen=True)
class Policy:
    protected_modules: tuple[str, ...]  # e.g. ("coursekit.gpt", "coursekit.checks")
    protected_paths: tuple[str, ...]  # never readable (real paths)
    read_roots: tuple[str, ...]  # readable (minus protected_paths)
    write_roots: tuple[str, ...]  # writable: the sandbox's own directory
    trusted_code: tuple[str, ...]  # code from here is not student code (Python, site-packages, coursekit)


def _under(path: str, roots: tuple[str, ...]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def install(policy: Policy, report) -> None:
    """Install the hook. `report(kind, detail, cheating)` is called for each refusal (never with student objects)."""
    getframe, realpath, fspath_types = sys._getframe, os.path.realpath, (str, bytes)
    getpid = os.getpid
    fs_decode = os.fsdecode
    trusted = tuple(root.rstrip("/") + "/" for root in policy.trusted_code)
    protected_modules = policy.protected_modules
    student_files: set[str] = set()
    verdicts: dict[str, bool] = {}
    busy = [False]
    importlib_files = ("<frozen importlib", os.path.dirname(os.__file__) + "/importlib/")
    floor = getframe(1)  # the worker's own frame: whatever started it (python -c) is not student code

    def is_student(filename) -> bool:
        known = verdicts.get(filename)
        if known is None:
            known = filename in student_files or not (filename.startswith(trusted) or filename.startswith("<frozen"))
            verdicts[filename] = known
        return known

    def student_on_stack(frame) -> bool:
        while frame is not None and frame is not floor:
            if is_student(frame.f_code.co_filename):
                return True
            frame = frame.f_back
        return False

    def near(frame, depth=3) -> bool:
        """Student code is among the closest frames: it asked for this itself, not through a library."""
        while frame is not None and depth > 0:
            if is_student(frame.f_code.co_filename):
                return True
            frame, depth = frame.f_back, depth - 1
        return False

    def path_of(value):
        if type(value) in fspath_types:
            return realpath(fs_decode(value))
        if type(value).__name__ in ("PosixPath", "WindowsPath", "PurePosixPath") and type(value).__module__ == "pathlib":
            return realpath(str(value))
        return None

    def readable(path: str) -> bool:
        if _under(path, policy.protected_paths):
            return False
        if ".egg-info/" in path or ".dist-info/" in path:  # package metadata (importlib.metadata scans sys.path)
            return True
        own_proc = f"/proc/{getpid()}"
        if path.startswith("/proc/"):
            if path.endswith(("/mem", "/environ", "/maps", "/pagemap")):
                return False
            return path.startswith((own_proc + "/", "/proc/self/")) or path in ("/proc/cpuinfo", "/proc/meminfo",
                                                                                 "/proc/stat") or path.startswith("/proc/sys/")
        return _under(path, policy.read_roots)

    def refuse(error, kind, detail, cheating=False):
        report(kind, detail, cheating)
        raise error

    def check_path(event, value, write, caller):
        path = path_of(value)
        if path is None:
            if type(value) is int or value is None:  # wrapping a descriptor the process already holds
                return
            refuse(PermissionError("the grader's sandbox only opens files by name"), "file", f"{event} of a "
                   f"file descriptor or a custom path object ({type(value).__name__})", cheating=False)
        if write and not _under(path, policy.write_roots) and path != "/dev/null":
            refuse(PermissionError(f"the grader's sandbox does not allow writing {path}"), "file",
                   f"tried to write {path}", cheating=_under(path, policy.protected_paths))
        if not write and not readable(path):
            cheating = _under(path, policy.protected_paths)
            refuse(PermissionError(f"the grader's sandbox does not allow reading {path}"), "file",
                   f"tried to read {'protected ' if cheating else ''}{path}", cheating=cheating)

    def hook(event, args):
        if busy[0]:
            return
        if event == "object.__getattr__":
            if len(args) < 2 or args[1] not in FRAME_ATTRIBUTES:
                return
        elif event.startswith("ctypes."):
            pass
        elif event not in WATCHED:
            return
        busy[0] = True
        try:
            caller = getframe(1)
            if event == "compile" or event == "code.__new__":
                if len(args) > 1 and type(args[1]) is str and student_on_stack(caller):
                    student_files.add(args[1])  # code a student compiles is student code, whatever its name
                    verdicts.pop(args[1], None)
                return
            if not student_on_stack(caller):
                return
            direct = is_student(caller.f_code.co_filename)
            if event == "import":
                name = args[0] if args and type(args[0]) is str else ""
                importer = caller
                while importer is not None and importer.f_code.co_filename.startswith(importlib_files):
                    importer = importer.f_back
                if importer is not None and not is_student(importer.f_code.co_filename):
                    return  # a library importing what it needs (e.g. plumbing that loads a checkpoint)
                if any(name == module or name.startswith(module + ".") for module in protected_modules):
                    refuse(ImportError(f"{name} is a reference implementation the grader compares your work with; "
                                       "graded code cannot use it"), "import", f"imported {name}", cheating=True)
            elif event == "open":
                mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0)
                write = (type(mode) is str and any(c in mode for c in "wax+")) or (type(flags) is int
                                                                                    and flags & WRITE_FLAGS)
                check_path(event, args[0] if args else None, bool(write), caller)
            elif event in ("os.listdir", "os.scandir"):
                check_path(event, args[0] if args and args[0] is not None else ".", False, caller)
            elif event in CHANGE_EVENTS:
                for value in args[:2]:
                    if type(value) in fspath_types:
                        check_path(event, value, True, caller)
            elif event in PROCESS_EVENTS:
                if not near(caller):  # a library's own helper process (e.g. a font cache): refused quietly
                    raise PermissionError("the grader's sandbox does not allow starting processes")
                refuse(PermissionError("the grader's sandbox does not allow starting processes or sending signals"),
                       "process", f"{event} was blocked")
            elif event.startswith("ctypes."):
                if near(caller):  # libraries may load their shared libraries; student code may not use ctypes
                    refuse(PermissionError("the grader's sandbox does not allow ctypes"), "ctypes",
                           f"{event} was blocked", cheating=True)
            elif event in SOCKET_EVENTS:
                if not near(caller):  # a library checking for updates or downloads: refused quietly
                    raise PermissionError("the grader's sandbox has no network")
                refuse(PermissionError("the grader's sandbox has no network"), "network", f"{event} was blocked")
            elif (event == "sys._getframe" or event == "object.__getattr__") and direct:
                what = "sys._getframe" if event == "sys._getframe" else args[1]
                error = ValueError("call stack is not deep enough") if event == "sys._getframe" else AttributeError(what)
                refuse(error, "introspection", f"{what} (frames lead to the grader's code) was blocked",
                       cheating=True)
            elif event in INTROSPECTION_EVENTS:
                refuse(PermissionError(f"the grader's sandbox does not allow {event}"), "introspection",
                       f"{event} was blocked", cheating=True)
        finally:
            busy[0] = False

    WATCHED = ({"import", "open", "os.listdir", "os.scandir", "compile", "code.__new__", "sys._getframe"}
               | PROCESS_EVENTS | INTROSPECTION_EVENTS | SOCKET_EVENTS | CHANGE_EVENTS)
    sys.addaudithook(hook)
