"""Reading what students hand in, however broken: notebooks, folders and zips of them, named by student.

Nothing here runs student code. A notebook is reduced to its code cells (source, exercise id, the check it
calls); outputs are never looked at, so a 100 MB output costs only the time to skip it. Invalid UTF-8 is
replaced, truncated or malformed JSON is salvaged cell by cell, and a Python script counts as one cell.
Every repair is noted, so the student learns why their work was graded the way it was.
"""

from __future__ import annotations

import ast
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

MAX_NOTEBOOK_BYTES = 256 * 1024 * 1024
MAX_CELL_CHARS = 1_000_000
MAX_NOTEBOOKS = 50  # per submission (a zip of thousands of files is not a submission)


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


def _code_cells(raw_cells: list) -> list[CodeCell]:
    cells = []
    for index, cell in enumerate(raw_cells):
        if not isinstance(cell, dict) or cell.get("cell_type") != "code":
            continue
        source = _text(cell.get("source"))[:MAX_CELL_CHARS]
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
            return StudentNotebook(filename, _code_cells(salvaged), notes, _written_answers(salvaged))
        try:
            ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            notes.append(f"{filename} is not a notebook (not JSON, not Python): nothing to grade")
            return StudentNotebook(filename, [], notes)
        notes.append(f"{filename} is not a notebook but a Python script; graded it as one cell")
        return StudentNotebook(filename, [CodeCell(0, text[:MAX_CELL_CHARS], None, check_calls(text))], notes)
    raw_cells = notebook.get("cells") if isinstance(notebook, dict) else None
    if not isinstance(raw_cells, list):
        notes.append(f"{filename} is JSON but has no list of cells: nothing to grade")
        return StudentNotebook(filename, [], notes)
    return StudentNotebook(filename, _code_cells(raw_cells), notes, _written_answers(raw_cells))


def _is_notebook_name(name: str) -> bool:
    parts = Path(name).parts
    return (name.endswith((".ipynb", ".py")) and not any(part.startswith((".", "__MACOSX")) for part in parts))


def _read_zip(path: Path, student: str) -> Submission:
    notebooks, notes = [], []
    try:
        with zipfile.ZipFile(path) as archive:
            members = sorted((info for info in archive.infolist()
                              if not info.is_dir() and _is_notebook_name(info.filename)), key=lambda i: i.filename)
            if len(members) > MAX_NOTEBOOKS:
                notes.append(f"{path.name} holds {len(members)} notebooks; graded the first {MAX_NOTEBOOKS}")
                members = members[:MAX_NOTEBOOKS]
            for info in members:
                if info.file_size > MAX_NOTEBOOK_BYTES:
                    notes.append(f"{info.filename} in {path.name} is too large: not graded")
                    continue
                with archive.open(info) as handle:
                    data = handle.read(MAX_NOTEBOOK_BYTES + 1)
                notebooks.append(read_notebook(data, info.filename))
    except (zipfile.BadZipFile, OSError, ValueError, NotImplementedError, EOFError) as error:
        notes.append(f"{path.name} is not a readable zip file ({error})")
    if not notebooks and not notes:
        notes.append(f"{path.name} holds no .ipynb file")
    return Submission(student, notebooks, notes)


def _read_file(path: Path) -> StudentNotebook:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_NOTEBOOK_BYTES + 1)
    except OSError as error:
        return StudentNotebook(path.name, [], [f"{path.name} could not be read: {error.strerror}"])
    return read_notebook(data, path.name)


def read_submission(path: Path) -> Submission:
    """One student's submission: a notebook file, a folder of notebooks, or a zip of them."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and _is_notebook_name(str(p.relative_to(path))))
        notes = [] if files else [f"the folder {path.name} holds no .ipynb file"]
        if len(files) > MAX_NOTEBOOKS:
            notes.append(f"the folder {path.name} holds {len(files)} notebooks; graded the first {MAX_NOTEBOOKS}")
            files = files[:MAX_NOTEBOOKS]
        return Submission(path.name, [_read_file(p) for p in files], notes)
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
        children = sorted(path.iterdir()) if path.is_dir() else []
        if children and not any(c.is_file() and _is_notebook_name(c.name) for c in children):
            entries.extend(c for c in children if c.is_dir() or c.suffix.lower() == ".zip")
        else:
            entries.append(path)
    submissions, seen = [], {}
    for entry in entries:
        submission = read_submission(entry)
        base = submission.student or "student"
        seen[base] = seen.get(base, 0) + 1
        if seen[base] > 1:
            submission.student = f"{base}-{seen[base]}"
        submissions.append(submission)
    return sorted(submissions, key=lambda s: s.student)
