"""Student notebooks are generated from solutions/: answers stripped, outputs cleared, drift detected."""

import shutil
from pathlib import Path

import nbformat
import pytest

from coursekit import build
from coursekit.cli import main

ROOT = Path(__file__).resolve().parent.parent


def exercise_cell(source, exercise="double", points=2):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["coursekit"] = {"exercise": exercise, "points": points}
    return cell


def tiny_course(root: Path, cells) -> Path:
    (root / "solutions").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook(cells=cells)
    nbformat.write(notebook, root / "solutions" / "01_tiny.ipynb")
    return root


SOLVED = "def double(x):\n    \"\"\"Twice x.\"\"\"\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"


def test_the_answer_is_replaced_by_the_stub_at_its_indentation():
    assert build.strip_solution(SOLVED) == (
        'def double(x):\n    """Twice x."""\n    # YOUR CODE HERE\n    raise NotImplementedError()'
    )


def test_code_after_the_answer_is_kept():
    source = "x = 1\n### BEGIN SOLUTION\ny = 2\n### END SOLUTION\nprint(x)"
    assert build.strip_solution(source) == "x = 1\n# YOUR CODE HERE\nraise NotImplementedError()\nprint(x)"


@pytest.mark.parametrize("broken, complaint", [
    ("### BEGIN SOLUTION\nx = 1", "never closed"),
    ("x = 1\n### END SOLUTION", "without a"),
    ("### BEGIN SOLUTION\n### BEGIN SOLUTION\n### END SOLUTION", "inside another"),
])
def test_unbalanced_markers_are_errors(broken, complaint):
    with pytest.raises(build.BuildError, match=complaint):
        build.strip_solution(broken)


def test_student_version_clears_outputs_and_keeps_details_answers():
    solved = exercise_cell(SOLVED)
    solved.outputs = [nbformat.v4.new_output("stream", text="4\n")]
    solved.execution_count = 3
    question = nbformat.v4.new_markdown_cell("Why?\n<details><summary>Answer</summary>Because.</details>")
    notebook = nbformat.v4.new_notebook(cells=[question, solved, nbformat.v4.new_code_cell("check_double(double)")])
    student = build.student_version(notebook, "01_tiny.ipynb")
    question_copy, exercise_copy = student.cells[2], student.cells[3]  # after the two Colab header cells
    assert question_copy.source == question.source
    assert exercise_copy.outputs == [] and exercise_copy.execution_count is None
    assert "return 2 * x" not in exercise_copy.source
    assert exercise_copy.metadata["coursekit"] == {"exercise": "double", "points": 2}
    assert "return 2 * x" in notebook.cells[1].source, "the solution notebook itself must not change"


def test_build_writes_then_check_detects_drift(tmp_path, capsys):
    root = tiny_course(tmp_path, [exercise_cell(SOLVED), nbformat.v4.new_code_cell("check_double(double)")])
    assert main(["build", "--root", str(root)]) == 0
    first = (root / "notebooks" / "01_tiny.ipynb").read_bytes()
    assert main(["build", "--check", "--root", str(root)]) == 0
    assert main(["build", "--root", str(root)]) == 0
    assert (root / "notebooks" / "01_tiny.ipynb").read_bytes() == first, "build output must be deterministic"

    (root / "notebooks" / "01_tiny.ipynb").write_bytes(first.replace(b"YOUR CODE HERE", b"my edit"))
    capsys.readouterr()
    assert main(["build", "--check", "--root", str(root)]) == 1
    assert "notebooks/01_tiny.ipynb is stale" in capsys.readouterr().err


def test_a_student_notebook_without_a_solution_is_reported(tmp_path):
    root = tiny_course(tmp_path, [nbformat.v4.new_code_cell("x = 1")])
    build.build(root)
    shutil.copy(root / "notebooks" / "01_tiny.ipynb", root / "notebooks" / "02_orphan.ipynb")
    assert build.build(root, check=True) == ["notebooks/02_orphan.ipynb (no solution notebook)"]


