"""Where student code runs: a bubblewrap sandbox per notebook run, or the strongest fallback this machine has.

`bubblewrap` (bwrap) starts the worker in new PID, mount, network, IPC, UTS and cgroup namespaces. Its file system
is built from nothing: read-only binds of the operating system's libraries, the Python installation and the course
data, a read-only copy of coursekit that holds only the modules this notebook may use (`stage`), a private tmpfs
as HOME and TMPDIR, and a /proc that shows only the sandbox's own processes. The project tree, solutions/, tests/,
the grader's output folder, its environment and every other process are simply not there. The worker runs as
uid/gid 65534 (nobody) with no capabilities and no_new_privs, so its rlimits (processes included) hold; bwrap
kills everything in the namespace when the worker's parent goes, and the grader kills bwrap at the end of each run.

Fallbacks, weaker and said so: as root without bwrap, the worker runs as uid 65534 (cannot signal the grader or
write its files; reads whatever the machine lets "nobody" read); otherwise it runs as the grader's own user with
rlimits only.

>>> level() in LEVELS
True
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import coursekit
from coursekit.grading import references

LEVELS = {
    "bubblewrap": "bubblewrap sandbox (own PID/mount/network namespaces, uid 65534, only the Python, the data "
                  "and a trimmed coursekit visible)",
    "separate uid": "WEAKER: bubblewrap cannot run here; student code runs as uid 65534 with rlimits (it can "
                    "read world-readable files and use the network)",
    "rlimits only": "WEAKEST: bubblewrap cannot run here and the grader is not root; student code runs as your "
                    "own user with rlimits and an audit hook only",
}
NOBODY = 65534
HOME = "/tmp"  # inside the sandbox: a private tmpfs
STAGED = "/opt/coursekit"  # inside the sandbox: the trimmed coursekit
SYSTEM = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin", "/etc/ld.so.cache", "/etc/alternatives",
          "/etc/fonts", "/etc/ssl", "/etc/localtime", "/etc/mime.types")
WORKER_MODULES = ("coursekit/__init__.py", "coursekit/grading/__init__.py", "coursekit/grading/worker.py",
                  "coursekit/grading/guard.py", "coursekit/grading/wire.py", "coursekit/checks")
NOT_FOR_STUDENTS = ("coursekit.build", "coursekit.cli", "coursekit.__main__", "coursekit.doctor",
                    "coursekit.grading")
CHECKS_INIT = '"""The check modules this notebook\'s probes use (the worker imports each by name)."""\n'


