"""Reading what students hand in, however broken: notebooks, folders and zips of them, named by student.

Nothing here runs student code. A notebook is reduced to its code cells (source, exercise id, the check it
calls); outputs are never looked at, so a 100 MB output costs only the time to skip it. Invalid UTF-8 is
replaced, truncated or malformed JSON is salvaged cell by cell, and a Python script counts as one cell.
Every repair is noted, so the student learns why their work was graded the way it was. Only regular files and
folders are read: a symlink, a named pipe or a device is refused with a note and never opened (os.lstat, then
O_NOFOLLOW|O_NONBLOCK), and a zip gets a budget for its members and their total decompressed size.
"""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024  # outputs and images included
MAX_CELL_CHARS = 100_000  # the course's longest cell is about 3,000 characters
MAX_CODE_CHARS = 1_000_000  # all code cells of one notebook: parsing (check calls, the scan) stays under a second
MAX_NOTEBOOKS = 50  # per submission (a zip of thousands of files is not a submission)
MAX_ZIP_MEMBERS = 1000  # entries of any kind in one zip
MAX_ZIP_BYTES = 64 * 1024 * 1024  # decompressed notebooks of one zip, in total
MAX_FOLDER_BYTES = MAX_NOTEBOOK_BYTES  # the notebooks of one folder, in total


@dataclass
class CodeCell:
    index: int  # position among the notebook's cells (all kinds), as the student sees it
    source: str
    exercise: str | None = None  # the coursekit.exercise metadata, if the cell kept it
    check_calls: list[tuple[str, list[str]]] = field(default_factory=list)  # [(check name, argument names)]


@dataclass
class StudentNotebook:
    filename: str
    cells: list[CodeCell]
    notes: list[str] = field(default_factory=list)  # what was repaired or could not be read
    written: dict[str, str] = field(default_factory=dict)  # written-answer id -> the student's text

    def exercise_ids(self) -> set[str]:
        return {cell.exercise for cell in self.cells if cell.exercise}

    def checks_called(self) -> set[str]:
        return {name for cell in self.cells for name, _ in cell.check_calls}


@dataclass
class Submission:
    student: str
    notebooks: list[StudentNotebook]
    notes: list[str] = field(default_factory=list)


def check_calls(source: str) -> list[tuple[str, list[str]]]:
    """Every `check_x(a, b)` call in a cell, with the argument names (non-name arguments are kept as '').

    >>> check_calls("x = 1\\ncheck_encode(my_encode)")
    [('check_encode', ['my_encode'])]
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id.startswith("check_"):
            found.append((node.func.id, [arg.id if isinstance(arg, ast.Name) else "" for arg in node.args]))
    return found


def _text(value) -> str:
    if isinstance(value, list):
        return "".join(item for item in value if isinstance(item, str))
    return value if isinstance(value, str) else ""


def _code_cells(raw_cells: list, notes: list[str]) -> list[CodeCell]:
    """The code cells; a cell over MAX_CELL_CHARS, or past MAX_CODE_CHARS in all, is graded as empty (noted)."""
    cells, budget = [], MAX_CODE_CHARS
    for index, cell in enumerate(raw_cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _text(cell.get("source"))
        if len(source) > min(MAX_CELL_CHARS, budget):
            notes.append(f"cell {index} holds {len(source):,} characters of code, more than the grader reads "
                         f"(at most {MAX_CELL_CHARS:,} per cell, {MAX_CODE_CHARS:,} per notebook): graded as empty")
            source = ""
        budget -= len(source)
        metadata = cell.get("metadata")
        meta = metadata.get("coursekit") if isinstance(metadata, dict) else None
        exercise = meta.get("exercise") if isinstance(meta, dict) else None
        cells.append(CodeCell(index, source, exercise if isinstance(exercise, str) else None, check_calls(source)))
    return cells


def _written_answers(raw_cells: list) -> dict[str, str]:
    """The text of each markdown cell marked {"coursekit": {"written": id}}: a student's written answers."""
    answers = {}
    for cell in raw_cells:
        meta = cell.get("metadata") if isinstance(cell, dict) else None
        meta = meta.get("coursekit") if isinstance(meta, dict) else None
        question = meta.get("written") if isinstance(meta, dict) else None
        if isinstance(question, str) and cell.get("cell_type") == "markdown":
            answers.setdefault(question, _text(cell.get("source"))[:MAX_CELL_CHARS])
    return answers


