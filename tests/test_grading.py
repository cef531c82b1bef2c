"""The autograder against hostile submissions: tests/grading_submissions/ holds one notebook per attack.

All of them answer a two-exercise course (double: 2 points, square: 3 points) whose checks live in
grading_submissions/grading_tiny_checks.py; the whole corpus is graded once, in one batch with small limits,
and each test looks at one student's row and feedback.
"""

import csv
import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

from coursekit import build
from coursekit.cli import main

HERE = Path(__file__).parent
CORPUS = HERE / "grading_submissions"
sys.path.insert(0, str(CORPUS))
import build_corpus  # noqa: E402

LIMITS = ["--cell-seconds", "3", "--exercise-seconds", "3", "--notebook-seconds", "40", "--memory-mb", "3072",
          "--exercise-memory-mb", "1024"]

# student: (double points, square points, text the feedback must contain)
EXPECTED = {
    "solution": (2, 3, ""),
    "unsolved": (0, 0, "not attempted"),
    "infinite_loop_cell": (2, 3, "stopped after 3 s"),
    "infinite_loop_in_function": (2, 0, "timed out"),
    "swallows_timeouts": (2, 0, "time limit"),
    "memory_bomb_cell": (2, 3, "MemoryError"),
    "memory_bomb_in_function": (2, 0, "memory"),
    "fork_bomb": (2, 3, "was blocked"),
    "sys_exit": (2, 3, "SystemExit"),
    "os_exit_cell": (2, 3, "exited"),
    "os_exit_in_function": (2, 0, "exited"),
    "kill_itself": (2, 3, "os.kill was blocked"),
    "segfault_ctypes": (2, 3, "ctypes"),
    "segfault_in_function": (2, 0, "no credit"),
    "monkeypatch": (0, 3, "assigns torch.allclose"),
    "patches_the_checks": (0, 3, "imported coursekit.checks.core"),
    "lying_objects": (0, 0, "always returns True"),
    "imports_reference": (0, 0, "no credit"),
    "imports_reference_early": (2, 0, "imports grading_tiny_checks"),
    "reads_solutions": (2, 3, "tried to read protected"),
    "frames_to_probe": (2, 0, "no credit"),
    "writes_everywhere": (2, 3, "tried to write"),
    "forges_results": (0, 0, "tampered"),
    "deleted_cells": (2, 0, "never defines square"),
    "reordered_cells": (2, 3, ""),
    "duplicated_cells": (2, 3, ""),
    "renamed_function": (2, 3, "graded my_double"),
    "metadata_stripped": (2, 3, "was not found"),
    "truncated": (2, 0, "damaged JSON"),
    "not_a_notebook": (0, 0, "not a notebook"),
    "python_script": (2, 3, "Python script"),
    "non_utf8": (2, 3, "not valid UTF-8"),
    "not_json_cells": (0, 0, "no list of cells"),
    "huge_output": (2, 3, ""),
}


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The tiny course's solutions folder, the submissions (corpus + generated ones) and the grading output."""
    root = tmp_path_factory.mktemp("course")
    (root / "solutions").mkdir()
    nbformat.write(build_corpus.SOLUTION, root / "solutions" / "01_tiny.ipynb")
    submissions = root / "submissions"
    submissions.mkdir()
    for path in sorted(CORPUS.glob("*.ipynb")):
        (submissions / path.name).write_bytes(path.read_bytes())
    nbformat.write(build_corpus.SOLUTION, submissions / "solution.ipynb")
    nbformat.write(build.student_version(build_corpus.SOLUTION, "01_tiny.ipynb") if _takes_name() else
                   build.student_version(build_corpus.SOLUTION), submissions / "unsolved.ipynb")
    huge = nbformat.from_dict(build_corpus.SOLUTION)
    huge.cells[0].outputs = [nbformat.v4.new_output("stream", text="x" * (100 * 2**20))]
    nbformat.write(huge, submissions / "huge_output.ipynb")
    return root


def _takes_name():
    import inspect
    return len(inspect.signature(build.student_version).parameters) > 1


def grade(course, out, names=None, jobs="2"):
    paths = sorted(str(p) for p in (course / "submissions").glob("*.ipynb") if names is None or p.stem in names)
    code = main(["grade", *paths, "--out", str(out), "--jobs", jobs, "--rubric", "01_tiny", "--solutions",
                 str(course / "solutions"), "--check-module", "grading_tiny_checks", *LIMITS])
    assert code == 0
    with open(out / "grades.csv", newline="") as handle:
        return {row["student"]: row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def graded(course):
    out = course / "out"
    return grade(course, out), out


def feedback(out, student):
    return (out / "feedback" / f"{student}.md").read_text().replace("\\", "")


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_attack_is_graded_as_expected(graded, student):
    rows, out = graded
    double, square, says = EXPECTED[student]
    text = feedback(out, student)
    assert (float(rows[student]["double"]), float(rows[student]["square"])) == (double, square), text
    assert float(rows[student]["total"]) == double + square
    assert says in text


def test_every_corpus_notebook_is_expected(graded):
    rows, _ = graded
    assert set(rows) == set(EXPECTED)


def test_nothing_escaped_the_sandbox(graded):
    _, out = graded
    assert not Path("/tmp/pwned-by-student").exists()
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "grades.csv", "review.csv"]
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob("coursekit-sandbox-*/job.json"))


def test_cheating_is_flagged_for_review(graded):
    _, out = graded
    flagged = {row["student"] for row in csv.DictReader(open(out / "review.csv"))}
    assert {"monkeypatch", "lying_objects", "imports_reference", "frames_to_probe", "reads_solutions",
            "forges_results", "segfault_in_function"} <= flagged
    assert "solution" not in flagged and "unsolved" not in flagged


def test_html_feedback_escapes_student_text(course, graded):
    _, out = graded
    page = (out / "feedback" / "lying_objects.html").read_text()
    assert "<script" not in page and page.startswith("<!DOCTYPE html>")


def test_grading_twice_gives_identical_grades_csv(course, graded):
    names = {"solution", "unsolved", "renamed_function", "truncated", "os_exit_in_function", "lying_objects"}
    first = grade(course, course / "again1", names)
    second = grade(course, course / "again2", names, jobs="1")
    assert (course / "again1" / "grades.csv").read_bytes() == (course / "again2" / "grades.csv").read_bytes()
    assert first == {name: row for name, row in graded[0].items() if name in names}


def test_gradescope_contract(course, tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    nbformat.write(build_corpus.SOLUTION, root / "submission" / "my_work.ipynb")
    code = main(["grade", "--gradescope", "--gradescope-root", str(root), "--rubric", "01_tiny", "--solutions",
                 str(course / "solutions"), "--check-module", "grading_tiny_checks", *LIMITS])
    assert code == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 5
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [("double", 2, 2), ("square", 3, 3)]
    assert all(t["visibility"] == "visible" and isinstance(t["output"], str) for t in results["tests"])
