"""Where student code runs: a bubblewrap sandbox per notebook run, or the strongest fallback this machine has.

`bubblewrap` (bwrap) starts the worker in new PID, mount, network, IPC, UTS and cgroup namespaces. Its file system
is built from nothing: read-only binds of the operating system's libraries, the Python installation and the course
data, a read-only copy of coursekit that holds only the modules this notebook may use (`stage`), a private tmpfs
as HOME and TMPDIR, and a /proc that shows only the sandbox's own processes. The project tree, solutions/, tests/,
the grader's output folder, its environment and every other process are simply not there. The worker runs as
a fresh uid for each run (see UID_BLOCK; as the user namespace's 65534 when not root) with no capabilities and
no_new_privs, so its rlimits (processes included) hold; a course installed into that Python is hidden; bwrap kills
everything in the namespace when the worker's parent goes, and the grader kills bwrap at the end of each run. A
seccomp filter (`seccomp_filter`) refuses the system calls whose kernel state no namespace separates: the kernel
keyrings (a key added in one run could be read by a later one), bpf, perf_event_open, userfaultfd and io_uring.

Fallbacks, weaker and said so in one line (`describe`): as root without bwrap, the worker runs as a uid of its
own (a fresh one for each run, see UID_BLOCK) with the rlimits: it cannot read the grader's private
files or signal the grader or another sandbox, and every process of that uid is killed at the end of the run;
but it reads whatever the machine lets anyone read and can use the network. Otherwise it runs as the grader's
own user with rlimits only. `COURSEKIT_CONTAINMENT=separate-uid` or `rlimits-only` picks a fallback on purpose.

>>> level() in LEVELS
True
"""

from __future__ import annotations

import compileall
import contextlib
import functools
import itertools
import os
import platform
import secrets
import shutil
import struct
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

import coursekit
from coursekit.grading import references