def _salvage_cells(text: str) -> list:
    """The complete cell objects at the start of a truncated or damaged notebook's "cells" list."""
    start = re.search(r'"cells"\s*:\s*\[', text)
    if not start:
        return []
    decoder, position, cells = json.JSONDecoder(), start.end(), []
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        try:
            cell, position = decoder.raw_decode(text, position)
        except (ValueError, RecursionError):
            return cells
        cells.append(cell)


def read_notebook(data: bytes, filename: str) -> StudentNotebook:
    """Parse a submitted file into its code cells, repairing what can be repaired and noting it."""
    notes = []
    if len(data) > MAX_NOTEBOOK_BYTES:
        return StudentNotebook(filename, [], [f"{filename} is {len(data) // 2**20} MB, more than the "
                                              f"{MAX_NOTEBOOK_BYTES // 2**20} MB limit: not graded"])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        text = data.decode("utf-8", errors="replace")
        notes.append(f"{filename} is not valid UTF-8 (byte {error.start}); invalid bytes were replaced")
    text = text.lstrip("\ufeff")
    try:
        notebook = json.loads(text)
    except (ValueError, RecursionError) as error:
        salvaged = _salvage_cells(text)
        if salvaged:
            notes.append(f"{filename} is damaged JSON ({str(error)[:80]}); graded the {len(salvaged)} cell(s) "
                         "that could be read")
            return StudentNotebook(filename, _code_cells(salvaged, notes), notes, _written_answers(salvaged))
        try:
            if len(text) > MAX_CODE_CHARS:
                raise ValueError("too long for a script")
            ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            notes.append(f"{filename} is not a notebook (not JSON, not Python): nothing to grade")
            return StudentNotebook(filename, [], notes)
        notes.append(f"{filename} is not a notebook but a Python script; graded it as one cell")
        return StudentNotebook(filename, _code_cells([{"cell_type": "code", "source": text}], notes), notes)
    raw_cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(raw_cells, list):
        notes.append(f"{filename} is JSON but has no list of cells: nothing to grade")
        return StudentNotebook(filename, [], notes)
    return StudentNotebook(filename, _code_cells(raw_cells, notes), notes, _written_answers(raw_cells))


def _is_notebook_name(name: str) -> bool:
    parts = Path(name).parts
    return (name.endswith((".ipynb", ".py")) and not any(part.startswith((".", "__MACOSX")) for part in parts))


def refusal(path: Path) -> str | None:
    """Why `path` is not read (a symlink, or neither a regular file nor a folder), else None; never follows it."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as error:
        return f"{path.name} could not be read: {error.strerror}"
    if stat.S_ISLNK(mode):
        return f"{path.name} is a symbolic link: not graded (submit the file itself)"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"{path.name} is not a regular file or folder (a pipe, socket or device): not graded"
    return None


def _read_zip(path: Path, student: str) -> Submission:
    try:
        with open(open_regular(path), "rb") as raw:
            return read_zip_file(raw, path.name, student)[0]
    except OSError as error:
        return Submission(student, [], [f"{path.name} is not a readable zip file ({error})"])


def read_zip_file(raw, name: str, student: str, budget: int = MAX_ZIP_BYTES,
                  max_notebooks: int = MAX_NOTEBOOKS) -> tuple[Submission, int]:
    """The notebooks of an open zip file `raw` (called `name` in notes), within MAX_ZIP_MEMBERS, `budget` bytes
    decompressed and `max_notebooks`; and the bytes it decompressed."""
    notebooks, notes, limit = [], [], budget
    try:
        with zipfile.ZipFile(raw) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_ZIP_MEMBERS:
                raise ValueError(f"it has {len(infos)} entries, more than the limit of {MAX_ZIP_MEMBERS}")
            members = sorted((info for info in infos
                              if not info.is_dir() and _is_notebook_name(info.filename)), key=lambda i: i.filename)
            notes.extend(f"{info.filename} in {name} is a zip inside a zip: not opened (submit the notebooks "
                         "themselves)" for info in infos if info.filename.lower().endswith(".zip"))
            if len(members) > max_notebooks:
                notes.append(f"{name} holds {len(members)} notebooks; graded the first {max_notebooks}")
                members = members[:max_notebooks]
            for info in members:
                if info.file_size > min(MAX_NOTEBOOK_BYTES, budget):
                    notes.append(f"{info.filename} in {name} is too large for what is left of the zip's "
                                 f"budget of {limit // 2**20} MB: not graded")
                    continue
                with archive.open(info) as handle:  # sizes in the header can lie: read at most what is left
                    data = handle.read(min(MAX_NOTEBOOK_BYTES, budget) + 1)
                budget -= len(data)
                if budget < 0:
                    notes.append(f"{info.filename} in {name} decompresses to more than its zip's budget: "
                                 "not graded")
                    break
                notebooks.append(read_notebook(data, info.filename))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError, RuntimeError) as error:
        # RuntimeError: an encrypted member (zipfile asks for a password)
        notes.append(f"{name} is not a readable zip file ({error})")
    if not notebooks and not notes:
        notes.append(f"{name} holds no .ipynb file")
    return Submission(student, notebooks, notes), limit - max(budget, 0)


def open_regular(path: Path) -> int:
    """A descriptor for a regular file, opened without following symlinks or blocking on a pipe."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(0, "not a regular file")
    return fd


