"""Submissions that are odd as files (not as code): each is read, noted and graded, and never stops the batch.

Found by a red-team pass: an encrypted zip raised RuntimeError before anything was graded, a Latin-1 file name
crashed the write of grades.csv, and a notebook of 8 cells of 1 MB of code took minutes to parse.
"""

import csv
import io
import json
import os
import time
import zipfile

from coursekit.grading import feedback, submissions
from coursekit.grading.grader import Grade


def notebook_bytes(*sources: str) -> bytes:
    cells = [{"cell_type": "code", "metadata": {}, "outputs": [], "source": source} for source in sources]
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()


def test_an_encrypted_zip_is_noted_not_a_crash(tmp_path):
    path = tmp_path / "ann.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("02_bigram_mlp.ipynb", notebook_bytes("x = 1"))
    data = bytearray(path.read_bytes())
    data[6] |= 1  # the local header's "encrypted" flag bit
    central = data.rfind(b"PK\x01\x02")
    data[central + 8] |= 1  # and the central directory's
    path.write_bytes(bytes(data))
    with zipfile.ZipFile(path) as archive:  # the premise: zipfile refuses it without a password
        assert archive.infolist()[0].flag_bits & 1

    submission = submissions.read_submission(path)
    assert submission.notebooks == []
    assert any("not a readable zip" in note and "encrypted" in note for note in submission.notes), submission.notes


def test_a_latin1_file_name_becomes_a_readable_student_name_in_grades_csv(tmp_path):
    raw_name = os.fsdecode(b"M\xfcller.ipynb")  # as os.listdir returns a name that is not UTF-8
    (tmp_path / "class").mkdir()
    (tmp_path / "class" / raw_name).write_bytes(notebook_bytes("x = 1"))
    [submission] = submissions.collect([tmp_path / "class" / raw_name])
    assert submission.student == "Müller"
    table = feedback.grades_csv([Grade(submission.student, [])])
    table.encode("utf-8")  # what write_text does: must not raise UnicodeEncodeError
    assert [row["student"] for row in csv.DictReader(io.StringIO(table))] == ["Müller"]


def test_huge_code_cells_are_graded_as_empty_quickly():
    one_megabyte = "x = (1 + 2) * 3\n" * (1_000_000 // 16)
    started = time.process_time()
    notebook = submissions.read_notebook(notebook_bytes("y = 2", *[one_megabyte] * 8), "big.ipynb")
    elapsed = time.process_time() - started
    assert [cell.source for cell in notebook.cells] == ["y = 2"] + [""] * 8
    assert sum("graded as empty" in note for note in notebook.notes) == 8
    assert elapsed < 5, f"reading a 9 MB notebook took {elapsed:.1f} s of CPU"  # was minutes: a hang, not a speed


def test_the_code_budget_counts_the_whole_notebook():
    cell = "z = 0\n" * (submissions.MAX_CELL_CHARS // 6 - 1)
    count = submissions.MAX_CODE_CHARS // len(cell) + 3
    notebook = submissions.read_notebook(notebook_bytes(*[cell] * count), "many.ipynb")
    kept = [c for c in notebook.cells if c.source]
    assert sum(len(c.source) for c in kept) <= submissions.MAX_CODE_CHARS
    assert len(kept) == submissions.MAX_CODE_CHARS // len(cell)
    assert any("graded as empty" in note for note in notebook.notes)


def test_a_folder_has_a_total_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_FOLDER_BYTES", 3000)
    folder = tmp_path / "bob"
    folder.mkdir()
    for name in ("01_a.ipynb", "02_b.ipynb", "03_c.ipynb"):
        (folder / name).write_bytes(notebook_bytes("w = '" + "a" * 1200 + "'"))
    submission = submissions.read_submission(folder)
    assert [n.filename for n in submission.notebooks] == ["01_a.ipynb", "02_b.ipynb"]
    assert any("03_c.ipynb" in note and "budget" in note for note in submission.notes), submission.notes


# Red team 5, F2: a 5 MB LMS download of highly compressible members crashed the grader before anything was written.

def test_an_lms_download_reads_each_students_files_within_budgets(tmp_path, monkeypatch):
    from coursekit.grading import lms

    monkeypatch.setattr(lms, "MAX_STUDENT_BYTES", 2**20)
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("02_bigram_mlp.ipynb", notebook_bytes("x = 1"))
        archive.writestr("deeper.zip", b"PK")
    download = tmp_path / "canvas.zip"
    with zipfile.ZipFile(download, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("alice_1_10_02_bigram_mlp.ipynb", notebook_bytes("y = 2"))
        archive.writestr("bomb_2_20_02_bigram_mlp.ipynb", b" " * (8 * 2**20))  # 8 MB of spaces, 8 kB zipped
        archive.writestr("carol_3_30_hw.zip", inner.getvalue())
    assert lms.detect(download) == "canvas"
    alice, bomb, carol = lms.split(download, "canvas")
    assert [c.source for c in alice.submission.notebooks[0].cells] == ["y = 2"]
    assert bomb.submission.notebooks == []
    assert any("02_bigram_mlp.ipynb" in note and "1 MB" in note for note in bomb.submission.notes), bomb.submission
    assert [n.filename for n in carol.submission.notebooks] == ["02_bigram_mlp.ipynb"]
    assert any("deeper.zip" in note and "not opened" in note for note in carol.submission.notes), carol.submission


def test_an_lms_download_with_too_many_files_is_refused_with_the_limit(tmp_path, monkeypatch):
    from coursekit.grading import lms

    monkeypatch.setattr(lms, "MAX_FILES", 3)
    download = tmp_path / "canvas.zip"
    with zipfile.ZipFile(download, "w") as archive:
        for number in range(4):
            archive.writestr(f"s{number}_{number}_1_hw.ipynb", notebook_bytes("x = 1"))
    with __import__("pytest").raises(lms.LayoutError, match="4 files.*limit of 3"):
        lms.detect(download)
