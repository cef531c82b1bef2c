"""What the grader writes: one feedback page per student (Markdown and HTML), grades.csv and review.csv.

Everything a student's code produced (error messages, names) is untrusted text: it is escaped in HTML, kept
out of Markdown structure, and guarded against spreadsheet formulas in CSV. Output is deterministic: the same
grades give the same bytes.
"""

from __future__ import annotations

import csv
import html
import io
import re
import statistics
from pathlib import Path

from coursekit.checks import Outcome
from coursekit.grading.grader import ExerciseGrade, Grade


def number(value: float) -> str:
    """Points as text: '3', '2.5', '3.33'.

    >>> number(3.0), number(2.50), number(10 / 3)
    ('3', '2.5', '3.33')
    """
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _plain(text: str, limit: int = 500) -> str:
    text = "".join(c if c.isprintable() or c == " " else " " for c in str(text))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _md(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|])", r"\\\1", _plain(text))


def file_name(student: str) -> str:
    """A safe file name for a student's feedback.

    >>> file_name("../Ann Lee")
    '.._Ann_Lee'
    """
    return re.sub(r"[^A-Za-z0-9._-]", "_", student) or "student"


def _shown(exercise: ExerciseGrade) -> list[Outcome]:
    """The test lines worth showing: none for an exercise not attempted or missing (its reason says it all)."""
    return exercise.outcomes if exercise.attempted else []


def _status(exercise: ExerciseGrade) -> str:
    """The summary table's last column: tests passed, or why there are none to count."""
    if not exercise.attempted:
        return exercise.reason.split(":")[0]
    return f"{sum(o.passed for o in exercise.outcomes)}/{len(exercise.outcomes)} tests passed"


def markdown(grade: Grade, rubric: str) -> str:
    lines = [f"# Feedback for {_md(grade.student)}", "",
             f"**Total: {number(grade.earned)} / {grade.possible}** (rubric: {_md(rubric)})", "",
             "| Exercise | Points | |", "|---|---|---|"]
    for exercise in grade.exercises:
        lines.append(f"| {_md(exercise.label)} | {number(exercise.earned)} / {exercise.possible} | "
                     f"{_md(_status(exercise))} |")
    for exercise in grade.exercises:
        lines += ["", f"## {_md(exercise.label)}: {number(exercise.earned)} / {exercise.possible}"]
        if exercise.reason:
            lines += ["", f"*{_md(exercise.reason)}*"]
        lines.append("")
        for outcome in _shown(exercise):
            mark = "✓" if outcome.passed else "✗"
            lines.append(f"- {mark} {_md(outcome.test)}" + (f": {_md(outcome.message)}" if outcome.message else ""))
    if grade.notes:
        lines += ["", "## Notes", ""] + [f"- {_md(note)}" for note in grade.notes]
    if grade.flags:
        lines += ["", "## Flagged for review", "", "The instructor will look at these; they did not change any points "
                  "unless an exercise above says so.", ""] + [f"- {_md(flag)}" for flag in grade.flags]
    return "\n".join(lines) + "\n"


