"""Bulk downloads from Canvas, Moodle and Blackboard in, gradebook files out.

An LMS's "download all submissions" puts every student's files in one folder (or zip), with the student in each
file name. `split` recognises the layout from the names, makes one submission per student and keeps the LMS's
student id, so grades go back with `canvas_csv` / `moodle_csv`. Examples of the names (GRADING.md has more):

- Canvas: `smithjohn_12345_67890_02_bigram_mlp.ipynb`, `smithjohn_late_12345_67890_02_bigram_mlp-1.ipynb`
  (name, "late" when late, Canvas user id, attachment id, the student's file name; "-1" on a resubmission)
- Moodle: `John Smith_12345_assignsubmission_file_/02_bigram_mlp.ipynb` (a folder per student) or
  `John Smith_12345_assignsubmission_file_02_bigram_mlp.ipynb` (flat); 12345 is the participant id
- Blackboard: `Week 4_jsmith_attempt_2024-03-01-14-05-09_02_bigram_mlp.ipynb` (assignment, user name,
  attempt time, the file name) next to `Week 4_jsmith_attempt_2024-03-01-14-05-09.txt`

A folder where some names follow a layout and others do not is an error naming the odd ones: nothing is guessed.
"""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from coursekit.grading import submissions
from coursekit.grading.feedback import _cell, number

# The student's own file name comes last; each pattern takes the earliest split (non-greedy), so a file named like
# another student's prefix stays the uploader's. Ordered most specific first: `detect` takes the first layout every
# name follows, so "_1_2_" in a Moodle or Blackboard student's file name does not make the download look like Canvas.
PATTERNS = {
    "blackboard": re.compile(r"^(?P<head>[^/]+?)_attempt_"  # head: "<assignment>_<user name>", split in `split`
                             r"(?P<attempt>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)(?:\.txt|_(?P<file>[^/]+))$"),
    # Moodle in folders: the folder's name ends with the marker Moodle writes, so the last marker in it is Moodle's.
    # Flat: the student's full name comes first and their file name last, so a name or file holding a marker of its
    # own is ambiguous: it fits no layout (listed, never given to anyone).
    "moodle": re.compile(r"^(?:(?P<name>[^/]+)_(?P<id>\d+)_assignsubmission_(?:file|onlinetext)_/(?P<file>.+)"
                         r"|(?P<flat_name>(?:(?!_\d+_assignsubmission_)[^/])+)_(?P<flat_id>\d+)_assignsubmission_"
                         r"(?:file|onlinetext)_(?P<flat_file>(?:(?!_\d+_assignsubmission_)[^/])+))$"),
    "canvas": re.compile(r"^(?P<name>[^/]+?)_(?:late_)?(?P<id>\d+)_\d+_(?P<file>[^/]+)$"),
}
EXAMPLES = {"canvas": "name_[late_]userid_submissionid_file.ipynb",
            "moodle": "Full Name_12345_assignsubmission_file_/file.ipynb",
            "blackboard": "Assignment_username_attempt_YYYY-MM-DD-HH-MM-SS_file.ipynb"}
NAMES = {"canvas": "Canvas", "moodle": "Moodle", "blackboard": "Blackboard"}


# Budgets of a download. A real class is a few hundred students with notebooks under 5 MB each; a download past
# these is not a class but an attack on the grader's memory (a 5 MB zip can hold gigabytes of spaces).
MAX_FILES = 50_000  # files in one download
MAX_STUDENT_BYTES = submissions.MAX_ZIP_BYTES  # one student's files, decompressed, in total
READ_SUFFIXES = (".ipynb", ".py", ".zip")  # the files a submission is made of; others are never read


class LayoutError(ValueError):
    """A download whose file names do not (all) follow one LMS's layout; the message names the odd files."""


@dataclass
class Student:
    submission: submissions.Submission
    student_id: str


def _names(path: Path) -> list[str]:
    """Every file in a download folder or zip, relative to it, without hidden and macOS files (at most MAX_FILES,
    else LayoutError). In a folder, symbolic links count as files (their reading is refused, with a note)."""
    if path.is_dir():
        names = [str(p.relative_to(path)) for p in sorted(path.rglob("*")) if p.is_file() or p.is_symlink()]
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                names = [info.filename for info in archive.infolist() if not info.is_dir()]
        except (zipfile.BadZipFile, OSError):
            return []
    names = sorted(name for name in names if _visible(name))
    if len(names) > MAX_FILES:
        raise LayoutError(f"{path} holds {len(names):,} files, more than the limit of {MAX_FILES:,} for one "
                          "download: split it, or grade the students' files directly")
    return names


