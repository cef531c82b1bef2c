"""Where bubblewrap cannot run, the grader falls back to what this machine still gives, and says so.

`COURSEKIT_CONTAINMENT` picks a fallback on purpose (and a PATH without bwrap must pick one by itself). A probing
notebook answers the tiny course of tests/grading_submissions/ only while it is contained: its `double` is right
only if it cannot read a 0600 file of the grader (in a folder anyone may enter), cannot signal the grader (its
parent process), runs under another uid with rlimits set; a setsid daemon it starts must not outlive the run. As
root, the "separate uid" fallback must give it full marks, and the "rlimits only" fallback (student code as the
grader's own user, here root) must not: that shows the probe can fail.

The uid fallback needs a Python that other users may run. Where this machine's is under a private folder (a
pyenv in /root), that test runs the grader in a private mount namespace where that folder is opened to others
(nothing outside the namespace changes), and checks first that outside it uid 65534 indeed cannot.
"""

import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat
import pytest

from coursekit.cli import main
from coursekit.grading import containment

CORPUS = Path(__file__).parent / "grading_submissions"
sys.path.insert(0, str(CORPUS))
import build_corpus  # noqa: E402

DAEMON = "3141.5926"  # `sleep` with this argument: a daemon no one else starts
ROOT_ONLY = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="the uid fallback needs root")


@pytest.fixture
def forced(monkeypatch):
    """Set COURSEKIT_CONTAINMENT (or PATH) for one test; the decision is made afresh before and after."""
    def force(**environment):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        containment._decide.cache_clear()
    yield force
    monkeypatch.undo()
    containment._decide.cache_clear()


@pytest.fixture
def grader_secret():
    """A 0600 file of the grader's in a folder anyone may enter, and a world-readable one next to it."""
    folder = Path(tempfile.mkdtemp(prefix="coursekit-fallback-"))
    folder.chmod(0o755)
    (folder / "secret.txt").write_text("the grader's secret")
    (folder / "secret.txt").chmod(0o600)
    (folder / "public.txt").write_text("public")
    (folder / "public.txt").chmod(0o644)
    yield folder
    subprocess.run(["rm", "-rf", str(folder)])


def probing_notebook(folder: Path):
    double = (
        "import os, resource, subprocess\n"
        "escaped = []\n"
        f"if open({str(folder / 'public.txt')!r}).read() != 'public':\n    escaped.append('no public file')\n"
        f"try:\n    open({str(folder / 'secret.txt')!r}).read()\n    escaped.append('read the secret')\n"
        "except OSError:\n    pass\n"
        "try:\n    os.kill(os.getppid(), 0)\n    escaped.append('can signal the grader')\n"
        "except OSError:\n    pass\n"
        f"if os.getuid() == {os.getuid()}:\n    escaped.append('runs as the grader')\n"
        "if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:\n    escaped.append('no rlimits')\n"
        f"subprocess.Popen(['sleep', '{DAEMON}'], start_new_session=True)\n"
        "print('escaped:', escaped)\n\n"
        "def double(x):\n    return 2 * x if not escaped else None")
    return build_corpus.course(double=double)


def write_course(tmp_path, folder):
    (tmp_path / "solutions").mkdir()
    nbformat.write(build_corpus.SOLUTION, tmp_path / "solutions" / "01_tiny.ipynb")
    nbformat.write(probing_notebook(folder), tmp_path / "prober.ipynb")
    return ["grade", str(tmp_path / "prober.ipynb"), "--out", str(tmp_path / "out"), "--rubric", "01_tiny",
            "--solutions", str(tmp_path / "solutions"), "--check-module", "grading_tiny_checks", "--secret", "s",
            "--notebook-seconds", "120", "--memory-mb", "3072", "--exercise-memory-mb", "1024"]


def result(tmp_path, stderr):
    [row] = csv.DictReader(open(tmp_path / "out" / "grades.csv"))
    lines = [line for line in stderr.splitlines() if line.startswith("containment:")]
    return row, lines


def daemons():
    return subprocess.run(["pgrep", "-f", f"sleep {DAEMON}"], capture_output=True, text=True).stdout.split()


