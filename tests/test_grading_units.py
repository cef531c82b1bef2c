"""The grader's pieces that need no sandbox: the wire format, reading broken files, rubrics, outputs."""

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from coursekit.checks.core import Outcome, ProbeError
from coursekit.grading import containment, feedback, gradescope, publish, rubric, submissions, wire
from coursekit.grading.grader import ExerciseGrade, Grade

ROOT = Path(__file__).resolve().parent.parent


def test_plain_data_crosses_the_wire_unchanged():
    value = [None, True, 3, 2.5, "é", {"a": [np.arange(6, dtype=np.int64).reshape(2, 3)]}, ProbeError("boom")]
    [message] = wire.FrameReader().feed(wire.frame({"type": "x", "data": wire.encode_value(value)}))
    back = wire.decode_value(message["data"])
    assert back[:5] == value[:5] and back[6] == value[6]
    assert back[5]["a"][0].dtype == np.int64 and (back[5]["a"][0] == value[5]["a"][0]).all()


@pytest.mark.parametrize("data", [
    {"array": {"dtype": "|O", "shape": [1], "data": ""}},  # object arrays could hold anything
    {"array": {"dtype": "<f8", "shape": [3], "data": "AAAA"}},  # size does not match
    {"array": {"dtype": [("a", "<i8")], "shape": [1], "data": "AAAAAAAAAAA="}},  # structured: not numbers
    {"pickle": "gASV"},
    {"dict": {"a": 1}, "extra": 2},
])
def test_odd_data_fails_its_test_as_not_plain_data(data):
    result = wire.decode_value(data)
    assert isinstance(result, ProbeError) and "not plain data" in result.message


def nested(depth):
    value = [1.0]
    for _ in range(depth):
        value = [value]
    return value


def test_a_deeply_nested_result_fails_its_test_not_the_notebook():
    result = wire.decode_value(wire.encode_value(nested(100)))
    assert isinstance(result, ProbeError) and "nested deeper than 64" in result.message
    assert wire.decode_value(wire.encode_value(nested(60))) == nested(60)


def test_junk_on_the_channel_is_a_wire_error():
    with pytest.raises(wire.WireError):
        list(wire.FrameReader().feed(b"\x00" * 7 + b"\x04" + b"junk"))
    with pytest.raises(wire.WireError, match="larger than the limit"):
        list(wire.FrameReader().feed(b"\xff" * 16))


def test_frames_read_in_the_same_chunk_as_junk_are_delivered_before_the_error():
    """A slow grader reads the worker's results and a student's junk in one read: the results still count (the
    corpus's forges_results lost its honest double under load)."""
    delivered = []
    with pytest.raises(wire.WireError):
        for message in wire.FrameReader().feed(wire.frame({"type": "test", "n": 1}) + b"junk" * 1000):
            delivered.append(message)
    assert delivered == [{"type": "test", "n": 1}]


def test_a_student_dict_cannot_pose_as_an_array():
    assert wire.decode_value(wire.encode_value({"array": 1})) == {"array": 1}


def test_the_staged_coursekit_holds_no_answers_and_no_tooling(tmp_path):
    staged = containment.stage("05_prompting", [], tmp_path / "05")
    names = {p.relative_to(staged).as_posix() for p in staged.rglob("*.py")}
    assert "coursekit/sampling.py" not in names and "coursekit/data.py" in names
    assert not {"coursekit/build.py", "coursekit/cli.py", "coursekit/grading/grader.py"} & names
    assert {"coursekit/grading/worker.py", "coursekit/checks/core.py", "coursekit/checks/sampling.py"} <= names
    note = containment.unavailable("05_prompting")["coursekit.sampling"]
    assert note == ("coursekit.sampling holds the answers to this notebook's exercises and is not available "
                    "while grading")