class _Download:
    """A download folder or zip, opened once; `read` returns a file's bytes, at most `limit` + 1 of them (so a
    caller sees that it was longer), whatever sizes the zip's header claims."""

    def __init__(self, path: Path):
        self.path = path
        self.archive = None if path.is_dir() else zipfile.ZipFile(path)

    def read(self, name: str, limit: int) -> bytes:
        if self.archive is not None:
            with self.archive.open(name) as handle:
                return handle.read(limit + 1)
        why = submissions.refusal(self.path / name)
        if why:
            raise OSError(why)
        with open(submissions.open_regular(self.path / name), "rb") as handle:
            return handle.read(limit + 1)

    def close(self) -> None:
        if self.archive is not None:
            self.archive.close()


def _visible(name: str) -> bool:
    """Not macOS's __MACOSX copies nor a hidden file (a student's folder may start with a dot: it is kept)."""
    parts = Path(name).parts
    return "__MACOSX" not in parts and not parts[-1].startswith(".")




def detect(path: Path) -> str | None:
    """Which LMS a download folder or zip comes from; None when no name follows any layout.

    Raises LayoutError when some names follow a layout and others do not (the layout most names follow).
    """
    if not (path.is_dir() or path.suffix.lower() == ".zip"):
        return None
    names = _names(path)
    odd_by_kind = {kind: [name for name in names if not pattern.match(name)] for kind, pattern in PATTERNS.items()}
    kind = min(odd_by_kind, key=lambda k: len(odd_by_kind[k]))  # the first (most specific) of the best
    odd = odd_by_kind[kind]
    if not names or len(odd) == len(names):
        return None
    if odd:
        raise LayoutError(f"{path} looks like a {NAMES[kind]} download, but these names do not follow its layout "
                          f"({EXAMPLES[kind]}): {', '.join(odd[:10])}{' …' if len(odd) > 10 else ''}; move them out "
                          "or rename them")
    return kind


def split(path: Path, kind: str) -> list[Student]:
    """One submission per student of an LMS download, named by the LMS's student name, with its student id."""
    by_id: dict[str, dict] = {}
    names = _names(path)
    parsed = {name: _fields(PATTERNS[kind].match(name)) for name in names}
    if kind == "blackboard":  # "<assignment>_<user name>": the assignment is what every file's head starts with
        assignment = os.path.commonprefix([fields["head"] for fields in parsed.values()]).rpartition("_")[0]
        for fields in parsed.values():
            fields["id"] = fields["head"][len(assignment) + 1:] if assignment else fields["head"]
    for name in names:
        fields = parsed[name]
        entry = by_id.setdefault(fields["id"], {"name": fields.get("name") or fields["id"], "files": [],
                                                "attempts": set()})
        if fields.get("attempt"):
            entry["attempts"].add(fields["attempt"])
        if fields.get("file"):
            entry["files"].append((fields.get("attempt") or "", _original_name(fields["file"], kind), name))
    download = _Download(path)
    try:
        students = _students(by_id, download, kind)
    finally:
        download.close()
    names = [s.submission.student for s in students]
    for student in students:  # two students with the same name: tell them apart by id
        if names.count(student.submission.student) > 1:
            student.submission.student += f" ({student.student_id})"
    return students


def _students(by_id: dict, download: _Download, kind: str) -> list[Student]:
    students = []
    for student_id, entry in sorted(by_id.items(), key=lambda item: (item[1]["name"], item[0])):
        notes, files = [], entry["files"]
        if len(entry["attempts"]) > 1:  # Blackboard keeps every attempt: grade the latest
            latest = max(entry["attempts"])
            notes.append(f"{len(entry['attempts'])} attempts were downloaded; graded the latest ({latest})")
            files = [f for f in files if f[0] == latest]
        notebooks = _student_notebooks(download, files, notes)
        if not notebooks:
            notes.append(f"no .ipynb file was submitted ({NAMES[kind]} id {student_id})")
        students.append(Student(submissions.Submission(submissions.readable_name(entry["name"]), notebooks, notes),
                                student_id))
    return students