def opened_python(scratch: Path) -> list[str]:
    """A command prefix under which uid 65534 can run this Python: nothing, or a private mount namespace where
    the private folder above it (e.g. /root) is a 0755 tmpfs holding only the way to the Python."""
    blocked = [(parent, Path(root).relative_to(parent).parts[0]) for root in containment.python_roots()
               for parent in reversed(Path(root).parents) if not parent.stat().st_mode & 0o001]
    if not blocked:
        return []
    script = []
    for number, (parent, child) in enumerate(dict.fromkeys(blocked)):
        keep = scratch / f"keep{number}"
        keep.mkdir()
        script += [f"mount --bind {parent / child} {keep}", f"mount -t tmpfs -o mode=0755 tmpfs {parent}",
                   f"mkdir {parent / child}", f"mount --bind {keep} {parent / child}"]
    return ["unshare", "--mount", "--propagation", "private", "sh", "-ec", " && ".join(script) + ' && exec "$@"',
            "sh"]


@ROOT_ONLY
def test_the_uid_fallback_keeps_the_grader_private_and_leaves_no_daemon(tmp_path, grader_secret):
    arguments = write_course(tmp_path, grader_secret)
    prefix = opened_python(Path(tempfile.mkdtemp()))
    if prefix:  # this machine's Python is private: the fallback must say so by itself
        with pytest.raises(PermissionError):
            subprocess.run([sys.executable, "-I", "-c", "pass"], user=65534, group=65534, extra_groups=[])
        assert "uid 65534 cannot run" in containment._uid_problem()
    environment = {**os.environ, "COURSEKIT_CONTAINMENT": "separate-uid",
                   "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent), str(CORPUS)])}
    graded = subprocess.run([*prefix, sys.executable, "-m", "coursekit", *arguments], env=environment,
                            capture_output=True, text=True, timeout=600)
    assert graded.returncode == 0, graded.stderr[-2000:]
    row, lines = result(tmp_path, graded.stderr)
    assert (float(row["double"]), float(row["square"])) == (2, 3), (tmp_path / "out/feedback/prober.md").read_text()
    assert len(lines) == 1 and "WEAKER" in lines[0] and "uid of its own" in lines[0], lines
    assert not daemons(), "a setsid daemon outlived its sandbox"


@ROOT_ONLY
def test_rlimits_only_as_root_is_refused_unless_asked_for_and_doctor_says_so(tmp_path, grader_secret, forced, capsys):
    forced(COURSEKIT_CONTAINMENT="rlimits-only")
    arguments = write_course(tmp_path, grader_secret)
    assert main(arguments) == 2  # student code would run as root: nothing is graded
    said = capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert "student code would run as root" in said and containment.ALLOW_ROOT_FLAG in said, said
    from coursekit import doctor

    [report] = doctor.check_containment()
    assert "WEAKEST" in report.line() and containment.ALLOW_ROOT_FLAG in report.line()
    forced(COURSEKIT_ALLOW_ROOT_STUDENT_CODE="1")
    assert containment.refusal() is None and doctor.check_containment()[0].line().count("refuses") == 0
    forced(COURSEKIT_ALLOW_ROOT_STUDENT_CODE="")
    assert main([*arguments, containment.ALLOW_ROOT_FLAG]) == 0
    row, lines = result(tmp_path, capsys.readouterr().err)
    assert (float(row["double"]), float(row["square"])) == (0, 3)  # the probe saw it was not contained
    assert len(lines) == 1 and "WEAKEST" in lines[0]
    for pid in daemons():  # in this mode nothing kills the student's daemons: this test's own, by pid
        os.kill(int(pid), 9)


def test_a_path_without_bwrap_falls_back_by_itself_and_doctor_says_which(forced, capsys):
    forced(PATH=str(Path(sys.executable).parent))
    uid_fallback = os.geteuid() == 0 and containment._uid_problem() is None  # this machine's Python is private
    expected = "separate uid" if uid_fallback else "rlimits only"
    assert containment.level() == expected
    assert "bwrap is not installed" in containment.describe()
    from coursekit import doctor

    [result] = doctor.check_containment()
    assert not result.ok and not result.needed
    assert containment.LEVELS[expected] in result.line() and "apt-get install bubblewrap" in result.line()


def test_an_unknown_containment_setting_is_an_error_that_names_the_choices(forced):
    forced(COURSEKIT_CONTAINMENT="none")
    with pytest.raises(ValueError, match="separate-uid, rlimits-only"):
        containment.level()