def test_symlinks_and_pipes_are_refused_without_being_opened(tmp_path):
    (tmp_path / "real.ipynb").write_text('{"cells": []}')
    (tmp_path / "link.ipynb").symlink_to(tmp_path / "real.ipynb")
    (tmp_path / "linked").symlink_to(tmp_path)
    os.mkfifo(tmp_path / "pipe.ipynb")  # opening it would block forever
    assert "symbolic link" in submissions.read_submission(tmp_path / "link.ipynb").notes[0]
    assert "symbolic link" in submissions.read_submission(tmp_path / "linked").notes[0]
    assert "not a regular file" in submissions.read_submission(tmp_path / "pipe.ipynb").notes[0]
    folder = submissions.read_submission(tmp_path)
    assert [n.filename for n in folder.notebooks] == ["real.ipynb"]
    assert any("pipe.ipynb" in note for note in folder.notes) and any("link.ipynb" in n for n in folder.notes)


def test_a_zip_bomb_stops_at_the_budget(tmp_path):
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            archive.writestr(f"n{index}.ipynb", b" " * (30 * 2**20))
    found = submissions.read_submission(tmp_path / "bomb.zip")
    assert len(found.notebooks) == 2 and any("budget" in note for note in found.notes)


def test_three_students_of_the_same_name_get_unique_names(tmp_path):
    for folder in ("a", "b", "c", "d"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / ("alice-2.ipynb" if folder == "d" else "alice.ipynb")).write_text('{"cells": []}')
    found = submissions.collect(sorted(tmp_path.glob("*/*.ipynb")))
    assert sorted(s.student for s in found) == ["alice", "alice-2", "alice-3", "alice-4"]


def test_outputs_replace_a_directory_or_symlink_in_their_place(tmp_path):
    out = tmp_path / "out"
    (out / "grades.csv").mkdir(parents=True)
    (out / "review.csv").symlink_to(tmp_path / "elsewhere.csv")
    with publish.staging(out) as fresh:
        (fresh / "grades.csv").write_text("a\n")
        (fresh / "review.csv").write_text("b\n")
    assert (out / "grades.csv").read_text() == "a\n" and not (out / "review.csv").is_symlink()
    assert not (tmp_path / "elsewhere.csv").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


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


@pytest.mark.parametrize("level", ["bubblewrap", "separate uid"])
def test_a_data_folder_the_sandbox_cannot_read_is_named_with_what_to_do(tmp_path, monkeypatch, capsys, level):
    """Under bubblewrap the folders above a bind are made afresh inside the sandbox, so a readable folder inside a
    private one (CI's layout) is kept; without bubblewrap the sandbox's uid must be able to walk down to it."""
    from coursekit.grading import grader

    monkeypatch.setattr(containment, "level", lambda: level)
    private = tmp_path / "private"  # 0700, with the corpus in it
    private.mkdir(mode=0o700)
    (private / "tinyshakespeare.txt").write_text("First Citizen:")
    hidden = tmp_path / "locked" / "shared"  # readable itself, but inside a folder others cannot enter
    hidden.mkdir(parents=True)
    (tmp_path / "locked").chmod(0o700)
    hidden.chmod(0o755)
    (hidden / "tinyshakespeare.txt").write_text("First Citizen:")
    empty = tmp_path / "empty"  # private but empty: nothing is lost, nothing to say
    empty.mkdir(mode=0o700)
    readable = Path(__import__("tempfile").mkdtemp())
    readable.chmod(0o755)
    monkeypatch.setenv("COURSEKIT_DATA_DIR", os.pathsep.join(map(str, [private, hidden, empty, readable])))
    kept, notes = containment.sandbox_data_dirs([private, hidden, empty, readable])
    unreadable = [private] if level == "bubblewrap" else [private, hidden]
    assert kept == ([str(hidden.resolve())] if level == "bubblewrap" else []) + [str(readable.resolve())]
    assert grader.grade([], [], ROOT / "solutions") == []
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == len(unreadable) and lines == notes
    for folder, line in zip(unreadable, lines):
        assert f"data folder {folder} " in line and "chmod o+rx" in line and "COURSEKIT_DATA_DIR" in line
    readable.rmdir()
