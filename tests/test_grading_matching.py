"""Matching a student's notebooks to the rubric's as one assignment, and the feedback that follows from it.

The unit tests match the real solution notebooks (no sandbox). One batch grades three students of notebook 04
end to end, two at a time, for `--rubric 02,04`: a perfect 04 alone, a 04 whose decode cell fails, and the
untouched handout.
"""

import csv
import itertools
import json
from pathlib import Path

import pytest

from coursekit.cli import main
from coursekit.grading import matching, submissions

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
COURSE = matching.catalogue(SOLUTIONS)
TWO_AND_FOUR = ["02_bigram_mlp", "04_gpt_training"]
ORIGINAL = ["02_bigram_mlp", "03_attention", "04_gpt_training"]


def submitted(stem: str, filename: str) -> submissions.StudentNotebook:
    return submissions.read_notebook((SOLUTIONS / f"{stem}.ipynb").read_bytes(), filename)


def matched(notebooks, wanted):
    found = matching.match(notebooks, wanted, COURSE)
    return {stem: notebook.filename for stem, notebook in found.notebooks.items()}, found.notes


def test_a_04_is_graded_as_04_though_it_shares_exercises_with_02():
    assert matched([submitted("04_gpt_training", "04_gpt_training.ipynb")], TWO_AND_FOUR) == (
        {"04_gpt_training": "04_gpt_training.ipynb"}, [])
    assert matched([submitted("04_gpt_training", "homework.ipynb")], TWO_AND_FOUR)[0] == {
        "04_gpt_training": "homework.ipynb"}  # by its cells alone


@pytest.mark.parametrize("order", list(itertools.permutations(["03_attention", "04_gpt_training"])))
def test_03_and_04_without_02_leave_only_02_missing_in_any_order(order):
    notebooks = [submitted(stem, f"part{i}.ipynb") for i, stem in enumerate(order)]
    found, notes = matched(notebooks, ORIGINAL)
    assert found == {stem: f"part{order.index(stem)}.ipynb" for stem in order} and notes == []


@pytest.mark.parametrize("order", list(itertools.permutations(ORIGINAL)))
def test_the_whole_original_assignment_matches_in_any_order(order):
    notebooks = [submitted(stem, f"{i}.ipynb") for i, stem in enumerate(order)]
    assert matched(notebooks, ORIGINAL)[0] == {stem: f"{order.index(stem)}.ipynb" for stem in order}


def test_the_same_notebook_twice_is_graded_once_and_named():
    found, notes = matched([submitted("02_bigram_mlp", "a.ipynb"), submitted("02_bigram_mlp", "b.ipynb")],
                           TWO_AND_FOUR)
    assert found == {"02_bigram_mlp": "a.ipynb"}
    assert notes == ["b.ipynb also looks like 02_bigram_mlp, which a.ipynb answers at least as well: not graded"]


def test_a_notebook_of_another_week_is_named_and_one_that_fits_nothing_too():
    found, notes = matched([submitted("01_tokenization", "x.ipynb"), submissions.read_notebook(b"print(1)", "y.py")],
                           TWO_AND_FOUR)
    assert found == {}
    assert notes == ["x.ipynb: this looks like notebook 01 (01_tokenization); the assignment is 02, 04, so it was "
                     "not graded", "y.py fits none of the assignment's notebooks (02, 04): not graded"]


def test_one_file_with_nothing_to_go_by_is_still_graded_for_a_one_notebook_rubric():
    script = submissions.read_notebook(b"def encode(s): return []", "work.py")
    assert matched([script], ["02_bigram_mlp"])[0] == {"02_bigram_mlp": "work.py"}


def _cells(stem: str) -> list[dict]:
    return json.loads((SOLUTIONS / f"{stem}.ipynb").read_text())["cells"]


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("class")
    broken = _cells("04_gpt_training")
    [decode] = [c for c in broken if c["metadata"].get("coursekit", {}).get("exercise") == "decode"]
    decode["source"] = "raise ValueError('oops')\n" + "".join(decode["source"])
    for student, cells in {"perfect": _cells("04_gpt_training"), "broken": broken,
                           "empty": json.loads((ROOT / "notebooks" / "04_gpt_training.ipynb").read_text())["cells"]
                           }.items():
        (root / "class" / student).mkdir(parents=True)
        (root / "class" / student / "04_gpt_training.ipynb").write_text(json.dumps(
            {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert main(["grade", str(root / "class"), "--rubric", "02,04", "--solutions", str(SOLUTIONS),
                 "--out", str(root / "out"), "--jobs", "2"]) == 0
    return root / "out"


def test_a_perfect_04_gets_all_its_points_and_02_is_missing_without_flags(graded):
    row = {r["student"]: r for r in csv.DictReader(open(graded / "grades.csv"))}["perfect"]
    assert row["total"] == "55" and row["04_gpt_training.block"] == "20" and row["02_bigram_mlp.encode"] == "0"
    page = (graded / "feedback" / "perfect.md").read_text()
    assert "missing: no submitted notebook is 02\\_bigram\\_mlp.ipynb" in page and "Flagged" not in page
    assert "perfect" not in (graded / "review.csv").read_text()


def test_a_name_defined_in_a_failed_cell_is_blamed_on_that_cell(graded):
    page = (graded / "feedback" / "broken.md").read_text()
    assert "decode is defined in cell 12, which failed (ValueError: oops)" in page
    assert "never defines decode" not in page


def test_an_empty_notebook_gets_one_line_per_exercise(graded):
    page = (graded / "feedback" / "empty.md").read_text()
    section = page.split("## 04\\_gpt\\_training.block: 0 / 20")[1].split("##")[0]
    assert section.split() and section.strip() == "*not attempted: the exercise's cell is as handed out*"
    assert page.count("NameError") == 0 and page.count("not attempted") >= 9


def test_a_name_error_gets_no_hint_about_unknown_characters():
    from coursekit.checks.characters import _raises_naming

    message = _raises_naming([{"raised": "NameError", "message": "name 'stoi' is not defined"}])
    assert "stoi" in message and "unknown character" not in message
