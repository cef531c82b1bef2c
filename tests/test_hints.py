"""Hints teach without handing over the answer; exercises are numbered one way; questions get an answer cell.

The rules (CONTRIBUTING.md, "Exercises, hints and questions"), checked on every solution notebook:
- each exercise has two folds before its cell: `Hint 1` (the idea, the shape, which function to look up) and
  `Hint 2 (code-level)`. Hint 1 contains no line of that exercise's solution; Hint 2 never contains the whole
  solution, nor the whole of one of its `### BEGIN SOLUTION` blocks. Lines are compared with all whitespace
  removed, comments dropped, and trivial lines (`return x`, brackets, `i += 1`) ignored;
- each exercise's heading is `### Exercise S.K · `<exercise id>` — words (P points, ⏱ M min)`, where S is the
  `## S · ` section it sits in, K counts 1, 2, … within that section, and P is the exercise's points;
- a `**Question.**` or `**Predict …**` cell is followed by a written-answer cell; a question's `Answer` fold opens
  the cell after it; each notebook has an `### Experiment` with a prediction and a `Discussion` fold.
"""

from __future__ import annotations

import io
import re
import textwrap
import tokenize
from pathlib import Path

import nbformat
import pytest

from coursekit import build

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
FOLD = re.compile(r"<details><summary>(.*?)</summary>(.*?)</details>", re.S)
HINT_1, HINT_2 = "Hint 1", "Hint 2 (code-level)"
HEADING = re.compile(r"^### Exercise (\d+)\.(\d+) · `([a-z0-9_]+)`(?: — [^\n(]+)? \((\d+) points?, ⏱ (\d+) min\)$",
                     re.M)
SECTION = re.compile(r"^## (\d+) · ", re.M)
ASKS = re.compile(r"\*\*(Question\.|Predict[^*]*)\*\*")


def without_comments(block: str) -> list[str]:
    """The lines of a piece of code with comments removed (by the tokenizer, so a '#' inside a string stays)."""
    source = textwrap.dedent(block)
    lines = source.splitlines()
    try:
        comments = [token for token in tokenize.generate_tokens(io.StringIO(source + "\n").readline)
                    if token.type == tokenize.COMMENT]
    except (tokenize.TokenError, IndentationError):
        return [re.sub(r"\s+#.*$|^\s*#.*$", "", line) for line in lines]
    for token in reversed(comments):
        row, column = token.start
        lines[row - 1] = lines[row - 1][:column]
    return lines


def squeeze(text: str) -> str:
    """Text with every whitespace character removed, so spacing never decides a match."""
    return re.sub(r"\s+", "", text)


def significant(line: str) -> bool:
    """False for lines that give nothing away: short ones, `return name`, brackets, `else:`."""
    squeezed = squeeze(line)
    return not (len(squeezed) < 12 or re.fullmatch(r"(return|yield)?[\w.]*", squeezed)
                or re.fullmatch(r"[\W_]*", squeezed) or re.fullmatch(r"(else|try|finally|pass|break|continue):?",
                                                                    squeezed))


def solution_blocks(source: str) -> list[list[str]]:
    """The significant lines of each ### BEGIN SOLUTION ... ### END SOLUTION block, squeezed."""
    blocks, current = [], None
    for line in source.splitlines():
        if line.strip() == build.BEGIN_SOLUTION:
            current = []
        elif line.strip() == build.END_SOLUTION:
            blocks.append([squeeze(code) for code in without_comments("\n".join(current)) if significant(code)])
            current = None
        elif current is not None:
            current.append(line)
    return blocks


def exercise_contexts(notebook) -> list[tuple[dict, int, str]]:
    """(exercise metadata, cell index, the markdown between the previous exercise cell and this one)."""
    contexts, start = [], 0
    for index, cell in enumerate(notebook.cells):
        meta = build.exercise_of(cell)
        if meta is None:
            continue
        markdown = "\n\n".join(previous.source for previous in notebook.cells[start:index]
                               if previous.cell_type == "markdown")
        contexts.append((meta, index, markdown))
        start = index + 1
    return contexts


