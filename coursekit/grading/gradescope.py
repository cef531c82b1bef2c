"""Gradescope's autograder contract: grade /autograder/submission, write /autograder/results/results.json.

`python -m coursekit gradescope-zip 02_bigram_mlp.ipynb …` builds the upload: setup.sh (a virtual environment
with CPU torch and the `grade` extra, then the data), run_autograder (calls `python -m coursekit grade
--gradescope`), the course package and the chosen solution notebooks. COURSEKIT_AUTOGRADER_ROOT replaces
/autograder, COURSEKIT_TORCH_SOURCE and COURSEKIT_PIP_OPTIONS where pip finds packages, so the tests run the same
scripts in a temporary directory, offline.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from coursekit.grading.feedback import _plain, _shown, number, review_csv
from coursekit.grading.grader import Grade

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image (it has internet then).
# Target: Gradescope's Ubuntu 22.04 base image (python3.10). Everything goes into a virtual environment, so
# Debian/Ubuntu's "externally managed" system Python is never touched.
set -euo pipefail
ROOT="${COURSEKIT_AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT"
# bubblewrap is the grader's OS-level sandbox (without it the grader falls back to a separate uid; see GRADING.md).
if ! python3 -c 'import sys, ensurepip; assert sys.version_info >= (3, 10)' 2>/dev/null || ! command -v bwrap >/dev/null; then
    apt-get update -qq && apt-get install -y -qq python3 python3-venv bubblewrap > /dev/null
fi
python3 -m venv "$ROOT/venv"
PIP="$ROOT/venv/bin/python -m pip install -q ${COURSEKIT_PIP_OPTIONS:-}"
# CPU-only torch, pinned (PyPI's default build pulls GBs of CUDA); COURSEKIT_TORCH_SOURCE replaces the index.
$PIP ${COURSEKIT_TORCH_SOURCE:---index-url https://download.pytorch.org/whl/cpu} torch==TORCH_VERSION
# Only what grading needs (the `grade` extra): no JupyterLab, transformers, bertviz or browser stack.
$PIP --no-deps "$ROOT/source/course"
$PIP -r "$ROOT/source/course/requirements-grade.txt"
COURSEKIT_DATA_DIR="$ROOT/source/data" "$ROOT/venv/bin/python" -m coursekit data fetch
chmod -R go-rwx "$ROOT/source"   # the sandbox's audit hook protects these too
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission.
ROOT="${{COURSEKIT_AUTOGRADER_ROOT:-/autograder}}"
cd "$ROOT/source"
export COURSEKIT_DATA_DIR="$ROOT/source/data"
"$ROOT/venv/bin/python" -m coursekit grade --gradescope --gradescope-root "$ROOT" \\
    --solutions "$ROOT/source/course/solutions" --rubric {rubric} {options}
"""
TORCH_VERSION = "2.13.0"


def results(grade: Grade) -> dict:
    """results.json for one graded submission: one Gradescope test per exercise, visible to the student.

    Review flags go to one more test with visibility "hidden" (Gradescope never shows it to students; instructors
    see it) and 0 points, and to stdout (instructors only): students see their points and the checks' messages.
    """
    tests = []
    for exercise in grade.exercises:
        lines = [f"{'✓' if o.passed else '✗'} {_plain(o.test)}" + (f": {_plain(o.message)}" if o.message else "")
                 for o in _shown(exercise)]
        if exercise.reason:
            lines.insert(0, _plain(exercise.reason))
        tests.append({"name": exercise.label, "score": exercise.earned, "max_score": exercise.possible,
                      "output": "\n".join(lines), "visibility": "visible"})
    if grade.flags:
        tests.append({"name": "Flagged for review (instructors only)", "score": 0, "max_score": 0,
                      "output": "\n".join(_plain(flag) for flag in grade.flags), "visibility": "hidden"})
    output = [f"Total: {number(grade.earned)} / {grade.possible}"]
    output += [f"Note: {_plain(note)}" for note in grade.notes]
    return {"score": grade.earned, "output": "\n".join(output), "tests": tests, "stdout_visibility": "hidden"}


def write_results(grade: Grade, root: Path) -> Path:
    """results.json for Gradescope, and review.csv next to it (the flags, as in a local grading run)."""
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    (target.parent / "review.csv").write_text(review_csv([grade]), encoding="utf-8")
    target.write_text(json.dumps(results(grade), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def failure_results(message: str, root: Path) -> Path:
    """When grading itself fails, Gradescope still gets a valid results.json saying so (score 0)."""
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"score": 0, "output": f"The autograder could not grade this submission: "
                                  f"{_plain(message)}", "tests": []}, indent=1) + "\n", encoding="utf-8")
    return target


def grade_requirements(course: Path) -> list[str]:
    """The `grade` extra of the course's pyproject.toml: what setup.sh installs besides torch."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    project = tomllib.loads((course / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return list(project["optional-dependencies"]["grade"])


def build_zip(course: Path, notebooks: list[Path], rubric: str, out: Path, options: str = "") -> Path:
    """The zip to upload to Gradescope: setup.sh, run_autograder, the course package and the solutions."""
    def add_text(archive, name, text, mode=0o755):
        info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
        info.external_attr = (0o100000 | mode) << 16
        archive.writestr(info, text)

    def add_file(archive, path: Path, name: str):
        add_text(archive, name, path.read_bytes(), 0o644)

    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        add_text(archive, "setup.sh", SETUP.replace("TORCH_VERSION", TORCH_VERSION))
        add_text(archive, "run_autograder", RUN.format(rubric=rubric, options=options))
        for name in ("pyproject.toml", "README.md"):
            if (course / name).exists():
                add_file(archive, course / name, f"course/{name}")
        add_text(archive, "course/requirements-grade.txt", "\n".join(grade_requirements(course)) + "\n", 0o644)
        for path in sorted((course / "coursekit").rglob("*.py")):
            add_file(archive, path, f"course/{path.relative_to(course)}")
        for notebook in notebooks:
            add_file(archive, notebook, f"course/solutions/{notebook.name}")
    return out
