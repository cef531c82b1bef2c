"""Which submitted notebook answers which solution notebook, decided for all of a student's notebooks at once.

Each (submitted notebook, solution notebook) pair gets a fit: 2 per exercise cell the two share, 1 per check the
student calls that the solution calls, 3 when the file name points to the solution ("04…" or "…gpt_training…").
A notebook is only graded as a solution it fits best (ties allowed), and among those choices the assignment
with the best total fit wins (exact, over every solution notebook of the course, not only the rubric's): a 04
notebook is graded as 04 even though it shares `chars`, `encode` and `decode` with 02, a second copy of 02 is
not graded as a poor 04, and a 02 uploaded for an assignment about 04 is recognised as 02.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit import build
from coursekit.grading.submissions import StudentNotebook


@dataclass(frozen=True)
class Solution:
    """What identifies a solution notebook: its name, exercise ids and the checks it calls."""

    stem: str  # e.g. "04_gpt_training"
    exercises: frozenset[str]
    checks: frozenset[str]

    @property
    def number(self) -> str:
        return self.stem.split("_")[0]


@dataclass
class Matching:
    notebooks: dict[str, StudentNotebook]  # rubric stem -> the submitted notebook graded as it
    notes: list[str]  # submitted notebooks that were not graded, and why


def catalogue(solutions: Path) -> list[Solution]:
    """Every solution notebook of the course, as matching sees it."""
    found = []
    for path in sorted(solutions.glob("*.ipynb")):
        exercises = build.exercises(nbformat.read(path, as_version=4))
        found.append(Solution(path.stem, frozenset(e["exercise"] for e in exercises),
                              frozenset(e["check"] for e in exercises if e["check"])))
    return found


def fit(notebook: StudentNotebook, solution: Solution) -> int:
    """How strongly a submitted notebook looks like a solution notebook (0: not at all)."""
    name = Path(notebook.filename).name.lower()
    words = solution.stem.split("_", 1)[-1]
    named = name.startswith(solution.number) or words in name
    return (2 * len(notebook.exercise_ids() & solution.exercises) + len(notebook.checks_called() & solution.checks)
            + (3 if named else 0))


def best_assignment(scores: list[list[int]]) -> list[int | None]:
    """For each row (a notebook), the column (a solution) it takes, each column at most once, maximising the total.

    Exact dynamic programming over the set of columns used (a course has a handful of notebooks); zero-score pairs
    are never assigned; ties go to earlier rows and earlier columns.

    >>> best_assignment([[9, 27], [0, 0]])   # a 04 notebook (column 1) also fits 02 (column 0) a little
    [1, None]
    >>> best_assignment([[5, 4], [5, 0]])    # giving row 0 its second choice frees column 0 for row 1
    [1, 0]
    """
    columns = len(scores[0]) if scores else 0
    best = {0: ((0, ()), ())}  # columns used (bitmask) -> ((total, which rows got a column), choices so far)
    for row in scores:
        following = {}
        for used, ((total, rows), choices) in best.items():
            options = [((total, rows + (0,)), choices + (None,), used)]
            options += [((total + row[c], rows + (1,)), choices + (c,), used | 1 << c)
                        for c in range(columns) if row[c] > 0 and not used >> c & 1]
            for value, chosen, mask in options:
                if mask not in following or value > following[mask][0]:
                    following[mask] = (value, chosen)
        best = following
    return list(max(best.values(), key=lambda entry: entry[0])[1])


def match(notebooks: list[StudentNotebook], wanted: list[str], solutions: list[Solution]) -> Matching:
    """Grade each rubric notebook (`wanted`) with the submitted notebook that fits it in the best assignment."""
    by_stem = {s.stem: s for s in solutions}
    columns = [by_stem.get(stem, Solution(stem, frozenset(), frozenset())) for stem in wanted]
    columns += [s for s in solutions if s.stem not in wanted]
    scores = [[fit(notebook, solution) for solution in columns] for notebook in notebooks]
    for row in scores:  # a notebook is only ever graded as (one of) the solution(s) it fits best
        row[:] = [value if value == max(row) else 0 for value in row]
    choices = best_assignment(scores)
    matched, notes = {}, []
    for notebook, choice, row in zip(notebooks, choices, scores):
        if choice is not None and columns[choice].stem in wanted:
            matched[columns[choice].stem] = notebook
    if len(wanted) == 1 and len(notebooks) == 1 and not matched and not any(scores[0]):
        matched[wanted[0]] = notebooks[0]  # one file, no cells or names to go by: grade it for what it defines
        return Matching(matched, notes)
    for notebook, choice, row in zip(notebooks, choices, scores):
        if choice is not None and columns[choice].stem in wanted:
            continue
        if choice is not None:
            notes.append(f"{notebook.filename}: this looks like notebook {columns[choice].number} "
                         f"({columns[choice].stem}); the assignment is {_numbers(wanted)}, so it was not graded")
        elif any(row):
            rival = max(range(len(columns)), key=lambda c: row[c])
            taken = matched.get(columns[rival].stem)
            notes.append(f"{notebook.filename} also looks like {columns[rival].stem}, which "
                         f"{taken.filename if taken else 'another file'} answers at least as well: not graded")
        else:
            notes.append(f"{notebook.filename} fits none of the assignment's notebooks ({_numbers(wanted)}): "
                         "not graded")
    return Matching(matched, notes)


def _numbers(stems: list[str]) -> str:
    return ", ".join(stem.split("_")[0] for stem in stems)
