"""Written answers graded by hand: exported per question across the class, the TA's points merged back.

A rubric of written questions only needs no sandbox, so these tests run in seconds.
"""

import csv
import json
from pathlib import Path

import pytest

from coursekit.cli import main
from coursekit.grading import rubric

PLACEHOLDER = "*Write your answer here.*"


def notebook(answers: dict[str, str]) -> str:
    cells = []
    for question, answer in answers.items():
        cells.append({"cell_type": "markdown", "metadata": {}, "source": f"**Question.** About {question}?"})
        cells.append({"cell_type": "markdown", "metadata": {"coursekit": {"written": question}}, "source": answer})
    return json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def course(tmp_path):
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    (solutions / "02_bigram_mlp.ipynb").write_text(notebook({"loss_curve": PLACEHOLDER, "embedding": PLACEHOLDER}))
    items = [{"notebook": "02", "written": "loss_curve", "points": 3},
             {"notebook": "02", "written": "embedding", "points": 2}]
    (tmp_path / "rubric.json").write_text(json.dumps({"name": "essay", "items": items}))
    for student, answers in {"ann": {"loss_curve": "It falls <b>fast</b> & then flattens.", "embedding": "Rows."},
                             "bob": {"loss_curve": PLACEHOLDER, "embedding": "<script>alert(1)</script>"},
                             "cid": {}}.items():
        (tmp_path / "class" / student).mkdir(parents=True)
        (tmp_path / "class" / student / "02_bigram_mlp.ipynb").write_text(notebook(answers))
    return tmp_path


def grade(course: Path, *extra) -> int:
    return main(["grade", str(course / "class"), "--rubric", str(course / "rubric.json"), "--solutions",
                 str(course / "solutions"), "--out", str(course / "out"), *extra])


def test_the_rubric_gives_written_questions_their_points_and_checks_they_exist(course):
    solutions = course / "solutions"
    items = rubric.resolve(rubric.load(str(course / "rubric.json"), solutions), solutions)
    assert [(i.label, i.points, i.written) for i in items] == [("written.loss_curve", 3, True),
                                                              ("written.embedding", 2, True)]
    wrong = rubric.Rubric("r", (rubric.Item("02", "nope", 3, written=True), rubric.Item("02", "embedding", None,
                                                                                       written=True)))
    with pytest.raises(rubric.RubricError) as error:
        rubric.resolve(wrong, solutions)
    assert "no written question 'nope'" in str(error.value) and "needs its points" in str(error.value)


def test_answers_are_exported_per_question_escaped_with_a_sheet_to_fill_in(course):
    assert grade(course, "--export-written", str(course / "written")) == 0
    page = (course / "written" / "02_bigram_mlp__embedding.html").read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "2 of 3 students answered" in page
    loss = (course / "written" / "02_bigram_mlp__loss_curve.html").read_text()
    assert "It falls &lt;b&gt;fast&lt;/b&gt; &amp; then flattens." in loss and "1 of 3 students answered" in loss
    rows = list(csv.DictReader(open(course / "written" / "written_scores.csv")))
    assert list(rows[0]) == ["student", "student_id", "notebook", "question", "answer", "points", "comment"]
    assert [(r["student"], r["question"], r["answer"]) for r in rows if r["question"] == "loss_curve"] == [
        ("ann", "loss_curve", "It falls <b>fast</b> & then flattens."), ("bob", "loss_curve", ""),
        ("cid", "loss_curve", "")]


def fill(course: Path, points: dict[tuple[str, str], str]) -> Path:
    sheet = course / "written" / "written_scores.csv"
    rows = list(csv.DictReader(open(sheet)))
    for row in rows:
        row["points"] = points.get((row["student"], row["question"]), "")
        row["comment"] = "clear" if row["points"] else ""
    with open(sheet, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return sheet


def test_the_tas_points_reach_grades_csv_and_the_feedback(course):
    assert grade(course, "--export-written", str(course / "written")) == 0
    sheet = fill(course, {("ann", "loss_curve"): "3", ("ann", "embedding"): "1.5", ("bob", "embedding"): "0"})
    assert grade(course, "--written-scores", str(sheet)) == 0
    rows = {r["student"]: r for r in csv.DictReader(open(course / "out" / "grades.csv"))}
    assert (rows["ann"]["written.loss_curve"], rows["ann"]["written.embedding"], rows["ann"]["total"]) == (
        "3", "1.5", "4.5")
    assert rows["bob"]["total"] == "0" and rows["cid"]["total"] == "0"
    ann = (course / "out" / "feedback" / "ann.md").read_text()
    assert "graded by hand: 1.5 / 2: clear" in ann
    assert "not graded yet" in (course / "out" / "feedback" / "cid.md").read_text()


def test_points_out_of_range_stop_the_merge_and_say_which_line(course, capsys):
    assert grade(course, "--export-written", str(course / "written")) == 0
    sheet = fill(course, {("ann", "loss_curve"): "4", ("bob", "embedding"): "lots"})
    assert grade(course, "--written-scores", str(sheet)) == 2
    err = capsys.readouterr().err
    assert "line 2: ann, loss_curve: points must be a number from 0 to 3, got '4'" in err and "'lots'" in err


def test_gradescope_shows_written_questions_as_pending_until_graded(course):
    root = course / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "hw.ipynb").write_text(notebook({"loss_curve": "It falls."}))
    assert main(["grade", "--gradescope", "--gradescope-root", str(root), "--rubric", str(course / "rubric.json"),
                 "--solutions", str(course / "solutions")]) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert [(t["name"], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("written.loss_curve", 0.0, 3), ("written.embedding", 0.0, 2)]
    assert all("graded by hand" in t["output"] for t in results["tests"])


def test_a_student_named_with_a_leading_quote_keeps_their_own_written_points(tmp_path):
    """Red team 3 F10: the merge dropped every leading quote, so 'bob's points went to bob."""
    from coursekit.grading import feedback, written

    question = rubric.Resolved("02.loss_curve", "02_bigram_mlp", "loss_curve", 3, "", (), written=True)
    sheet = tmp_path / "written_scores.csv"
    with open(sheet, "w", newline="") as handle:
        rows = csv.writer(handle)
        rows.writerow(written.COLUMNS)
        for student, points in [("'bob", "3"), ("bob", ""), ("=cmd", "1")]:
            rows.writerow([feedback._cell(student), "", "02_bigram_mlp", "loss_curve", "an answer", points, ""])
    scores = written.read_scores(sheet, [question])
    assert scores == {("'bob", "loss_curve"): (3.0, ""), ("=cmd", "loss_curve"): (1.0, "")}
