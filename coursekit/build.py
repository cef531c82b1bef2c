"""Student notebooks are generated from the solution notebooks, never edited by hand.

In `solutions/NN_name.ipynb`, an exercise is a code cell whose metadata holds
`{"coursekit": {"exercise": "<id>", "points": <int>}}` and whose answer sits between two marker lines:

    def encode(text):
        \"\"\"Map each character to its id.\"\"\"
        ### BEGIN SOLUTION
        return [stoi[c] for c in text]
        ### END SOLUTION

The student version keeps everything outside the markers (signature, docstring) and gets, at the marker's
indentation, `# YOUR CODE HERE` and `raise NotImplementedError()`. The cell after an exercise calls its
check, e.g. `check_encode(encode)`. Answers to questions live in markdown `<details>` blocks and are kept.

`python -m coursekit build` writes notebooks/ (outputs cleared, deterministic bytes);
`python -m coursekit build --check` exits non-zero and names every notebook that is stale.

Every notebook starts with two cells that build writes (into solutions/ too): an "Open in Colab" badge and a
set-up cell that, on Colab only, installs coursekit if it is missing and fetches the data.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import nbformat
from nbclient import NotebookClient

CHECK_OUTPUT_MARKER = "# NBVAL_CHECK_OUTPUT"
BEGIN_SOLUTION = "### BEGIN SOLUTION"
END_SOLUTION = "### END SOLUTION"
STUDENT_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
NOTEBOOK_NAME = re.compile(r"^\d\d_[a-z0-9_]+\.ipynb$")

REPOSITORY = "coursekit/coursekit"  # where the course is published on GitHub (Colab and Binder open it from there)
COLAB_BADGE_ID, COLAB_SETUP_ID = "colab-badge", "colab-setup"
COLAB_SETUP = f"""\
# Set-up for Google Colab, written by `python -m coursekit build`. Anywhere else this cell does nothing.
import sys

