"""The grader on the real course: each solution notebook gets full marks, its student version gets 0.

Parametrised over solutions/*.ipynb, so every notebook added later is covered with no change here.
"""

import csv
import inspect
from pathlib import Path

import nbformat
import pytest

from coursekit import build
from coursekit.cli import main

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))


def student_version(notebook, name):
    takes_name = len(inspect.signature(build.student_version).parameters) > 1
    return build.student_version(notebook, name) if takes_name else build.student_version(notebook)


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.name for p in SOLUTIONS])
def test_solution_gets_full_marks_and_student_version_gets_zero(path, tmp_path):
    solution = nbformat.read(path, as_version=4)
    if not build.exercises(solution):
        pytest.skip("no exercises")
    submissions = tmp_path / "submissions"
    submissions.mkdir()
    (submissions / f"reference_{path.name}").write_bytes(path.read_bytes())
    nbformat.write(student_version(solution, path.name), submissions / f"student_{path.name}")
    out = tmp_path / "out"
    assert main(["grade", *map(str, sorted(submissions.iterdir())), "--out", str(out), "--jobs", "2",
                 "--rubric", path.stem, "--solutions", str(path.parent)]) == 0
    rows = {row["student"]: row for row in csv.DictReader(open(out / "grades.csv"))}
    possible = sum(item["points"] for item in build.exercises(solution))
    reference, student = rows[f"reference_{path.stem}"], rows[f"student_{path.stem}"]
    assert float(reference["total"]) == possible, (out / "feedback" / f"reference_{path.stem}.md").read_text()
    assert float(student["total"]) == 0, (out / "feedback" / f"student_{path.stem}.md").read_text()
    review = (out / "review.csv").read_text()
    assert f"reference_{path.stem}" not in review, f"the reference solution was flagged:\n{review}"
