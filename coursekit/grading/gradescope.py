"""Gradescope's autograder contract: grade /autograder/submission, write /autograder/results/results.json.

`python -m coursekit gradescope-zip 02_bigram_mlp.ipynb …` builds the upload: setup.sh (installs this course
package and its data), run_autograder (calls `python -m coursekit grade --gradescope`), the course package and
the chosen solution notebooks. Paths are parameters so the tests run the same code in a temporary directory.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from coursekit.grading.feedback import _plain, number
from coursekit.grading.grader import Grade

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once, when the autograder image is built (it has internet then).
set -euo pipefail
apt-get update -qq && apt-get install -y -qq python3 python3-pip bubblewrap > /dev/null
python3 -m pip install -q --extra-index-url https://download.pytorch.org/whl/cpu /autograder/source/course
COURSEKIT_DATA_DIR=/autograder/source/data python3 -m coursekit data fetch
chmod -R go-rwx /autograder/source   # the sandbox's audit hook protects these too
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission.
cd /autograder/source
export COURSEKIT_DATA_DIR=/autograder/source/data
python3 -m coursekit grade --gradescope --gradescope-root /autograder \\
    --solutions /autograder/source/course/solutions --rubric {rubric} {options}
"""


def results(grade: Grade, visibility: str = "visible") -> dict:
    """results.json for one graded submission: one Gradescope test per exercise."""
    tests = []
    for exercise in grade.exercises:
        lines = [f"{'✓' if o.passed else '✗'} {_plain(o.test)}" + (f": {_plain(o.message)}" if o.message else "")
                 for o in exercise.outcomes]
        if exercise.reason:
            lines.insert(0, _plain(exercise.reason))
        tests.append({"name": exercise.label, "score": exercise.earned, "max_score": exercise.possible,
                      "output": "\n".join(lines), "visibility": visibility})
    output = [f"Total: {number(grade.earned)} / {grade.possible}"]
    output += [f"Note: {_plain(note)}" for note in grade.notes]
    output += [f"Flagged for review: {_plain(flag)}" for flag in grade.flags]
    return {"score": grade.earned, "output": "\n".join(output), "tests": tests, "stdout_visibility": "hidden"}


def write_results(grade: Grade, root: Path) -> Path:
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results(grade), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return target


def failure_results(message: str, root: Path) -> Path:
    """When grading itself fails, Gradescope still gets a valid results.json saying so (score 0)."""
    target = root / "results" / "results.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({"score": 0, "output": f"The autograder could not grade this submission: "
                                  f"{_plain(message)}", "tests": []}, indent=1) + "\n", encoding="utf-8")
    return target


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
        add_text(archive, "setup.sh", SETUP)
        add_text(archive, "run_autograder", RUN.format(rubric=rubric, options=options))
        for name in ("pyproject.toml", "README.md"):
            if (course / name).exists():
                add_file(archive, course / name, f"course/{name}")
        for path in sorted((course / "coursekit").rglob("*.py")):
            add_file(archive, path, f"course/{path.relative_to(course)}")
        for notebook in notebooks:
            add_file(archive, notebook, f"course/solutions/{notebook.name}")
    return out