def _bwrap_works(privileged: bool) -> bool:
    if not shutil.which("bwrap"):
        return False
    try:
        probe = subprocess.run(["bwrap", *_namespaces(privileged), "--ro-bind", "/", "/", "--proc", "/proc",
                                "--dev", "/dev", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@functools.cache
def level() -> str:
    """Which containment this machine gives student code (a key of LEVELS)."""
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    if sys.platform.startswith("linux") and _bwrap_works(root):
        return "bubblewrap"
    return "separate uid" if root else "rlimits only"


def _namespaces(privileged: bool) -> list[str]:
    shared = ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
              "--die-with-parent", "--new-session"]
    if privileged:  # real root: no user namespace needed; the worker drops to uid 65534 with setpriv
        return [*shared, "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*shared, "--unshare-user", "--uid", str(NOBODY), "--gid", str(NOBODY)]


def python_roots() -> list[str]:
    """The Python installation: the venv and the interpreter it points to (read-only in the sandbox)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             *sysconfig.get_paths().values()}
    roots = sorted({os.path.realpath(p) for p in paths if p and os.path.exists(p)})
    return [root for root in roots if not any(root != other and root.startswith(other + "/") for other in roots)]


def command(boot: str, staged: str, data_dirs: list[str], tmpfs_bytes: int, threads: int = 1) -> tuple[list[str], dict]:
    """The argv and Popen options that start `python -I -c boot` in this machine's containment.

    `staged` is the trimmed coursekit (see `stage`); inside the sandbox it is at STAGED, elsewhere used as is.
    """
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    python = [sys.executable, "-I", "-c", boot]
    kind = level()
    if kind == "bubblewrap":
        privileged = os.geteuid() == 0
        env.update({"HOME": HOME, "TMPDIR": HOME, "MPLCONFIGDIR": f"{HOME}/.matplotlib",
                    "COURSEKIT_DATA_DIR": os.pathsep.join([f"{HOME}/cache", *data_dirs]),
                    "COURSEKIT_STAGED": STAGED})
        argv = ["bwrap", *_namespaces(privileged), "--clearenv"]
        for name, value in env.items():
            argv += ["--setenv", name, value]
        binds = [(path, path) for path in [*python_roots(), *data_dirs]] + [(staged, STAGED)]
        # The private tmpfs comes first: a venv or data folder that lives under /tmp is then bound on top of it,
        # not hidden by it.
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", HOME]
        for folder in _parents([path for path in SYSTEM if os.path.exists(path)] + [dest for _, dest in binds]):
            if folder != HOME:  # bwrap would make them 0700: unreachable for uid 65534
                argv += ["--perms", "0755", "--dir", folder]
        for path in SYSTEM:
            argv += ["--ro-bind-try", path, path]
        for source, dest in binds:
            argv += ["--ro-bind", source, dest]
        argv += ["--chdir", HOME, "--remount-ro", "/"]
        if privileged:
            argv += ["/usr/bin/setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return argv + python, {"start_new_session": True}
    home = tempfile.mkdtemp(prefix="coursekit-home-")
    env.update({"HOME": home, "TMPDIR": home, "MPLCONFIGDIR": f"{home}/.matplotlib",
                "COURSEKIT_DATA_DIR": os.pathsep.join([f"{home}/cache", *data_dirs]), "COURSEKIT_STAGED": staged})
    options = {"start_new_session": True, "cwd": home, "env": env, "home": home}
    if kind == "separate uid":
        os.chown(home, NOBODY, NOBODY)
        options.update(user=NOBODY, group=NOBODY, extra_groups=[])
    return python, options


def _parents(destinations: list[str]) -> list[str]:
    """The folders above the bind mounts that are not themselves inside one, outermost first.

    >>> _parents(["/usr", "/work/venv", "/opt/coursekit"])
    ['/opt', '/work']
    """
    covered = lambda path: any(path == d or path.startswith(d.rstrip("/") + "/") for d in destinations)  # noqa: E731
    parents = {str(parent) for dest in destinations for parent in Path(dest).parents if str(parent) != "/"}
    return sorted(parent for parent in parents if not covered(parent))


def stage(notebook: str, check_modules: list[str], into: Path) -> Path:
    """A copy of coursekit for `notebook`'s sandbox: every module except the answers to its exercises (and what
    imports them), the build/CLI/grading internals (the worker's own three modules excepted), with the check
    modules (probes run in the sandbox) and extra `check_modules`' files. Returns the folder to put on sys.path.

    >>> import tempfile; staged = stage("05_prompting", [], Path(tempfile.mkdtemp()))
    >>> (staged / "coursekit/sampling.py").exists(), (staged / "coursekit/data.py").exists()
    (False, True)
    """
    package = Path(coursekit.__file__).resolve().parent
    into.mkdir(parents=True, exist_ok=True)
    forbidden = references.forbidden_modules(notebook)
    for name, file in references.module_names(package).items():
        hidden = name in forbidden or any(name == n or name.startswith(n + ".") for n in NOT_FOR_STUDENTS)
        relative = file.relative_to(package.parent).as_posix()
        if hidden and not relative.startswith(WORKER_MODULES):
            continue
        target = into / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(CHECKS_INIT if relative == "coursekit/checks/__init__.py" else file.read_text("utf-8"))
    for name in check_modules:  # a course's own checks: their module file only, never its neighbours
        import importlib

        file = Path(importlib.import_module(name).__file__).resolve()
        target = into / (name.replace(".", "/") + ".py")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(file, target)
    for folder in [into, *into.rglob("*")]:
        os.chmod(folder, 0o755 if folder.is_dir() else 0o644)
    return into


def unavailable(notebook: str) -> dict[str, str]:
    """The note for each coursekit module a submission for `notebook` may not import."""
    answers = set(references.ANSWERS.get(notebook, ()))
    notes = {}
    for name in sorted(references.forbidden_modules(notebook)):
        why = "holds the answers to" if name in answers else "uses the answers to"
        notes[name] = f"{name} {why} this notebook's exercises and is not available while grading"
    for name in NOT_FOR_STUDENTS:
        notes[name] = f"{name} is the course's tooling, not available while grading"
    return notes