def hint_problems(notebook) -> list[str]:
    """Every way the notebook's hints break the rules, one sentence each (empty when all is well)."""
    problems = []
    for meta, index, markdown in exercise_contexts(notebook):
        name = meta["exercise"]
        folds = [(summary.strip(), body) for summary, body in FOLD.findall(markdown)
                 if summary.strip().startswith("Hint")]
        summaries = [summary for summary, _ in folds]
        if summaries != [HINT_1, HINT_2]:
            problems.append(f"{name}: wants exactly the folds {[HINT_1, HINT_2]} before its cell, in that order; "
                            f"found {summaries}")
            continue
        first, second = (squeeze(body) for _, body in folds)
        blocks = solution_blocks(notebook.cells[index].source)
        for line in sorted({line for block in blocks for line in block}):
            if line in first:
                problems.append(f"{name}: Hint 1 contains a line of the solution: {line!r}")
        everything = [line for block in blocks for line in block]
        if everything and all(line in second for line in everything):
            problems.append(f"{name}: Hint 2 contains the whole solution")
        else:
            for number, block in enumerate(blocks, start=1):
                if len(block) >= 2 and all(line in second for line in block):
                    problems.append(f"{name}: Hint 2 contains all of solution block {number}")
    return problems


def numbering_problems(notebook) -> list[str]:
    """Every exercise heading that does not follow `### Exercise S.K · `id` — words (P points, ⏱ M min)`."""
    problems, section, count = [], None, 0
    for meta, index, markdown in exercise_contexts(notebook):
        name = meta["exercise"]
        sections = SECTION.findall(markdown)
        if sections:
            section, count = int(sections[-1]), 0
        headings = [match for match in HEADING.finditer(markdown) if match.group(3) == name]
        if len(headings) != 1:
            problems.append(f"{name}: wants one heading '### Exercise S.K · `{name}` — words "
                            f"({meta['points']} points, ⏱ M min)' before its cell, found {len(headings)}")
            continue
        heading = headings[0]
        count += 1
        number, points = (int(heading.group(1)), int(heading.group(2))), int(heading.group(4))
        if number != (section, count):
            problems.append(f"{name}: numbered {number[0]}.{number[1]}, but it is exercise {count} of section "
                            f"{section}: {section}.{count}")
        if points != meta["points"]:
            problems.append(f"{name}: its heading says {points} points, its metadata {meta['points']}")
    return problems


def written_problems(notebook) -> list[str]:
    """Questions without an answer cell, Answer folds not right after one, a missing experiment."""
    problems, cells = [], notebook.cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "markdown" or build.written_of(cell):
            continue
        following = cells[index + 1] if index + 1 < len(cells) else None
        if ASKS.search(cell.source) and (following is None or not build.written_of(following)):
            problems.append(f"cell {index} asks {ASKS.search(cell.source).group(0)} but the next cell is not a "
                            f"written-answer cell")
        if "<summary>Answer</summary>" in cell.source and not (
                cell.source.startswith("<details><summary>Answer</summary>") and index
                and build.written_of(cells[index - 1])):
            problems.append(f"cell {index}: an Answer fold must open the cell right after the question's "
                            f"written-answer cell")
    text = "\n".join(cell.source for cell in cells if cell.cell_type == "markdown")
    if "### Experiment" not in text or "<summary>Discussion</summary>" not in text:
        problems.append("no '### Experiment' with a <details><summary>Discussion</summary> fold")
    return problems


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.stem)
def test_hints_teach_without_giving_the_answer(path):
    assert hint_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.stem)
def test_exercises_are_numbered_by_section(path):
    assert numbering_problems(nbformat.read(path, as_version=4)) == []


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda path: path.stem)
def test_questions_have_answer_cells_and_there_is_an_experiment(path):
    assert written_problems(nbformat.read(path, as_version=4)) == []


# ---------------------------------------------------------------- the detectors themselves

SOLVED = '''def running_total(values):
    ### BEGIN SOLUTION
    totals, total = [], 0
    for value in values:  # left to right
        total = total + value
        totals.append(total)
    return totals
    ### END SOLUTION'''


def notebook_with(hints: str, source: str = SOLVED,
                  heading: str = "### Exercise 1.1 · `running_total` (2 points, ⏱ 5 min)"):
    exercise = nbformat.v4.new_code_cell(source, metadata={"coursekit": {"exercise": "running_total", "points": 2}})
    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(f"## 1 · Sums\n\n{heading}\n\n{hints}"),
                                           exercise, nbformat.v4.new_code_cell("check_running_total(running_total)")])