def _read_file(path: Path) -> StudentNotebook:
    why = refusal(path)
    if why:
        return StudentNotebook(path.name, [], [why])
    try:
        with open(open_regular(path), "rb") as handle:
            data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        return StudentNotebook(path.name, [], [f"{path.name} could not be read: {error.strerror}"])
    return read_notebook(data, path.name)


def read_submission(path: Path) -> Submission:
    """One student's submission: a notebook file, a folder of notebooks, or a zip of them."""
    path = Path(path)
    why = refusal(path)
    if why:
        return Submission(path.stem or "student", [], [why])
    if path.is_dir():
        files, notes = [], []
        for root, folders, names in os.walk(path):  # os.walk does not enter symlinked folders
            for name in sorted(folders + names):
                entry = Path(root, name)
                if not _is_notebook_name(str(entry.relative_to(path))) and not os.path.islink(entry):
                    continue
                problem = refusal(entry)
                if problem:
                    notes.append(f"{entry.relative_to(path)}: {problem}")
                elif entry.is_file():
                    files.append(entry)
        files.sort()
        if not files:
            notes.append(f"the folder {path.name} holds no .ipynb file")
        if len(files) > MAX_NOTEBOOKS:
            notes.append(f"the folder {path.name} holds {len(files)} notebooks; graded the first {MAX_NOTEBOOKS}")
            files = files[:MAX_NOTEBOOKS]
        notebooks, budget = [], MAX_FOLDER_BYTES
        for file in files:
            budget -= file.lstat().st_size
            if budget < 0:
                notes.append(f"{file.relative_to(path)} and the files after it are past the folder's budget of "
                             f"{MAX_FOLDER_BYTES // 2**20} MB in all: not graded")
                break
            notebooks.append(_read_file(file))
        return Submission(path.name, notebooks, notes)
    if path.suffix.lower() == ".zip":
        return _read_zip(path, path.stem)
    return Submission(path.stem, [_read_file(path)])


def collect(paths: list[Path]) -> list[Submission]:
    """Submissions for the command line's arguments, sorted by student.

    Each argument is one student (a notebook, a folder or a zip named by student), except a folder that holds
    only folders and zips: that is a class, and each entry in it is one student.
    """
    entries = []
    for path in map(Path, paths):
        regular_dir = refusal(path) is None and path.is_dir()
        children = sorted(path.iterdir()) if regular_dir else []
        if children and not any(refusal(c) is None and c.is_file() and _is_notebook_name(c.name) for c in children):
            entries.extend(c for c in children if c.is_symlink() or c.is_dir() or c.suffix.lower() == ".zip")
        else:
            entries.append(path)
    submissions = [read_submission(entry) for entry in entries]
    for submission, name in zip(submissions, unique_names([readable_name(s.student) for s in submissions])):
        submission.student = name
    return sorted(submissions, key=lambda s: s.student)


def readable_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (a Windows zip's Latin-1 "Müller") are read as cp1252.

    >>> readable_name(b"M\\xfcller".decode("utf-8", "surrogateescape"))
    'Müller'
    """
    raw = name.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def unique_names(names: list[str]) -> list[str]:
    """The same names, made unique: a repeated name gets -2, -3, …, skipping any name already taken.

    >>> unique_names(["alice", "alice", "alice-2", "alice", ""])
    ['alice', 'alice-3', 'alice-2', 'alice-4', 'student']
    """
    taken, result = set(names), []
    seen: set[str] = set()
    for name in names:
        name = name or "student"
        if name in seen:
            number = 2
            while f"{name}-{number}" in taken or f"{name}-{number}" in seen:
                number += 1
            name = f"{name}-{number}"
        seen.add(name)
        result.append(name)
    return result
