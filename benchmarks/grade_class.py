"""Grading a class of notebook 04: where the time goes, and what stopping after the last probe saves.

Makes a small class of notebook-04 submissions (the solution, the handout, typical bugs, a notebook that
defines `train` only at the end, a cell that fails, the wrong notebook), grades it twice in one run with
`--jobs 2`: every cell (as before), then only the cells a grade can depend on (`grader.needed_cells`: the
demonstration training runs after the last check are skipped), checks that both give the same grades.csv, and
extrapolates to 80 students (grading is per notebook, so time grows linearly with the class).

    python benchmarks/grade_class.py [--students 8] [--jobs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from coursekit.grading import feedback, grader, rubric, sandbox, submissions

sys.path.insert(0, str(Path(__file__).resolve().parent))
import grade  # noqa: E402  (its load line)

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
TARGET_MINUTES = 35  # 80 students on 2 cores


def _cells(name: str) -> list[dict]:
    return json.loads((SOLUTIONS / name).read_text())["cells"]


def _edit(cells: list[dict], exercise: str, old: str, new: str) -> list[dict]:
    """A copy of the notebook's cells where the exercise's cell has `old` replaced by `new` (which must be there)."""
    edited = json.loads(json.dumps(cells))
    [cell] = [c for c in edited if c.get("metadata", {}).get("coursekit", {}).get("exercise") == exercise]
    source = "".join(cell["source"])
    assert old in source, (exercise, old)
    cell["source"] = source.replace(old, new)
    return edited


def _train_defined_last(cells: list[dict]) -> list[dict]:
    edited = json.loads(json.dumps(cells))
    [index] = [i for i, c in enumerate(edited) if c.get("metadata", {}).get("coursekit", {}).get("exercise")
               == "training_loop"]
    return edited[:index] + edited[index + 1:] + [edited[index]]


def make_class(students: int) -> list[submissions.Submission]:
    """`students` submissions, cycling through eight kinds of notebook 04."""
    solved = _cells("04_gpt_training.ipynb")
    kinds = {
        "solved": solved,
        "handout": json.loads((ROOT / "notebooks" / "04_gpt_training.ipynb").read_text())["cells"],
        "no_positions": _edit(solved, "forward", " + self.transformer.wpe(positions)", ""),
        "unshifted_targets": _edit(solved, "training_loop", "data[i + 1:i + block_size + 1]", "data[i:i + block_size]"),
        "no_residual": _edit(solved, "block", "x = x + self.attn(self.ln_1(x))", "x = self.attn(self.ln_1(x))"),
        "train_defined_last": _train_defined_last(solved),
        "decode_cell_fails": _edit(solved, "decode", "def decode(", "raise ValueError('oops')\ndef decode("),
        "wrong_notebook_02": _cells("02_bigram_mlp.ipynb"),
    }
    names = list(kinds)
    found = []
    for number in range(students):
        kind = names[number % len(names)]
        data = json.dumps({"cells": kinds[kind], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}).encode()
        found.append(submissions.Submission(f"s{number:02d}_{kind}", [submissions.read_notebook(data, "hw4.ipynb")]))
    return found


def timed(found, items, jobs: int, every_cell: bool) -> tuple[float, str]:
    """(wall seconds, grades.csv) of grading the class."""
    started = time.perf_counter()
    grades = grader.grade(found, items, SOLUTIONS, sandbox.Limits(), jobs=jobs, every_cell=every_cell)
    return time.perf_counter() - started, feedback.grades_csv(grades)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--students", type=int, default=8)
    parser.add_argument("--jobs", type=int, default=2)
    arguments = parser.parse_args()
    items = rubric.resolve(rubric.load("04", SOLUTIONS), SOLUTIONS)
    found = make_class(arguments.students)
    rows, loads = [], [grade.load()]
    for label, every_cell in (("every cell (before)", True), ("needed cells (after)", False)):
        rows.append((label, *timed(found, items, arguments.jobs, every_cell)))
        loads.append(grade.load())
    print(f"{arguments.students} students x notebook 04, --jobs {arguments.jobs}, {os.cpu_count()} cores\n")
    print("| run | wall (s) | per student (s) | 80 students (min, extrapolated) |")
    print("|---|---|---|---|")
    for label, wall, _ in rows:
        minutes = wall / arguments.students * 80 / 60
        print(f"| {label} | {wall:.0f} | {wall / arguments.students:.1f} | {minutes:.1f} |")
    print(f"\nspeed-up {rows[0][1] / rows[1][1]:.2f}x; target: 80 students in <= {TARGET_MINUTES} min on a quiet "
          "2-core machine")
    print("load at the start, after each run:", " | ".join(loads))
    same = rows[0][2] == rows[1][2]
    print("grades.csv identical in both runs:", same)
    if not same:
        print(rows[0][2], rows[1][2], sep="\n")
    print("\n" + rows[1][2])


if __name__ == "__main__":
    main()