def folds(first: str, second: str) -> str:
    return (f"<details><summary>Hint 1</summary>\n\n{first}\n</details>\n\n"
            f"<details><summary>Hint 2 (code-level)</summary>\n\n{second}\n</details>")


def test_good_hints_pass():
    hints = folds("Keep the sum so far in a variable and record it after each value.",
                  "`totals.append(total)` after adding each value to `total`.")
    assert hint_problems(notebook_with(hints)) == []


@pytest.mark.parametrize("first", [
    "Add each value with `total = total+value`.",  # other spacing
    "```python\nfor value in values:\n```",  # a line whose comment the solution has and the hint has not
])
def test_a_solution_line_in_hint_1_is_caught(first):
    [problem] = hint_problems(notebook_with(folds(first, "Append the total.")))
    assert problem.startswith("running_total: Hint 1 contains a line of the solution")


def test_trivial_lines_in_hint_1_are_allowed():
    assert hint_problems(notebook_with(folds("At the end, `return totals`; start from `total = 0`.", "..."))) == []


def test_the_whole_solution_in_hint_2_is_caught():
    body = SOLVED.split("### BEGIN SOLUTION\n")[1].split("    ### END SOLUTION")[0]
    assert hint_problems(notebook_with(folds("Use a loop.", f"```python\n{textwrap.dedent(body)}```"))) == [
        "running_total: Hint 2 contains the whole solution"]


def test_a_whole_solution_block_in_hint_2_is_caught():
    source = ("class M:\n    def __init__(self):\n        ### BEGIN SOLUTION\n        self.first_layer = make(1)\n"
              "        self.second_layer = make(2)\n        ### END SOLUTION\n\n    def forward(self, x):\n"
              "        ### BEGIN SOLUTION\n        return self.second_layer(self.first_layer(x))\n"
              "        ### END SOLUTION")
    hints = folds("Two layers, applied in order.", "`self.first_layer = make(1)` and `self.second_layer = make(2)`")
    assert hint_problems(notebook_with(hints, source)) == [
        "running_total: Hint 2 contains all of solution block 1"]


@pytest.mark.parametrize("hints", [
    "<details><summary>Hint</summary>\n\nUse a loop.\n</details>",
    folds("Use a loop.", "x")[: folds("Use a loop.", "x").index("<details><summary>Hint 2")],
])
def test_a_missing_level_is_caught(hints):
    [problem] = hint_problems(notebook_with(hints))
    assert "wants exactly the folds" in problem


@pytest.mark.parametrize("heading, complaint", [
    ("### Exercise `running_total` (2 points)", "wants one heading"),
    ("### Exercise 2.1 · `running_total` — sums (2 points, ⏱ 5 min)", "numbered 2.1, but it is exercise 1 of section 1"),
    ("### Exercise 1.1 · `running_total` (3 points, ⏱ 5 min)", "heading says 3 points, its metadata 2"),
])
def test_numbering_mistakes_are_named(heading, complaint):
    [problem] = numbering_problems(notebook_with(folds("a", "b"), heading=heading))
    assert complaint in problem


def test_a_question_without_an_answer_cell_is_caught():
    question = nbformat.v4.new_markdown_cell("**Question.** Why?")
    answer = nbformat.v4.new_markdown_cell("<details><summary>Answer</summary>\n\nBecause.\n</details>")
    written = nbformat.v4.new_markdown_cell(build.WRITTEN_PLACEHOLDER, metadata={"coursekit": {"written": "why"}})
    experiment = nbformat.v4.new_markdown_cell("### Experiment · x\n\n<details><summary>Discussion</summary>\n\n"
                                               "y\n</details>")
    good = nbformat.v4.new_notebook(cells=[question, written, answer, experiment])
    assert written_problems(good) == []
    missing = nbformat.v4.new_notebook(cells=[question, answer, experiment])
    assert [problem.split(":")[0] for problem in written_problems(missing)] == [
        "cell 0 asks **Question.** but the next cell is not a written-answer cell", "cell 1"]
    no_experiment = nbformat.v4.new_notebook(cells=[question, written, answer])
    assert written_problems(no_experiment) == ["no '### Experiment' with a <details><summary>Discussion</summary> fold"]