def _fields(match: re.Match) -> dict:
    """A name's fields: name, id, file (and attempt); Moodle's flat form's fields under the same names."""
    fields = match.groupdict()
    for key in ("name", "id", "file"):
        fields[key] = fields.get(key) or fields.pop(f"flat_{key}", None)
    return fields


def _original_name(filename: str, kind: str) -> str:
    """The student's own file name: Canvas adds "-1", "-2" … before the extension on resubmissions."""
    return re.sub(r"-\d+(\.ipynb)$", r"\1", filename) if kind == "canvas" else filename


def _student_notebooks(download: _Download, files: list[tuple[str, str, str]], notes: list[str]):
    """The notebooks of one student's files [(attempt, their file name, name in the download)], read within
    MAX_STUDENT_BYTES in all; other files (Blackboard's attempt .txt, a PDF) are never read."""
    notebooks, budget = [], MAX_STUDENT_BYTES
    for _, filename, name in files:
        if not filename.lower().endswith(READ_SUFFIXES):
            continue
        if len(notebooks) >= submissions.MAX_NOTEBOOKS:
            notes.append(f"more than {submissions.MAX_NOTEBOOKS} notebooks were submitted; graded the first "
                         f"{submissions.MAX_NOTEBOOKS}")
            break
        try:
            data = download.read(name, budget)
        except (OSError, zipfile.BadZipFile, NotImplementedError, EOFError, RuntimeError) as error:
            notes.append(f"{filename} could not be read ({error}): not graded")
            continue
        if len(data) > budget:
            notes.append(f"{filename} is more than what is left of the {MAX_STUDENT_BYTES // 2**20} MB the grader "
                         f"reads per student: not graded")
            budget = 0
            continue
        budget -= len(data)
        if filename.lower().endswith(".zip"):  # its notebooks count against the same budgets, decompressed
            zipped, unzipped = submissions.read_zip_file(io.BytesIO(data), filename, "", budget,
                                                         submissions.MAX_NOTEBOOKS - len(notebooks))
            budget -= unzipped
            notebooks.extend(zipped.notebooks)
            notes.extend(zipped.notes)
        else:
            notebooks.append(submissions.read_notebook(data, filename))
    return notebooks


def canvas_csv(rows: list[tuple[str, str, float]], assignment: str, possible: float) -> str:
    """Canvas's gradebook import: Student, ID, SIS User ID, SIS Login ID, Section, then the assignment's column.

    Canvas matches rows by ID (the Canvas user id of the download's file names) and creates the assignment column
    if no assignment has that name. `rows` are (name, Canvas user id, points).

    >>> print(canvas_csv([("smithjohn", "12345", 31.5)], "Notebook 02", 35), end="")
    Student,ID,SIS User ID,SIS Login ID,Section,Notebook 02
    Points Possible,,,,,35
    smithjohn,12345,,,,31.5
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section", assignment])
    writer.writerow(["Points Possible", "", "", "", "", number(possible)])
    writer.writerows([_cell(name), student_id, "", "", "", number(points)] for name, student_id, points in rows)
    return out.getvalue()


def moodle_csv(rows: list[tuple[str, str, float]], possible: float) -> str:
    """Moodle's grading worksheet ("Upload grading worksheet"): rows matched by Identifier "Participant <id>".

    >>> print(moodle_csv([("John Smith", "12345", 31.5)], 35), end="")
    Identifier,Full name,Grade,Maximum Grade,Feedback comments
    Participant 12345,John Smith,31.5,35,
    """
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["Identifier", "Full name", "Grade", "Maximum Grade", "Feedback comments"])
    writer.writerows([f"Participant {student_id}", _cell(name), number(points), number(possible), ""]
                     for name, student_id, points in rows)
    return out.getvalue()


EXPORTS = {"canvas": "canvas_import.csv", "moodle": "moodle_grading_worksheet.csv"}


def write_export(kind: str, rows: list[tuple[str, str, float]], assignment: str, possible: float,
                 out: Path) -> Path | None:
    """The gradebook file for the LMS the submissions came from (None for an LMS without one here)."""
    if kind not in EXPORTS:
        return None
    text = canvas_csv(rows, assignment, possible) if kind == "canvas" else moodle_csv(rows, possible)
    target = out / EXPORTS[kind]
    target.write_text(text, encoding="utf-8")
    return target