if "google.colab" in sys.modules:
    import importlib.util
    import subprocess

    if importlib.util.find_spec("coursekit") is None:
        # Colab's own torch already satisfies coursekit's requirement, so pip leaves it alone.
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "git+https://github.com/{REPOSITORY}"], check=True)
    subprocess.run([sys.executable, "-m", "coursekit", "data", "fetch", "tinyshakespeare"], check=True)"""


class BuildError(ValueError):
    """A solution notebook breaks a convention; the message names the notebook, the cell and the fix."""


def strip_solution(source: str) -> str:
    """Replace each marked answer by the student stub, at the marker's indentation.

    >>> print(strip_solution("def f(x):\\n    ### BEGIN SOLUTION\\n    return x\\n    ### END SOLUTION"))
    def f(x):
        # YOUR CODE HERE
        raise NotImplementedError()
    """
    lines, inside = [], False
    for number, line in enumerate(source.splitlines(), start=1):
        marker = line.strip()
        if marker == BEGIN_SOLUTION:
            if inside:
                raise BuildError(f"line {number}: {BEGIN_SOLUTION} inside another solution block")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + stub for stub in STUDENT_STUB)
        elif marker == END_SOLUTION:
            if not inside:
                raise BuildError(f"line {number}: {END_SOLUTION} without a {BEGIN_SOLUTION} before it")
            inside = False
        elif not inside:
            lines.append(line)
    if inside:
        raise BuildError(f"{BEGIN_SOLUTION} is never closed by {END_SOLUTION}")
    return "\n".join(lines)


def exercise_of(cell) -> dict | None:
    """The exercise metadata of a cell ({"exercise": id, "points": n}), or None for any other cell."""
    meta = cell.get("metadata", {}).get("coursekit")
    return None if meta is None or "written" in meta else meta


def check_call_of(cell) -> tuple[str, list[str]] | None:
    """The check a code cell calls, as (check name, argument names), or None.

    >>> check_call_of(nbformat.v4.new_code_cell("check_encode(encode)"))
    ('check_encode', ['encode'])
    """
    if cell.cell_type != "code":
        return None
    try:
        tree = ast.parse(cell.source)
    except SyntaxError:
        return None
    for statement in tree.body:
        call = getattr(statement, "value", None)
        if (
            isinstance(statement, ast.Expr)
            and isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id.startswith("check_")
            and all(isinstance(argument, ast.Name) for argument in call.args)
        ):
            return call.func.id, [argument.id for argument in call.args]
    return None


def exercises(notebook) -> list[dict]:
    """Every exercise of a solution notebook, in order: id, points, cell id, and the check call after it."""
    found = []
    for index, cell in enumerate(notebook.cells):
        meta = exercise_of(cell)
        if meta is None:
            continue
        following = notebook.cells[index + 1] if index + 1 < len(notebook.cells) else None
        call = check_call_of(following) if following is not None else None
        found.append({**meta, "cell_id": cell.get("id"), "check": call[0] if call else None,
                      "arguments": call[1] if call else []})
    return found


def validate(notebook, name: str) -> None:
    """Raise BuildError when a solution notebook breaks the exercise conventions."""
    seen = set()
    for index, cell in enumerate(notebook.cells):
        meta = exercise_of(cell)
        if meta is None:
            continue
        where = f"{name}, cell {index} ({cell.get('id')})"
        if cell.cell_type != "code":
            raise BuildError(f"{where}: exercise metadata on a {cell.cell_type} cell; put it on the code cell.")
        exercise, points = meta.get("exercise"), meta.get("points")
        if not isinstance(exercise, str) or not exercise:
            raise BuildError(f"{where}: metadata coursekit.exercise must be a non-empty string, got {exercise!r}.")
        if exercise in seen:
            raise BuildError(f"{where}: exercise id {exercise!r} is used twice.")
        seen.add(exercise)
        if not isinstance(points, int) or isinstance(points, bool) or points <= 0:
            raise BuildError(f"{where}: metadata coursekit.points must be a positive integer, got {points!r}.")
        if BEGIN_SOLUTION not in cell.source:
            raise BuildError(f"{where}: exercise {exercise!r} has no {BEGIN_SOLUTION} ... {END_SOLUTION} block.")
        try:
            strip_solution(cell.source)
        except BuildError as error:
            raise BuildError(f"{where}: {error}") from None
    for item in exercises(notebook):
        if item["check"] is None:
            raise BuildError(f"{name}: exercise {item['exercise']!r} must be followed by a cell calling its check.")


def colab_badge(folder: str, name: str) -> str:
    """Markdown for an "Open in Colab" badge that opens folder/name from the course repository."""
    url = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/{folder}/{name}"
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})"


def with_header(notebook, folder: str, name: str) -> nbformat.NotebookNode:
    """A copy of the notebook that starts with the Colab badge and the Colab set-up cell (replacing old ones)."""
    notebook = nbformat.from_dict(notebook)
    badge = nbformat.v4.new_markdown_cell(colab_badge(folder, name))
    setup = nbformat.v4.new_code_cell(COLAB_SETUP)
    badge["id"], setup["id"] = COLAB_BADGE_ID, COLAB_SETUP_ID
    rest = [cell for cell in notebook.cells if cell.get("id") not in (COLAB_BADGE_ID, COLAB_SETUP_ID)]
    notebook.cells = [badge, setup, *rest]
    return notebook


def student_version(solution, name: str) -> nbformat.NotebookNode:
    """The student notebook for a solution notebook: answers stripped, outputs cleared, its own Colab badge."""
    notebook = with_header(solution, "notebooks", name)
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
            if BEGIN_SOLUTION in cell.source:
                cell.source = strip_solution(cell.source)
    return notebook


def to_bytes(notebook) -> bytes:
    """Deterministic serialisation: sorted keys, one-space indent, a trailing newline."""
    return (nbformat.writes(notebook, version=4) + "\n").encode("utf-8")


def build(root: Path, check: bool = False) -> list[str]:
    """Write notebooks/ from solutions/ (or, with check=True, only report). Returns the stale notebooks."""
    solutions, students = root / "solutions", root / "notebooks"
    sources = sorted(solutions.glob("*.ipynb"))
    if not sources:
        raise BuildError(f"no solution notebooks in {solutions}")
    stale = []
    for source in sources:
        if not NOTEBOOK_NAME.match(source.name):
            raise BuildError(f"{source}: notebook names are NN_lowercase_words.ipynb, e.g. 01_tokenization.ipynb")
        solution = with_header(nbformat.read(source, as_version=4), "solutions", source.name)
        validate(solution, source.name)
        if source.read_bytes() != to_bytes(solution):
            stale.append(f"solutions/{source.name} (its Colab header cells)")
            if not check:
                source.write_bytes(to_bytes(solution))
        wanted = to_bytes(student_version(solution, source.name))
        target = students / source.name
        if not target.exists() or target.read_bytes() != wanted:
            stale.append(f"notebooks/{target.name}")
            if not check:
                students.mkdir(exist_ok=True)
                target.write_bytes(wanted)
    expected = {source.name for source in sources}
    orphans = sorted(path.name for path in students.glob("*.ipynb") if path.name not in expected)
    stale.extend(f"notebooks/{name} (no solution notebook)" for name in orphans)
    if orphans and not check:
        for name in orphans:
            (students / name).unlink()
    return stale


def execute_solutions(root: Path, names: list[str], timeout: int = 600) -> list[str]:
    """Run solution notebooks and store only the outputs nbval compares (cells marked # NBVAL_CHECK_OUTPUT).

    Other outputs (plots, progress bars) are not kept: they would bloat the repository and change every run.
    """
    done = []
    for name in names:
        source = root / "solutions" / Path(name).name
        if not source.exists():
            raise BuildError(f"{source} does not exist")
        notebook = nbformat.read(source, as_version=4)
        executed = nbformat.from_dict(notebook)
        NotebookClient(executed, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(source.parent)}}).execute()
        for cell, run in zip(notebook.cells, executed.cells):
            cell.metadata.pop("execution", None)
            if cell.cell_type != "code":
                continue
            keep = CHECK_OUTPUT_MARKER in cell.source
            cell.outputs = run.outputs if keep else []
            cell.execution_count = run.execution_count if keep else None
        source.write_bytes(to_bytes(notebook))
        done.append(source.name)
    return done
