"""The grader's pieces that need no sandbox: the wire format, reading broken files, rubrics, outputs."""

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coursekit.checks.core import Outcome, ProbeError
from coursekit.grading import feedback, gradescope, rubric, submissions, wire
from coursekit.grading.grader import ExerciseGrade, Grade

ROOT = Path(__file__).resolve().parent.parent
KEY = b"k" * 32


def test_plain_data_crosses_the_wire_unchanged():
    value = [None, True, 3, 2.5, "é", {"a": [np.arange(6, dtype=np.int64).reshape(2, 3)]}, ProbeError("boom")]
    [message] = wire.FrameReader(KEY).feed(wire.frame({"type": "x", "data": wire.encode_value(value)}, KEY))
    back = wire.decode_value(message["data"])
    assert back[:5] == value[:5] and back[6] == value[6]
    assert back[5]["a"][0].dtype == np.int64 and (back[5]["a"][0] == value[5]["a"][0]).all()


@pytest.mark.parametrize("data", [
    {"array": {"dtype": "|O", "shape": [1], "data": ""}},  # object arrays could hold anything
    {"array": {"dtype": "<f8", "shape": [3], "data": "AAAA"}},  # size does not match
    {"pickle": "gASV"},
    {"dict": {"a": 1}, "extra": 2},
])
def test_odd_data_is_refused(data):
    with pytest.raises(wire.WireError):
        wire.decode_value(data)


def test_frames_without_the_key_are_refused():
    with pytest.raises(wire.WireError, match="key"):
        wire.FrameReader(KEY).feed(wire.frame({"type": "done"}, b"guessed" * 5))


def test_a_student_dict_cannot_pose_as_an_array():
    assert wire.decode_value(wire.encode_value({"array": 1})) == {"array": 1}


def test_a_truncated_notebook_keeps_its_complete_cells():
    text = json.dumps({"cells": [{"cell_type": "code", "source": "a = 1", "metadata": {}},
                                 {"cell_type": "code", "source": "b = 2", "metadata": {}}]})
    notebook = submissions.read_notebook(text[:-30].encode(), "x.ipynb")
    assert [c.source for c in notebook.cells] == ["a = 1"] and "damaged JSON" in notebook.notes[0]


def test_a_class_folder_gives_one_submission_per_entry(tmp_path):
    for student in ("bob", "ann"):
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "02.ipynb").write_text('{"cells": []}')
    with zipfile.ZipFile(tmp_path / "class" / "cid.zip", "w") as archive:
        archive.writestr("work/02.ipynb", '{"cells": []}')
        archive.writestr("__MACOSX/._02.ipynb", "junk")
    found = submissions.collect([tmp_path / "class"])
    assert [(s.student, len(s.notebooks)) for s in found] == [("ann", 1), ("bob", 1), ("cid", 1)]


def test_the_original_rubric_is_100_points_and_names_what_is_missing(tmp_path):
    assert sum(item.points for item in rubric.NAMED["original"].items) == 100
    assert sum(item.points for item in rubric.NAMED["original-part1"].items) == 35
    with pytest.raises(rubric.RubricError) as error:
        rubric.resolve(rubric.NAMED["original"], tmp_path)
    assert "no solution notebook '02'" in str(error.value) and "no solution notebook '04'" in str(error.value)
    assert "35 points" in str(error.value)


def test_the_original_rubric_resolves_against_the_notebooks_that_exist():
    solutions = ROOT / "solutions"
    part1 = rubric.NAMED["original-part1"]
    if rubric.find_solution("02", solutions) is None:
        pytest.skip("notebook 02 is not there yet")
    resolved = rubric.resolve(part1, solutions)
    assert [r.label for r in resolved][:2] == ["part1.chars", "part1.encode"]
    assert sum(r.points for r in resolved) == 35


def a_grade():
    evil = "<script>alert(1)</script> =cmd|' /C calc'!A0"
    return Grade(evil, [ExerciseGrade("double", "double", "01_tiny", 2, 1.0, [
        Outcome("small ints", True), Outcome("tensor", False, evil)], "")], [evil], [evil])


def test_feedback_escapes_student_text():
    page = feedback.to_html(a_grade(), "r")
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "| double | 1 / 2 |" in feedback.markdown(a_grade(), "r")
    formula = Grade("=HYPERLINK(1)", [])
    assert feedback.grades_csv([formula]).splitlines()[1].startswith("'=HYPERLINK")


def test_gradescope_results_follow_the_contract(tmp_path):
    results = json.loads(gradescope.write_results(a_grade(), tmp_path).read_text())
    assert results["score"] == 1.0
    test, review = results["tests"]  # the exercise, then the flags (instructors only)
    assert set(test) == {"name", "score", "max_score", "output", "visibility"}
    assert review["visibility"] == "hidden" and review["max_score"] == 0


def test_gradescope_zip_has_the_scripts_and_the_course(tmp_path):
    notebook = tmp_path / "01_tiny.ipynb"
    notebook.write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    out = gradescope.build_zip(ROOT, [notebook], "01_tiny", tmp_path / "autograder.zip")
    names = zipfile.ZipFile(out).namelist()
    assert {"setup.sh", "run_autograder", "course/pyproject.toml", "course/solutions/01_tiny.ipynb",
            "course/coursekit/grading/worker.py"} <= set(names)
    assert "--rubric 01_tiny" in zipfile.ZipFile(out).read("run_autograder").decode()