LEVELS = {
    "bubblewrap": "bubblewrap sandbox (own PID/mount/network namespaces and uid, a seccomp filter, only the "
                  "Python, the data and a trimmed coursekit visible)",
    "separate uid": "WEAKER: bubblewrap cannot run here; student code runs as a uid of its own "
                    "with rlimits (it can read world-readable files and use the network)",
    "rlimits only": "WEAKEST: bubblewrap cannot run here; student code runs as the grader's own user with rlimits "
                    "and an audit hook only",
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
FONTS = "matplotlib-fonts"  # next to the staged copies: matplotlib's font list, built once per batch (see stage)
CHECKS_INIT = '"""The check modules this notebook\'s probes use (the worker imports each by name)."""\n'


ALLOW_ROOT = "COURSEKIT_ALLOW_ROOT_STUDENT_CODE"  # "1": grade as root although student code would run as root
ALLOW_ROOT_FLAG = "--allow-root-student-code"
FORCE = "COURSEKIT_CONTAINMENT"  # "separate-uid" or "rlimits-only": use a fallback although bwrap works (tests)
# A uid of its own for every sandbox run, never used twice: from a block drawn at random for this grader process
# (no account uses them), the next one for each run. Sandboxes cannot signal each other, share no process limit,
# and leave nothing per uid behind for a later one (a kernel keyring key outlives the run that added it, while the
# uid's record is kept); neither another grader on the machine nor a later batch gets the same uids (so the uid
# fallback's kill of "every process of that uid" reaches only this run's).
UID_BLOCK = 2**16  # runs per grader process; one of ~32,000 blocks below 2**31 (two graders share one rarely)
_FIRST_UID = 1_000_000 + UID_BLOCK * secrets.randbelow((2**31 - 1_000_000) // UID_BLOCK - 1)
_next_uid = itertools.count(_FIRST_UID)


# System calls the sandbox refuses with EPERM (see the module doc), by architecture: add_key, request_key, keyctl,
# bpf, perf_event_open, userfaultfd, io_uring_setup, io_uring_enter, io_uring_register.
REFUSED_CALLS = {"x86_64": (0xC000003E, (248, 249, 250, 321, 298, 323, 425, 426, 427)),
                 "aarch64": (0xC00000B7, (217, 218, 219, 280, 241, 282, 425, 426, 427))}
X32_CALLS = 0x40000000  # x86_64's x32 ABI: the same calls under other numbers, refused as a whole


def seccomp_filter(machine: str | None = None) -> bytes | None:
    """The classic BPF program bwrap's --seccomp loads: EPERM for REFUSED_CALLS and for any call made through
    another architecture's entry (a 32-bit int 0x80 has numbers of its own), every other call allowed. None on an
    architecture it does not know.

    >>> program = seccomp_filter("x86_64"); len(program) % 8, len(program) // 8
    (0, 16)
    >>> seccomp_filter("sparc") is None
    True
    """
    machine = machine or platform.machine()
    if machine not in REFUSED_CALLS:
        return None
    arch, numbers = REFUSED_CALLS[machine]
    load_word, jump_equal, jump_at_least, give = 0x20, 0x15, 0x35, 0x06
    refuse, allow = 0x00050000 | 1, 0x7FFF0000  # SECCOMP_RET_ERRNO | EPERM, SECCOMP_RET_ALLOW
    checks = [(jump_at_least, X32_CALLS)] if machine == "x86_64" else []
    checks += [(jump_equal, number) for number in numbers]
    program = [(load_word, 0, 0, 4), (jump_equal, 1, 0, arch), (give, 0, 0, refuse), (load_word, 0, 0, 0)]
    refused_at = len(program) + len(checks) + 1  # after the checks and the final "allow"
    for code, value in checks:
        program.append((code, refused_at - len(program) - 1, 0, value))
    program += [(give, 0, 0, allow), (give, 0, 0, refuse)]
    return b"".join(struct.pack("HBBI", *instruction) for instruction in program)


def _seccomp_fd() -> int | None:
    """A file descriptor holding seccomp_filter() for one bwrap to read, or None; the caller closes it."""
    program = seccomp_filter()
    if program is None:
        return None
    fd = os.memfd_create("coursekit-seccomp")
    os.write(fd, program)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _bwrap_problem(privileged: bool) -> str | None:
    """Why bwrap cannot run here, or None when it can."""
    if not shutil.which("bwrap"):
        return "bwrap is not installed (Debian/Ubuntu: apt-get install bubblewrap)"
    try:
        probe = subprocess.run(["bwrap", *_namespaces(privileged), "--ro-bind", "/", "/", "--proc", "/proc",
                                "--dev", "/dev", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"bwrap did not start ({error})"
    if probe.returncode != 0:
        said = probe.stderr.decode("utf-8", "replace").strip().splitlines()
        return f"bwrap fails here ({said[-1] if said else f'exit code {probe.returncode}'}; no user namespaces?)"
    return None


@functools.cache
def _decide() -> tuple[str, str]:
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    forced = os.environ.get(FORCE, "").replace("-", " ")
    if forced and forced not in LEVELS:
        raise ValueError(f"{FORCE}={os.environ[FORCE]!r}: use separate-uid, rlimits-only or leave it unset")
    if forced == "rlimits only" or (forced == "separate uid" and not root):
        return "rlimits only", f"{FORCE} asks for it" if forced == "rlimits only" else "the grader is not root"
    why = f"{FORCE} asks for it"
    if not forced:
        why = _bwrap_problem(root) if sys.platform.startswith("linux") else f"no bubblewrap on {sys.platform}"
        if why is None:
            return "bubblewrap", ""
    if not root:
        return "rlimits only", why
    unreachable = _uid_problem()
    return ("rlimits only", f"{why}; {unreachable}") if unreachable else ("separate uid", why)


def _uid_problem() -> str | None:
    """Why uid 65534 cannot run this Python and find its packages (the uid fallback needs both), or None."""
    try:
        probe = subprocess.run([sys.executable, "-I", "-c", "import importlib.util as u, sys; sys.exit(not all("
                                "u.find_spec(m) for m in ('numpy', 'torch', 'IPython', 'matplotlib')))"],
                               user=NOBODY, group=NOBODY, extra_groups=[], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as error:
        return f"uid {NOBODY} cannot run {sys.executable} ({error}): make the Python installation readable by others"
    if probe.returncode != 0:
        return (f"uid {NOBODY} cannot import this Python's packages: make {', '.join(python_roots())} readable "
                "by others (chmod o+rx) to get the separate-uid fallback")
    return None


def level() -> str:
    """Which containment this machine gives student code (a key of LEVELS)."""
    return _decide()[0]


def describe() -> str:
    """The one line that says which containment student code gets here, and why when it is a fallback."""
    kind, why = _decide()
    return LEVELS[kind] + (f" [{why}]" if why else "")


def refusal(allowed: bool = False) -> str | None:
    """The one line that says why grading is refused here (student code would run as root), or None.

    Only "rlimits only" as root is refused, unless `allowed` (the instructor's flag) or ALLOW_ROOT=1 says go on.
    """
    if level() != "rlimits only" or not (hasattr(os, "geteuid") and os.geteuid() == 0):
        return None
    if allowed or os.environ.get(ALLOW_ROOT) == "1":
        return None
    return (f"✗ not grading: only rlimits-only containment works here and the grader is root, so student code would "
            f"run as root ({_decide()[1]}); install bubblewrap or open this Python to other users for the "
            f"separate-uid fallback, or pass {ALLOW_ROOT_FLAG} ({ALLOW_ROOT}=1) to grade anyway")


@contextlib.contextmanager
def sandbox_uid():
    """`with sandbox_uid() as uid:` a fresh uid for one sandbox run (see UID_BLOCK)."""
    with _uid_lock:
        uid = next(_next_uid)
    if uid >= _FIRST_UID + UID_BLOCK:
        raise OSError(f"this grader process has used up its {UID_BLOCK} sandbox uids: grade the rest in a new run")
    yield uid


_uid_lock = threading.Lock()


def kill_uid(uid: int) -> None:
    """Kill every process of `uid` (a fallback sandbox's setsid daemons included): kill(-1) run as that uid."""
    subprocess.run([sys.executable, "-I", "-S", "-c", "import os\ntry:\n    os.kill(-1, 9)\nexcept OSError:\n    pass"],
                   user=uid, group=uid, extra_groups=[], stdin=subprocess.DEVNULL, capture_output=True, timeout=30)


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


INSTALLED = ("lib*/python3*/site-packages/coursekit", "lib*/python3*/dist-packages/coursekit",
             "lib/python3/dist-packages/coursekit", "local/lib/python3*/dist-packages/coursekit")


def installed_coursekit() -> list[str]:
    """coursekit packages installed (`pip install .`) inside the folders the sandbox binds: the full course, so
    the sandbox gets an empty folder in their place (only the trimmed copy may be importable there).

    >>> all(path.endswith("/coursekit") for path in installed_coursekit())
    True
    """
    roots = [*python_roots(), *(path for path in SYSTEM if os.path.isdir(path))]
    return sorted({os.path.realpath(found) for root in roots for pattern in INSTALLED
                   for found in Path(root).glob(pattern) if found.is_dir()})


def command(boot: str, staged: str, data_dirs: list[str], tmpfs_bytes: int, threads: int = 1,
            uid: int = NOBODY) -> tuple[list[str], dict]:
    """The argv and Popen options that start `python -I -c boot` in this machine's containment, as `uid` (when root).

    `staged` is the trimmed coursekit (see `stage`); inside the sandbox it is at STAGED, elsewhere used as is. The
    options' "pass_fds" are descriptors for the child alone: close them once it has started.
    """
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0",
           "USER": "student", "LOGNAME": "student",  # the sandbox's uid has no passwd entry
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
        argv += ["--proc", "/proc", "--dev", "/dev", "--size", str(tmpfs_bytes), "--perms", "1777", "--tmpfs", HOME,
                 "--perms", "0777", "--dir", f"{HOME}/.matplotlib"]  # writable, or matplotlib uses a new folder
        for font_list in sorted((Path(staged).parent / FONTS).glob("*.json")):  # read-only: no sandbox changes it
            argv += ["--ro-bind", str(font_list), f"{HOME}/.matplotlib/{font_list.name}"]
        for folder in _parents([path for path in SYSTEM if os.path.exists(path)] + [dest for _, dest in binds]):
            if folder != HOME:  # bwrap would make them 0700: unreachable for uid 65534
                argv += ["--perms", "0755", "--dir", folder]
        for path in SYSTEM:
            argv += ["--ro-bind-try", path, path]
        for source, dest in binds:
            argv += ["--ro-bind", source, dest]
        for installed in installed_coursekit():  # a pip-installed course would hold every reference
            argv += ["--tmpfs", installed]
        argv += ["--chdir", HOME, "--remount-ro", "/"]
        seccomp = _seccomp_fd()
        if seccomp is not None:
            argv += ["--seccomp", str(seccomp)]
        if privileged:
            argv += ["/usr/bin/setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
                     "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs"]
        return argv + python, {"start_new_session": True, "pass_fds": () if seccomp is None else (seccomp,)}
    home = tempfile.mkdtemp(prefix="coursekit-home-")
    env.update({"HOME": home, "TMPDIR": home, "MPLCONFIGDIR": f"{home}/.matplotlib",
                "COURSEKIT_DATA_DIR": os.pathsep.join([f"{home}/cache", *data_dirs]), "COURSEKIT_STAGED": staged})
    (Path(home) / ".matplotlib").mkdir()
    for font_list in (Path(staged).parent / FONTS).glob("*.json"):
        shutil.copy(font_list, Path(home) / ".matplotlib")
    options = {"start_new_session": True, "cwd": home, "env": env, "home": home}
    if kind == "separate uid":
        for folder in (home, f"{home}/.matplotlib"):
            os.chown(folder, uid, uid)
        options.update(user=uid, group=uid, extra_groups=[])
    return python, options


def sandbox_data_dirs(folders: list[Path]) -> tuple[list[str], list[str]]:
    """The data folders the sandbox's uid can read (anyone may list them and, without bubblewrap, every folder
    above them), and a one-line note for each left out that holds files (a private cache first on COURSEKIT_DATA_DIR would otherwise
    shadow the shared copy, so every probe reading the corpus would fail with PermissionError).

    >>> import tempfile; private = Path(tempfile.mkdtemp()); _ = (private / "x.txt").write_text("x")
    >>> kept, notes = sandbox_data_dirs([private]); kept, "chmod o+rx" in notes[0]
    ([], True)
    """
    kept, notes = [], []
    for folder in folders:
        if not folder.is_dir():
            continue
        path = folder.resolve()
        # Under bubblewrap the folders above a bind are made afresh (0755) inside the sandbox: only the folder
        # itself must be readable (CI's data lives under a private mktemp folder). Elsewhere every parent counts.
        parents_open = level() == "bubblewrap" or all(p.stat().st_mode & 0o001 for p in path.parents)
        if path.stat().st_mode & 0o005 == 0o005 and parents_open:
            kept.append(str(path))
        elif any(path.iterdir()):
            notes.append(f"note: the data folder {folder} is not readable by other users, so the grading sandbox "
                         f"cannot use it (its probes will not see those files): chmod o+rx it (and o+x every folder "
                         f"above it), or point COURSEKIT_DATA_DIR at a readable copy")
    return kept, notes


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

    >>> import tempfile; staged = stage("05_prompting", [], Path(tempfile.mkdtemp()) / "05")
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
    # Compiled once per batch here, so no sandbox compiles coursekit again (the sandbox cannot write bytecode);
    # likewise matplotlib's list of the system's fonts (it runs fc-list and reads every font file: ~0.4 s a run).
    compileall.compile_dir(into, quiet=1, workers=1)
    fonts = into.parent / FONTS
    if not fonts.exists():
        fonts.mkdir()
        subprocess.run([sys.executable, "-I", "-c", "import matplotlib.font_manager"], capture_output=True, timeout=300,
                       env={"PATH": os.environ.get("PATH", ""), "MPLCONFIGDIR": str(fonts), "MPLBACKEND": "Agg"})
        fonts.chmod(0o755)
        for font_list in fonts.iterdir():
            font_list.chmod(0o644)
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