def to_html(grade: Grade, rubric: str) -> str:
    e = lambda text: html.escape(_plain(text))  # noqa: E731
    rows = "".join(f"<tr><td>{e(x.label)}</td><td>{number(x.earned)} / {x.possible}</td>"
                   f"<td>{e(_status(x))}</td></tr>"
                   for x in grade.exercises)
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Feedback for {e(grade.student)}</title>"
             "<style>body{font-family:sans-serif;max-width:50em;margin:auto} .pass{color:#060} .fail{color:#a00}"
             " td{padding:0 1em}</style></head><body>",
             f"<h1>Feedback for {e(grade.student)}</h1>",
             f"<p><strong>Total: {number(grade.earned)} / {grade.possible}</strong> (rubric: {e(rubric)})</p>",
             f"<table><tr><th>Exercise</th><th>Points</th><th></th></tr>{rows}</table>"]
    for x in grade.exercises:
        parts.append(f"<h2>{e(x.label)}: {number(x.earned)} / {x.possible}</h2>")
        if x.reason:
            parts.append(f"<p><em>{e(x.reason)}</em></p>")
        parts.append("<ul>" + "".join(
            f"<li class='{'pass' if o.passed else 'fail'}'>{'✓' if o.passed else '✗'} {e(o.test)}"
            + (f": {e(o.message)}" if o.message else "") + "</li>" for o in _shown(x)) + "</ul>")
    if grade.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in grade.notes) + "</ul>")
    if grade.flags:
        parts.append("<h2>Flagged for review</h2><ul>" + "".join(f"<li>{e(f)}</li>" for f in grade.flags) + "</ul>")
    return "".join(parts) + "</body></html>\n"


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet runs a cell that starts with one of them


def _cell(text: str) -> str:
    return "'" + text if text[:1] in FORMULA_STARTS else text


def from_cell(text: str) -> str:
    """The text `_cell` was given: the quote goes only where `_cell` put one (a student may be named 'bob).

    >>> [from_cell(_cell(name)) for name in ["=SUM(A1)", "'bob", "bob"]]
    ['=SUM(A1)', "'bob", 'bob']
    """
    return text[1:] if text[:1] == "'" and text[1:2] in FORMULA_STARTS else text


def grades_csv(grades: list[Grade]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    labels = [x.label for x in grades[0].exercises] if grades else []
    writer.writerow(["student", "student_id", *labels, "total"])
    for grade in sorted(grades, key=lambda g: (g.student, g.student_id)):
        writer.writerow([_cell(grade.student), _cell(grade.student_id), *(number(x.earned) for x in grade.exercises),
                         number(grade.earned)])
    return out.getvalue()


def review_csv(grades: list[Grade]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student", "student_id", "flag"])
    for grade in sorted(grades, key=lambda g: (g.student, g.student_id)):
        writer.writerows([_cell(grade.student), _cell(grade.student_id), _cell(_plain(flag))] for flag in grade.flags)
    return out.getvalue()


def write_all(grades: list[Grade], out: Path, rubric: str) -> None:
    """Write every output; called once, after all sandboxes have finished."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "feedback").mkdir(exist_ok=True)
    used = set()
    for grade in grades:
        name = file_name(f"{grade.student}_{grade.student_id}" if grade.student_id else grade.student)
        while name in used:
            name += "_"
        used.add(name)
        (out / "feedback" / f"{name}.md").write_text(markdown(grade, rubric), encoding="utf-8")
        (out / "feedback" / f"{name}.html").write_text(to_html(grade, rubric), encoding="utf-8")
    (out / "grades.csv").write_text(grades_csv(grades), encoding="utf-8")
    (out / "review.csv").write_text(review_csv(grades), encoding="utf-8")


def summary(grades: list[Grade]) -> str:
    if not grades:
        return "no submissions"
    totals = [g.earned for g in grades]
    possible = grades[0].possible
    lines = [f"graded {len(grades)} submission(s) out of {possible} points: mean {number(statistics.mean(totals))}, "
             f"median {number(statistics.median(totals))}, min {number(min(totals))}, max {number(max(totals))}"]
    width = max(len(x.label) for x in grades[0].exercises) if grades[0].exercises else 10
    for index, exercise in enumerate(grades[0].exercises):
        earned = [g.exercises[index].earned for g in grades]
        full = sum(1 for value in earned if value == exercise.possible)
        lines.append(f"  {exercise.label:<{width}}  mean {number(statistics.mean(earned)):>6} / {exercise.possible:<3}"
                     f" full marks: {full}/{len(grades)}")
    flagged = sum(1 for g in grades if g.flags)
    if flagged:
        lines.append(f"{flagged} submission(s) flagged for review: see review.csv")
    return "\n".join(lines)
