"""What a grading run's secret inputs are worth to a student who learns them (red team 4's F4).

Code in the sandbox sees the inputs it is probed with, and it can print them into its own feedback (an error
message is enough). A resubmission that hard-codes the answers to those inputs must earn nothing when it is graded
with the same secret, while the same notebook regraded with the same secret must still meet the same inputs. What the
sandbox can read of the notebook (cell positions too: red team 5 carried answers in the number of empty markdown
cells) changes the inputs.
"""

import csv
import re
import sys
from pathlib import Path

import nbformat

from coursekit.cli import main
from coursekit.grading.feedback import file_name

CORPUS = Path(__file__).parent / "grading_submissions"
sys.path.insert(0, str(CORPUS))
import build_corpus  # noqa: E402

SECRET = "one secret, kept for regrades"
LEAKS_ITS_INPUTS = build_corpus.course(square="def square(x):\n    raise ValueError(f'probed with {x!r}')")


def graded(tmp_path: Path, name: str, notebook) -> tuple[dict, str]:
    """(grades.csv row, feedback text) of one submission graded alone with SECRET."""
    solutions, submissions, out = tmp_path / "solutions", tmp_path / f"submissions-{name}", tmp_path / f"out-{name}"
    solutions.mkdir(exist_ok=True)
    nbformat.write(build_corpus.SOLUTION, solutions / "01_tiny.ipynb")
    submissions.mkdir()
    nbformat.write(notebook, submissions / f"{name}.ipynb")
    assert main(["grade", str(submissions / f"{name}.ipynb"), "--out", str(out), "--rubric", "01_tiny",
                 "--solutions", str(solutions), "--check-module", "grading_tiny_checks", "--secret", SECRET]) == 0
    with open(out / "grades.csv", newline="") as handle:
        [row] = list(csv.DictReader(handle))
    return row, (out / "feedback" / f"{file_name(name)}.md").read_text().replace("\\", "")


def learnt_inputs(feedback: str) -> list[int]:
    return sorted({int(n) for n in re.findall(r"probed with (-?\d+)", feedback)})


def test_inputs_learnt_from_feedback_are_worth_nothing_to_a_resubmission_under_the_same_secret(tmp_path):
    _, first = graded(tmp_path, "leaks", LEAKS_ITS_INPUTS)
    _, again = graded(tmp_path, "leaks-again", LEAKS_ITS_INPUTS)
    inputs = learnt_inputs(first)
    assert len(inputs) == 2 and inputs == learnt_inputs(again)  # the same notebook, the same secret inputs
    answers = {n: n * n for n in inputs}
    hard_coded = build_corpus.course(square=f"def square(x):\n    return {answers!r}.get(int(x), 0)")
    row, feedback = graded(tmp_path, "hard-codes", hard_coded)
    assert "square(" in feedback and float(row["square"]) == 0.0, (row, feedback)
    spaced = nbformat.from_dict(LEAKS_ITS_INPUTS)  # the same code cells, moved: positions reach the sandbox too
    spaced.cells[2:2] = [nbformat.v4.new_markdown_cell("") for _ in range(12)]
    _, moved = graded(tmp_path, "leaks-moved", spaced)
    assert learnt_inputs(moved) and learnt_inputs(moved) != inputs
    honest, _ = graded(tmp_path, "honest", build_corpus.SOLUTION)
    assert float(honest["square"]) == 3.0 and float(honest["double"]) == 2.0
