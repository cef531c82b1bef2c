"""The autograder against hostile submissions: tests/grading_submissions/ holds one notebook per attack.

All of them answer a two-exercise course (double: 2 points, square: 3 points) whose checks live in
grading_submissions/grading_tiny_checks.py (their reference, grading_tiny_reference.py, is never in the sandbox);
the whole corpus, honest controls included, is graded once in one batch with small limits and a fixed secret,
each test looks at one student's row and feedback, and a regrade with the same secret must give the same bytes.
"""

import csv
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

from coursekit import build
from coursekit.cli import main
from coursekit.grading.feedback import file_name, from_cell

HERE = Path(__file__).parent
CORPUS = HERE / "grading_submissions"
sys.path.insert(0, str(CORPUS))
import build_corpus  # noqa: E402

LIMITS = ["--cell-seconds", "3", "--exercise-seconds", "3", "--notebook-seconds", "120", "--memory-mb", "3072",
          "--exercise-memory-mb", "1024"]

HOSTILE_NAMES = ['=HYPERLINK("https:__evil.example","regrade")', "<img src=x onerror=alert(1)>"]  # as file names
# student: (double points, square points, text the feedback must contain): what each attack deserves
EXPECTED = {
    "solution": (2, 3, ""),
    "unsolved": (0, 0, "not attempted"),
    "infinite_loop_cell": (2, 3, "stopped after 3 s"),
    "infinite_loop_in_function": (2, 0, "timed out"),
    "swallows_timeouts": (2, 0, "time limit"),
    "memory_bomb_cell": (2, 3, "MemoryError"),
    "memory_bomb_in_function": (2, 0, "memory"),
    "fork_bomb": (2, 3, "forked the kernel"),
    "sys_exit": (2, 3, "SystemExit"),
    "os_exit_cell": (2, 3, "exited"),
    "os_exit_in_function": (2, 0, "exited"),
    "kill_itself": (2, 3, "was killed"),
    "segfault_ctypes": (2, 3, "segmentation fault"),
    "segfault_in_function": (2, 0, "segmentation fault"),
    "monkeypatch": (0, 3, "assigns torch.allclose"),
    "patches_the_checks": (0, 3, ""),
    "lying_objects": (0, 0, "always returns True"),
    "imports_reference": (0, 3, "No module named 'grading_tiny_reference'"),
    "imports_reference_early": (2, 0, ""),
    "reads_solutions": (2, 0, "RuntimeError"),
    "frames_to_probe": (2, 0, "KeyError"),
    "writes_everywhere": (2, 3, ""),
    "forges_results": (2, 0, "not a result"),
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
    "callbacks_reference": (2, 0, "IndexError"),
    "marshal_relabelled": (2, 0, "KeyError"),
    "imports_tooling": (2, 0, "coursekit.grading is the course's tooling, not available while grading"),
    "subclasses_reference": (2, 0, "square is defined in cell 3"),
    "file_tricks": (2, 3, ""),
    "starts_a_shell": (2, 3, "started a process"),
    "kills_everyone": (2, 3, ""),
    "daemon_rewrites_grades": (2, 3, "started a process"),
    "patches_probe": (0, 0, ""),
    "patches_json": (0, 0, ""),
    "hard_codes_public": (0, 0, ""),
    "tensor_lies_about_dtype": (1, 3, ""),
    "lying_float": (2, 1, "where a plain value"),
    "deeply_nested_result": (1, 3, "nested deeper than 64 levels"),
    "replaces_check_tests": (0, 0, ""),
    "injects_frames": (2, 0, "while this was tested, so its result is not used"),
    "keyring_across_runs": (2, 3, "exited"),
    "floods_cell_errors": (2, 3, "10 more cells failed (not listed)"),
    HOSTILE_NAMES[0]: (2, 3, ""),
    HOSTILE_NAMES[1]: (2, 3, ""),
    # made by the fixture: what cannot be committed as a file
    "symlink_to_solution": (0, 0, "symbolic link"),
    "symlinked_folder": (0, 0, "symbolic link"),
    "fifo": (0, 0, "not a regular file"),
    "fifo_inside": (0, 0, "not a regular file"),
    "zip_bomb": (0, 0, "budget"),
    "alice": (2, 3, ""),
    "alice-2": (0, 0, "not attempted"),
    "alice-3": (2, 3, ""),
}
CANARY = "coursekit-canary-7f3a"  # in the grader's environment: must never reach a feedback page


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
    unsolved = build.student_version(build_corpus.SOLUTION, "01_tiny.ipynb")
    nbformat.write(unsolved, submissions / "unsolved.ipynb")
    for name in HOSTILE_NAMES:
        nbformat.write(build_corpus.SOLUTION, submissions / f"{name}.ipynb")
    huge = nbformat.from_dict(build_corpus.SOLUTION)
    huge.cells[0].outputs = [nbformat.v4.new_output("stream", text="x" * (100 * 2**20))]
    nbformat.write(huge, submissions / "huge_output.ipynb")
    (submissions / "symlink_to_solution.ipynb").symlink_to(root / "solutions" / "01_tiny.ipynb")
    (submissions / "symlinked_folder").symlink_to(root / "solutions")
    os.mkfifo(submissions / "fifo.ipynb")
    (submissions / "class").mkdir()
    os.mkfifo(submissions / "class" / "fifo_inside.ipynb")
    with zipfile.ZipFile(submissions / "zip_bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"bomb{index}.ipynb", b" " * (40 * 2**20))  # 120 MB > the 64 MB budget
    for folder, notebook in [("a", build_corpus.SOLUTION), ("b", unsolved), ("c", build_corpus.SOLUTION)]:
        (submissions / "same" / folder).mkdir(parents=True)
        nbformat.write(notebook, submissions / "same" / folder / "alice.ipynb")
    return root


def submission_paths(course):
    folder = course / "submissions"
    return sorted(str(p) for p in folder.iterdir() if p.name not in ("same", "class")) + [
        str(folder / "class" / "fifo_inside.ipynb"), *sorted(map(str, (folder / "same").glob("*/alice.ipynb")))]


def grade(course, out, jobs="2", secret="the same secret"):
    code = main(["grade", *submission_paths(course), "--out", str(out), "--jobs", jobs, "--rubric", "01_tiny",
                 "--solutions", str(course / "solutions"), "--check-module", "grading_tiny_checks", "--secret",
                 secret, *LIMITS])
    assert code == 0
    with open(out / "grades.csv", newline="") as handle:  # a leading = is quoted in the CSV: spreadsheets run it
        return {from_cell(row["student"]): row for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def graded(course):
    out = course / "out"
    (out / "grades.csv").mkdir(parents=True)  # a trap: the final write must replace it, not crash or follow it
    os.environ["COURSEKIT_TEST_CANARY"] = CANARY
    try:
        rows = grade(course, out)
    finally:
        del os.environ["COURSEKIT_TEST_CANARY"]
    time.sleep(2)  # a daemon that survived would rewrite grades.csv by now
    return rows, out


def feedback(out, student):
    return (out / "feedback" / f"{file_name(student)}.md").read_text().replace("\\", "")


@pytest.mark.parametrize("student", sorted(EXPECTED))
def test_each_attack_is_graded_as_expected(graded, student):
    rows, out = graded
    double, square, says = EXPECTED[student]
    text = feedback(out, student)
    assert double + square <= 5
    assert (float(rows[student]["double"]), float(rows[student]["square"])) == (double, square), text
    assert float(rows[student]["total"]) == double + square
    assert says in text


def test_every_corpus_notebook_is_expected(graded):
    rows, _ = graded
    assert set(rows) == set(EXPECTED)


def test_nothing_escaped_the_sandbox(course, graded):
    rows, out = graded
    for canary in ["/tmp/pwned-by-student", "/work/pwned-by-student", "/work/pwned-by-student.pt",
                   "/work/pwned-by-student.db", "/work/pwned-by-student.fifo"]:
        assert not os.path.lexists(canary), canary
    assert sorted(p.name for p in out.iterdir()) == ["feedback", "grades.csv", "grading-secret.txt", "review.csv"]
    assert (out / "grades.csv").is_file() and "999" not in (out / "grades.csv").read_text()
    assert not [p for p in course.iterdir() if p.name.startswith(".out.")]  # the staging folders are gone
    for page in (out / "feedback").glob("*.md"):
        text = page.read_text()
        assert CANARY not in text and str(out) not in text and "BEGIN SOLUTION" not in text, page.name
    daemons = subprocess.run(["pgrep", "-f", "daemon_rewrites_grades"], capture_output=True, text=True).stdout
    assert not daemons.split(), "a student's daemon outlived its sandbox"


def test_regrading_with_the_same_secret_gives_identical_grades_csv(course, graded):
    _, out = graded
    rows = grade(course, course / "again")
    assert (course / "again" / "grades.csv").read_bytes() == (out / "grades.csv").read_bytes()
    assert (course / "again" / "grading-secret.txt").read_text() == "the same secret\n"
    assert rows == graded[0]


def test_scans_and_the_sandbox_flag_for_review(graded):
    _, out = graded
    flagged = {row["student"] for row in csv.DictReader(open(out / "review.csv"))}
    assert {"monkeypatch", "lying_objects", "starts_a_shell", "forges_results", "fork_bomb",
            "injects_frames"} <= flagged
    assert "solution" not in flagged and "unsolved" not in flagged


def test_a_forged_import_note_goes_to_review_not_to_the_student(graded):
    _, out = graded
    flags = [row["flag"] for row in csv.DictReader(open(out / "review.csv")) if row["student"] == "injects_frames"]
    assert any("does not know (forged?): GRADER NOTE" in flag for flag in flags), flags
    notes = feedback(out, "injects_frames").split("## Flagged for review")[0]  # the flags list it, as its own text
    assert "## Notes" in notes and "GRADER NOTE" not in notes
    assert "not available while grading" in feedback(out, "imports_tooling")  # the grader's own notes do reach it


def test_html_feedback_escapes_student_text(course, graded):
    _, out = graded
    page = (out / "feedback" / "lying_objects.html").read_text()
    assert "<script" not in page and page.startswith("<!DOCTYPE html>")
    page = (out / "feedback" / f"{file_name(HOSTILE_NAMES[1])}.html").read_text()
    assert "<img" not in page and "&lt;img" in page
    assert '\n"\'=HYPERLINK(' in (out / "grades.csv").read_text()  # quoted: a spreadsheet shows it as text


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
