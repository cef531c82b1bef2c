"""LMS bulk downloads: each layout split into students with their ids, odd names reported, grades sent back.

The command-line tests use a rubric of written questions only, so nothing runs in a sandbox: they are about
who is who, not about points.
"""

import csv
import io
import json
import zipfile
from pathlib import Path

import pytest

from coursekit.cli import main
from coursekit.grading import lms

EMPTY = json.dumps({"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def notebook(answer: str = "") -> str:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "Why?"},
             {"cell_type": "markdown", "metadata": {"coursekit": {"written": "why"}}, "source": answer}]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def make(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder


def who(students):
    return [(s.submission.student, s.student_id, sorted(n.filename for n in s.submission.notebooks))
            for s in students]


def test_a_flat_canvas_download_is_one_submission_per_student(tmp_path):
    folder = make(tmp_path / "canvas", {
        "smith_john_12345_67890_02_bigram_mlp.ipynb": EMPTY,
        "smith_john_12345_67891_04_gpt_training.ipynb": EMPTY,
        "leeann_late_777_888_02_bigram_mlp-1.ipynb": EMPTY,  # late, and a resubmission ("-1")
    })
    assert lms.detect(folder) == "canvas"
    assert who(lms.split(folder, "canvas")) == [
        ("leeann", "777", ["02_bigram_mlp.ipynb"]),
        ("smith_john", "12345", ["02_bigram_mlp.ipynb", "04_gpt_training.ipynb"])]


def test_a_moodle_download_in_folders_or_flat_keeps_the_participant_id(tmp_path):
    folders = make(tmp_path / "moodle", {
        "John Smith_12345_assignsubmission_file_/02_bigram_mlp.ipynb": EMPTY,
        "John Smith_12345_assignsubmission_file_/notes/extra.ipynb": EMPTY,
        "Ann Lee_678_assignsubmission_file_/hw.ipynb": EMPTY,
        "Ann Lee_678_assignsubmission_onlinetext_/onlinetext.html": "<p>hi</p>",
    })
    assert lms.detect(folders) == "moodle"
    assert who(lms.split(folders, "moodle")) == [("Ann Lee", "678", ["hw.ipynb"]),
                                                 ("John Smith", "12345", ["02_bigram_mlp.ipynb", "notes/extra.ipynb"])]
    flat = tmp_path / "moodle.zip"
    with zipfile.ZipFile(flat, "w") as archive:
        archive.writestr("John Smith_12345_assignsubmission_file_02_bigram_mlp.ipynb", EMPTY)
        archive.writestr("__MACOSX/._John Smith_12345_assignsubmission_file_02_bigram_mlp.ipynb", "junk")
    assert lms.detect(flat) == "moodle"
    assert who(lms.split(flat, "moodle")) == [("John Smith", "12345", ["02_bigram_mlp.ipynb"])]


def test_a_blackboard_download_grades_the_latest_attempt(tmp_path):
    folder = make(tmp_path / "bb", {
        "Week 4_jsmith_attempt_2024-03-01-14-05-09.txt": "Name: John Smith",
        "Week 4_jsmith_attempt_2024-03-01-14-05-09_old.ipynb": EMPTY,
        "Week 4_jsmith_attempt_2024-03-02-09-00-00.txt": "Name: John Smith",
        "Week 4_jsmith_attempt_2024-03-02-09-00-00_04_gpt_training.ipynb": EMPTY,
        "Week 4_alee_attempt_2024-03-01-10-00-00.txt": "Name: Ann Lee",
    })
    assert lms.detect(folder) == "blackboard"
    [ann, john] = lms.split(folder, "blackboard")
    assert who([john]) == [("jsmith", "jsmith", ["04_gpt_training.ipynb"])]
    assert "graded the latest (2024-03-02-09-00-00)" in john.submission.notes[0]
    assert ann.submission.notebooks == [] and "no .ipynb" in ann.submission.notes[0]


def test_names_that_do_not_follow_the_layout_are_reported_not_guessed(tmp_path):
    folder = make(tmp_path / "mixed", {"smith_john_12345_67890_02.ipynb": EMPTY, "alice.ipynb": EMPTY})
    with pytest.raises(lms.LayoutError, match="Canvas download.*alice.ipynb"):
        lms.detect(folder)
    assert lms.detect(make(tmp_path / "plain", {"alice.ipynb": EMPTY, "bob.ipynb": EMPTY})) is None
    assert lms.detect(make(tmp_path / "class", {"alice/02.ipynb": EMPTY, "bob/02.ipynb": EMPTY})) is None


def test_the_canvas_import_has_its_columns_and_no_formulas():
    rows = list(csv.reader(io.StringIO(lms.canvas_csv([("=SUM(A1)", "1", 2.5)], "HW 4", 10))))
    assert rows == [["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "HW 4"],
                    ["Points Possible", "", "", "", "", "10"], ["'=SUM(A1)", "1", "", "", "", "2.5"]]


def test_same_names_get_their_ids(tmp_path):
    folder = make(tmp_path / "canvas", {"lee_1_10_a.ipynb": EMPTY, "lee_2_20_a.ipynb": EMPTY})
    assert [s.submission.student for s in lms.split(folder, "canvas")] == ["lee (1)", "lee (2)"]


@pytest.fixture
def course(tmp_path):
    solutions = make(tmp_path / "solutions", {"02_bigram_mlp.ipynb": notebook("*Write your answer here.*")})
    rubric = tmp_path / "rubric.json"
    rubric.write_text(json.dumps({"name": "essay", "items": [{"notebook": "02", "written": "why", "points": 4}]}))
    return solutions, rubric


def grade(download: Path, course, out: Path, *extra) -> int:
    solutions, rubric = course
    return main(["grade", str(download), "--rubric", str(rubric), "--solutions", str(solutions), "--out", str(out),
                 *extra])


def test_canvas_grades_go_back_with_the_canvas_ids(tmp_path, course):
    folder = make(tmp_path / "canvas", {"smithjohn_12345_67890_02_bigram_mlp.ipynb": notebook("Because."),
                                        "leeann_777_888_hw.ipynb": notebook("")})
    assert grade(folder, course, tmp_path / "out", "--assignment-name", "Notebook 02") == 0
    rows = list(csv.DictReader(open(tmp_path / "out" / "grades.csv")))
    assert [(r["student"], r["student_id"], r["total"]) for r in rows] == [("leeann", "777", "0"),
                                                                           ("smithjohn", "12345", "0")]
    upload = list(csv.reader(open(tmp_path / "out" / "canvas_import.csv")))
    assert upload[0][-1] == "Notebook 02" and upload[1][-1] == "4"
    assert [(r[0], r[1]) for r in upload[2:]] == [("leeann", "777"), ("smithjohn", "12345")]


def test_moodle_grades_go_back_in_the_grading_worksheet(tmp_path, course):
    folder = make(tmp_path / "moodle", {"John Smith_12345_assignsubmission_file_/02.ipynb": notebook("Yes.")})
    assert grade(folder, course, tmp_path / "out") == 0
    [row] = csv.DictReader(open(tmp_path / "out" / "moodle_grading_worksheet.csv"))
    assert (row["Identifier"], row["Full name"], row["Maximum Grade"]) == ("Participant 12345", "John Smith", "4")


def test_a_mixed_folder_stops_with_the_odd_names(tmp_path, course, capsys):
    folder = make(tmp_path / "mixed", {"smithjohn_12345_67890_02.ipynb": EMPTY, "stray copy.ipynb": EMPTY})
    assert grade(folder, course, tmp_path / "out") == 2
    assert "stray copy.ipynb" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# Red team 5, F1: the student's own file name comes last in every layout, after what the LMS writes. A name that
# imitates another student's prefix must stay the uploader's file, and must not change how the download is read.

def test_a_blackboard_file_named_like_another_students_attempt_stays_the_uploaders(tmp_path):
    folder = make(tmp_path / "bb", {
        "Week 4_alice_attempt_2024-03-01-10-00-00.txt": "Name: Alice Ng (alice)",
        "Week 4_alice_attempt_2024-03-01-10-00-00_02_bigram_mlp.ipynb": EMPTY,
        "Week 4_mallory_attempt_2024-03-01-11-00-00.txt": "Name: Mal Lory (mallory)",
        # mallory's own file is "x_alice_attempt_2099-01-01-00-00-00_02_bigram_mlp.ipynb": a later "attempt" of alice
        "Week 4_mallory_attempt_2024-03-01-11-00-00_x_alice_attempt_2099-01-01-00-00-00_02_bigram_mlp.ipynb": EMPTY,
    })
    assert lms.detect(folder) == "blackboard"
    assert who(lms.split(folder, "blackboard")) == [
        ("alice", "alice", ["02_bigram_mlp.ipynb"]),
        ("mallory", "mallory", ["x_alice_attempt_2099-01-01-00-00-00_02_bigram_mlp.ipynb"])]


def test_blackboard_user_names_are_what_follows_the_assignment_every_file_starts_with(tmp_path):
    folder = make(tmp_path / "bb", {  # an assignment name and a user name with underscores of their own
        "HW_2 final_j_smith_attempt_2024-03-01-10-00-00_02.ipynb": EMPTY,
        "HW_2 final_ann_attempt_2024-03-01-10-00-00_a_1_2_b.ipynb": EMPTY,
    })
    assert lms.detect(folder) == "blackboard"
    assert [(s.student_id, s.submission.notes) for s in lms.split(folder, "blackboard")] == [
        ("ann", []), ("j_smith", [])]


@pytest.mark.parametrize("files, kind", [
    ({"Week 4_ann_attempt_2024-03-01-10-00-00_1_2_hw.ipynb": EMPTY,  # Canvas's "_<id>_<id>_" in a file name
      "Week 4_bob_attempt_2024-03-01-10-00-00_hw.ipynb": EMPTY}, "blackboard"),
    ({"Ann Lee_678_assignsubmission_file_1_2_hw.ipynb": EMPTY,
      "Bob Ray_679_assignsubmission_file_hw.ipynb": EMPTY}, "moodle"),
    ({"leeann_777_888_x_1_assignsubmission_file_hw.ipynb": EMPTY,  # Moodle's and Blackboard's markers
      "raybob_778_889_x_attempt_2024-03-01-10-00-00_hw.ipynb": EMPTY, "smithjohn_779_890_hw.ipynb": EMPTY}, "canvas"),
])
def test_a_students_file_name_cannot_change_which_lms_the_download_is_read_as(tmp_path, files, kind):
    folder = make(tmp_path / kind, files)
    assert lms.detect(folder) == kind
    students = lms.split(folder, kind)
    assert len(students) == len(files) and all(len(s.submission.notebooks) == 1 for s in students)


def test_a_moodle_full_name_that_holds_another_students_marker_stays_its_own(tmp_path):
    """Red team 5: a full name "Alice Smith_12345_assignsubmission_file_" took Alice's id (and, sorting first,
    used up her byte budget with a 65 MB file); names starting with "_" or "." stopped or vanished."""
    folder = make(tmp_path / "moodle", {
        "Alice Smith_12345_assignsubmission_file_/02.ipynb": EMPTY,
        "Alice Smith_12345_assignsubmission_file__999_assignsubmission_file_/pad.ipynb": EMPTY,
        "Alice Smith_12345_assignsubmission_file_!_998_assignsubmission_file_/pad.ipynb": EMPTY,
        "_Underscore_997_assignsubmission_file_/a.ipynb": EMPTY,
        ".Dot_996_assignsubmission_file_/b.ipynb": EMPTY,
    })
    assert lms.detect(folder) == "moodle"
    by_id = {s.student_id: sorted(n.filename for n in s.submission.notebooks) for s in lms.split(folder, "moodle")}
    assert by_id == {"12345": ["02.ipynb"], "999": ["pad.ipynb"], "998": ["pad.ipynb"], "997": ["a.ipynb"],
                     "996": ["b.ipynb"]}


def test_a_flat_moodle_name_with_two_markers_is_given_to_nobody(tmp_path):
    folder = make(tmp_path / "moodle", {
        "Bob Ray_679_assignsubmission_file_hw.ipynb": EMPTY,
        "Ann Lee_678_assignsubmission_file_Bob Ray_679_assignsubmission_file_hw.ipynb": EMPTY,
    })
    with pytest.raises(lms.LayoutError, match="Ann Lee_678"):
        lms.detect(folder)


def test_one_students_files_share_one_notebook_budget_across_their_zips(tmp_path):
    """Red team 5: the 50-notebook limit held per zip, so a 0.7 MB upload of six zips made 300 notebooks to parse."""
    folder = tmp_path / "canvas"
    folder.mkdir()
    for number in range(3):
        with zipfile.ZipFile(folder / f"mallory_7_{number}_part{number}.zip", "w") as archive:
            for index in range(30):
                archive.writestr(f"n{number}_{index}.ipynb", EMPTY)
    [mallory] = lms.split(folder, lms.detect(folder))
    assert len(mallory.submission.notebooks) == 50
    assert any("graded the first" in note for note in mallory.submission.notes), mallory.submission.notes