@pytest.mark.parametrize("cells, complaint", [
    ([exercise_cell("x = 1"), nbformat.v4.new_code_cell("check_x(x)")], "no ### BEGIN SOLUTION"),
    ([exercise_cell(SOLVED, points=0), nbformat.v4.new_code_cell("check_double(double)")], "positive integer"),
    ([exercise_cell(SOLVED)], "followed by a cell calling its check"),
    ([exercise_cell(SOLVED), nbformat.v4.new_code_cell("check_double(double)"),
      exercise_cell(SOLVED), nbformat.v4.new_code_cell("check_double(double)")], "used twice"),
])
def test_broken_conventions_are_named(tmp_path, cells, complaint):
    root = tiny_course(tmp_path, cells)
    with pytest.raises(build.BuildError, match=complaint):
        build.build(root)


def test_exercises_lists_points_and_check_calls():
    notebook = nbformat.v4.new_notebook(cells=[exercise_cell(SOLVED), nbformat.v4.new_code_cell("check_double(double)")])
    [item] = build.exercises(notebook)
    assert (item["exercise"], item["points"], item["check"], item["arguments"]) == ("double", 2, "check_double", ["double"])


def test_the_repository_notebooks_are_up_to_date():
    assert build.build(ROOT, check=True) == [], "run: python -m coursekit build"


def test_build_gives_the_solution_its_colab_header_once(tmp_path):
    root = tiny_course(tmp_path, [exercise_cell(SOLVED), nbformat.v4.new_code_cell("check_double(double)")])
    assert "solutions/01_tiny.ipynb (its Colab header cells)" in build.build(root)
    assert build.build(root, check=True) == []
    solution = nbformat.read(root / "solutions" / "01_tiny.ipynb", as_version=4)
    assert [cell.id for cell in solution.cells[:2]] == ["colab-badge", "colab-setup"]
    assert sum(cell.id == "colab-setup" for cell in solution.cells) == 1
    assert "blob/main/solutions/01_tiny.ipynb" in solution.cells[0].source
    student = nbformat.read(root / "notebooks" / "01_tiny.ipynb", as_version=4)
    assert "blob/main/notebooks/01_tiny.ipynb" in student.cells[0].source


def written_cell(source, question="why_double"):
    return nbformat.v4.new_markdown_cell(source, metadata={"coursekit": {"written": question}})


def test_a_written_answer_becomes_the_placeholder_for_the_student(tmp_path):
    question = nbformat.v4.new_markdown_cell("**Question.** Why double?")
    model_answer = written_cell("Because twice is what the tests expect.")
    root = tiny_course(tmp_path, [question, model_answer, exercise_cell(SOLVED),
                                  nbformat.v4.new_code_cell("check_double(double)")])
    build.build(root)
    student = nbformat.read(root / "notebooks" / "01_tiny.ipynb", as_version=4)
    [answer] = [cell for cell in student.cells if build.written_of(cell)]
    assert answer.source == "*Write your answer here.*"
    assert answer.metadata["coursekit"] == {"written": "why_double"}, "the grader finds the cell by its id"
    assert student.cells[student.cells.index(answer) - 1].source == question.source
    solution = nbformat.read(root / "solutions" / "01_tiny.ipynb", as_version=4)
    assert any(cell.source == model_answer.source for cell in solution.cells), "the model answer stays in solutions/"
    assert [item["exercise"] for item in build.exercises(solution)] == ["double"], "a written cell is no exercise"


@pytest.mark.parametrize("cells, complaint", [
    ([nbformat.v4.new_markdown_cell("Q?"), written_cell("a"), nbformat.v4.new_markdown_cell("Q2?"),
      written_cell("b")], "used twice"),
    ([nbformat.v4.new_code_cell("x = 1"), written_cell("a")], "right after the markdown cell"),
    ([nbformat.v4.new_markdown_cell("Q?"), written_cell("a", question="Why Double?")], "must be an id"),
    ([nbformat.v4.new_markdown_cell("Q?"),
      nbformat.v4.new_code_cell("x = 1", metadata={"coursekit": {"written": "why"}})], "must be a markdown cell"),
])
def test_broken_written_cells_are_named(tmp_path, cells, complaint):
    root = tiny_course(tmp_path, cells)
    with pytest.raises(build.BuildError, match=complaint):
        build.build(root)
