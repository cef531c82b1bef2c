"""Written answers, graded by hand: export every student's answer per question, merge the TA's points back.

A written question's answer lives in the markdown cell marked `{"coursekit": {"written": "<question id>"}}`
right after the question (the handout holds a placeholder). A rubric gives the question its points
(`{"notebook": "02", "written": "<id>", "points": 3}`). `export` writes, in DIR, one HTML page per question
with the whole class's answers (escaped: it is student text) and `written_scores.csv` to fill in (student,
student_id, notebook, question, answer, points, comment); `merge` reads that file back into the grades, as one
more line per question in grades.csv, the feedback and Gradescope's results.
"""

from __future__ import annotations

import csv
import html
import io
from pathlib import Path

from coursekit.grading.feedback import _cell, file_name, from_cell, number
from coursekit.grading.grader import ExerciseGrade, Grade
from coursekit.grading.rubric import Resolved
from coursekit.grading.submissions import StudentNotebook

PLACEHOLDER = "*Write your answer here.*"
COLUMNS = ["student", "student_id", "notebook", "question", "answer", "points", "comment"]


class ScoresError(ValueError):
    """A scores file that cannot be merged; the message lists every bad row."""


def answer(notebook: StudentNotebook | None, question: str) -> str:
    """The student's answer, or "" when the cell is missing or still holds the placeholder."""
    text = (notebook.written.get(question, "") if notebook else "").strip()
    return "" if text in ("", PLACEHOLDER) else text


def export(answers: list[tuple[Grade, dict[str, StudentNotebook]]], items: list[Resolved], out: Path) -> Path:
    """Write one page per question and the CSV to fill in; returns the CSV's path."""
    out.mkdir(parents=True, exist_ok=True)
    rows = io.StringIO()
    writer = csv.writer(rows, lineterminator="\n")
    writer.writerow(COLUMNS)
    for item in items:
        entries = [(grade, answer(matched.get(item.notebook), item.exercise)) for grade, matched in answers]
        for grade, text in entries:
            writer.writerow([_cell(grade.student), _cell(grade.student_id), item.notebook, item.exercise,
                             _cell(text), "", ""])
        page = out / f"{file_name(item.notebook)}__{file_name(item.exercise)}.html"
        page.write_text(_page(item, entries), encoding="utf-8")
    target = out / "written_scores.csv"
    target.write_text(rows.getvalue(), encoding="utf-8")
    return target


def _page(item: Resolved, entries: list[tuple[Grade, str]]) -> str:
    e = html.escape
    answered = sum(1 for _, text in entries if text)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(item.notebook)}: {e(item.exercise)}"
             "</title><style>body{font-family:sans-serif;max-width:50em;margin:auto} .answer{white-space:pre-wrap;"
             "border-left:3px solid #ccc;padding-left:1em} .none{color:#a00}</style></head><body>",
             f"<h1>{e(item.notebook)}: written question {e(item.exercise)} ({item.points} points)</h1>",
             f"<p>{answered} of {len(entries)} students answered.</p>"]
    for grade, text in entries:
        who = e(grade.student) + (f" ({e(grade.student_id)})" if grade.student_id else "")
        body = f"<div class='answer'>{e(text)}</div>" if text else "<p class='none'>no answer</p>"
        parts.append(f"<h2>{who}</h2>{body}")
    return "".join(parts) + "</body></html>\n"


def read_scores(path: Path, items: list[Resolved]) -> dict[tuple[str, str], tuple[float, str]]:
    """(student, question) -> (points, comment) from a filled-in scores file; blank points are skipped."""
    possible = {item.exercise: item.points for item in items}
    scores, problems = {}, []
    try:
        reader = csv.DictReader(open(path, newline="", encoding="utf-8-sig"))
        rows = list(reader)
    except (OSError, csv.Error, UnicodeDecodeError) as error:
        raise ScoresError(f"{path} cannot be read: {error}") from None
    missing = [c for c in ("student", "question", "points") if c not in (reader.fieldnames or [])]
    if missing:
        raise ScoresError(f"{path} has no column(s) {', '.join(missing)} (it needs: {', '.join(COLUMNS)})")
    for line, row in enumerate(rows, start=2):
        student, question, points = from_cell(row["student"]), row["question"], row["points"].strip()
        if not points:
            continue
        if question not in possible:
            problems.append(f"line {line}: question {question!r} is not in the rubric ({', '.join(possible)})")
            continue
        try:
            value = float(points)
        except ValueError:
            value = -1.0
        if not 0 <= value <= possible[question]:
            problems.append(f"line {line}: {student}, {question}: points must be a number from 0 to "
                            f"{possible[question]}, got {points!r}")
            continue
        scores[(student, question)] = (value, (row.get("comment") or "").strip())
    if problems:
        raise ScoresError(f"{path}:\n" + "\n".join(problems))
    return scores


def add_to_grades(grades: list[Grade], items: list[Resolved], scores: dict[tuple[str, str], tuple[float, str]]) -> None:
    """One more exercise line per written question in every grade: the TA's points, or 0 "not graded yet"."""
    for grade in grades:
        for item in items:
            if (grade.student, item.exercise) in scores:
                points, comment = scores[(grade.student, item.exercise)]
                reason = f"graded by hand: {number(points)} / {item.points}" + (f": {comment}" if comment else "")
            else:
                points, reason = 0.0, "written answer: not graded yet (graded by hand)"
            grade.exercises.append(ExerciseGrade(item.label, item.exercise, item.notebook, item.points, points, [],
                                                 reason, attempted=False))
