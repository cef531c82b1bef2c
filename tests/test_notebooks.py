"""Notebook-level guarantees: student notebooks set up cleanly, and every exercise is wired to a real check.

(The solution notebooks themselves run top to bottom under nbval: README's test command collects solutions/.)
"""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from coursekit import build, checks

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENT_NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def names(paths):
    return [path.name for path in paths]


@pytest.mark.parametrize("path", STUDENT_NOTEBOOKS, ids=names(STUDENT_NOTEBOOKS))
def test_student_notebook_runs_until_its_first_exercise(path):
    notebook = nbformat.read(path, as_version=4)
    first = next(i for i, cell in enumerate(notebook.cells) if build.exercise_of(cell))
    notebook.cells = notebook.cells[: first + 1]
    client = NotebookClient(notebook, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    with pytest.raises(CellExecutionError) as failure:
        client.execute()
    assert failure.value.ename == "NotImplementedError", f"a set-up cell broke: {failure.value}"
    failing = [i for i, cell in enumerate(notebook.cells) if cell.cell_type == "code"
               and any(output.get("output_type") == "error" for output in cell.outputs)]
    assert failing == [first], "the first error must be the first exercise's NotImplementedError"


@pytest.mark.parametrize("path", SOLUTIONS, ids=names(SOLUTIONS))
def test_every_exercise_calls_a_check_for_that_exercise(path):
    notebook = nbformat.read(path, as_version=4)
    found = build.exercises(notebook)
    assert found, f"{path.name} has no exercises"
    for item in found:
        check = getattr(checks, item["check"], None)
        assert isinstance(check, checks.Check), f"{item['check']} is not a check in coursekit.checks"
        assert check.exercise == item["exercise"], f"{item['check']} checks {check.exercise!r}, not {item['exercise']!r}"
        assert len(item["arguments"]) == len(check.expects)


@pytest.mark.parametrize("path", SOLUTIONS, ids=names(SOLUTIONS))
def test_student_notebooks_ask_the_written_questions_without_their_model_answers(path):
    solution = nbformat.read(path, as_version=4)
    student = nbformat.read(ROOT / "notebooks" / path.name, as_version=4)
    asked = [build.written_of(cell) for cell in solution.cells if build.written_of(cell)]
    written = [cell for cell in student.cells if build.written_of(cell)]
    assert [build.written_of(cell) for cell in written] == asked, "same questions, same ids, same order"
    assert all(cell.source == build.WRITTEN_PLACEHOLDER for cell in written)
