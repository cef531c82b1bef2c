"""Rubrics: an assignment is a named list of exercises with points, bound to the solution notebooks.

A solution notebook is a rubric by itself (`--rubric 03` or `--rubric 03_attention`): its exercises with the
points in their cell metadata. Named rubrics pick exercises from several notebooks and set their own points;
`original` is the course's original 100-point assignment. A rubric is only used after `resolve` has found,
for every item, the solution notebook, the exercise in it and a check in coursekit.checks; otherwise it says
exactly what is missing.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from coursekit import build
from coursekit.grading import references


@dataclass(frozen=True)
class Item:
    notebook: str  # the solution notebook: its number ("02") or its name ("02_bigram_mlp")
    exercise: str
    points: int | None = None  # None: the points in the solution notebook's metadata
    section: str = ""  # e.g. "part1": prefixes the column name
    written: bool = False  # a written question graded by hand (`exercise` is its id); needs points


@dataclass(frozen=True)
class Rubric:
    name: str
    items: tuple[Item, ...]


@dataclass(frozen=True)
class Resolved:
    """A rubric item bound to its solution notebook and check: everything the grader needs."""

    label: str  # the column in grades.csv, e.g. "part1.encode"
    notebook: str  # the solution notebook's name, e.g. "02_bigram_mlp"
    exercise: str
    points: int
    check: str  # the name in coursekit.checks.CHECKS
    arguments: tuple[str, ...]  # the names the solution's check cell passes
    written: bool = False  # graded by hand: no check, no sandbox (see coursekit.grading.written)


def _part(number: str, section: str, entries: list[tuple[str, int]]) -> list[Item]:
    return [Item(number, exercise, points, section) for exercise, points in entries]


PART1 = _part("02", "part1", [("chars", 1), ("encode", 2), ("decode", 2), ("one_hot_pairs", 5),
                              ("bigram_one_hot_mlp", 10), ("train_one_hot", 5), ("input_ids", 5),
                              ("bigram_embedding_mlp", 5)])
PART2 = (_part("04", "part2", [("chars", 1), ("encode", 1), ("decode", 1)])
         + _part("03", "part2", [("attention_head", 5), ("multi_head_attention", 5)])
         + _part("04", "part2", [("mlp", 2), ("block", 20), ("gpt_constructor", 5), ("forward", 5),
                                 ("generate", 5), ("training_loop", 15)]))
NAMED = {
    "original": Rubric("original", tuple(PART1 + PART2)),
    "original-part1": Rubric("original-part1", tuple(PART1)),
    "original-part2": Rubric("original-part2", tuple(PART2)),
}


class RubricError(ValueError):
    """A rubric that cannot be used; the message lists everything that is missing."""


def find_solution(key: str, solutions: Path) -> Path | None:
    """The solution notebook a rubric names: "02" is solutions/02_*.ipynb, "02_bigram_mlp" an exact name."""
    key = Path(key).name.removesuffix(".ipynb")
    exact = solutions / f"{key}.ipynb"
    if exact.exists():
        return exact
    matches = sorted(solutions.glob(f"{key}_*.ipynb")) if key.isdigit() else []
    return matches[0] if len(matches) == 1 else None


def from_notebooks(keys: list[str], solutions: Path) -> Rubric:
    """The rubric of whole solution notebooks, with the points of their metadata."""
    items = []
    for key in keys:
        path = find_solution(key, solutions)
        if path is None:
            raise RubricError(f"no solution notebook {key!r} in {solutions}")
        notebook = nbformat.read(path, as_version=4)
        section = path.stem if len(keys) > 1 else ""
        items.extend(Item(path.stem, found["exercise"], None, section) for found in build.exercises(notebook))
    return Rubric("+".join(Path(key).name.removesuffix(".ipynb") for key in keys), tuple(items))


def load(name: str, solutions: Path) -> Rubric:
    """A rubric by name: a named rubric, a JSON file, or solution notebooks ("03" or "02,03")."""
    if name in NAMED:
        return NAMED[name]
    if name.endswith(".json"):
        try:
            data = json.loads(Path(name).read_text())
            return Rubric(data["name"], tuple(Item(str(i["notebook"]), i["written"] if "written" in i else i["exercise"],
                                                   i.get("points"), i.get("section", ""), "written" in i)
                                              for i in data["items"]))
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RubricError(f"{name} is not a rubric file ({error})") from None
    return from_notebooks(name.split(","), solutions)


def to_json(rubric: Rubric) -> str:
    items = [{"notebook": i.notebook, "written" if i.written else "exercise": i.exercise, "points": i.points,
              "section": i.section} for i in rubric.items]
    return json.dumps({"name": rubric.name, "items": items}, indent=1) + "\n"


def resolve(rubric: Rubric, solutions: Path) -> list[Resolved]:
    """Bind every item to its solution notebook and check, or raise RubricError listing all that is missing."""
    from coursekit.checks import CHECKS

    resolved, problems, cache = [], [], {}
    missing_notebooks: dict[str, list[Item]] = {}
    for item in rubric.items:
        path = find_solution(item.notebook, solutions)
        if path is None:
            missing_notebooks.setdefault(item.notebook, []).append(item)
            continue
        if path not in cache:
            cache[path] = {found["exercise"]: found for found in build.exercises(nbformat.read(path, as_version=4))}
        where = f"{rubric.name}: {path.name}"
        if item.written:
            problem = _written_problem(item, path)
            if problem:
                problems.append(f"{where}: {problem}")
            else:
                label = ".".join(filter(None, [item.section, "written", item.exercise]))
                resolved.append(Resolved(label, path.stem, item.exercise, item.points, "", (), written=True))
            continue
        found = cache[path].get(item.exercise)
        if found is None:
            problems.append(f"{where} has no exercise {item.exercise!r} (it has: {', '.join(cache[path]) or 'none'})")
            continue
        check = CHECKS.get(found["check"] or "")
        if check is None:
            problems.append(f"{where}: exercise {item.exercise!r} calls {found['check']}, which is not in "
                            "coursekit.checks")
            continue
        if check.exercise != item.exercise or len(check.expects) != len(found["arguments"]):
            problems.append(f"{where}: {found['check']} does not fit exercise {item.exercise!r}")
            continue
        label = f"{item.section}.{item.exercise}" if item.section else item.exercise
        points = item.points if item.points is not None else found["points"]
        resolved.append(Resolved(label, path.stem, item.exercise, points, found["check"], tuple(found["arguments"])))
    for key, items in missing_notebooks.items():
        points = sum(i.points or 0 for i in items)
        problems.append(f"{rubric.name}: no solution notebook {key!r} in {solutions} yet: {len(items)} exercise(s) "
                        f"({points} points) cannot be graded: {', '.join(i.exercise for i in items)}")
    labels = [r.label for r in resolved]
    problems.extend(f"{rubric.name}: two items are both named {label!r}; give them sections"
                    for label in sorted({l for l in labels if labels.count(l) > 1}))
    if problems:
        raise RubricError("\n".join(problems))
    return resolved


def written_questions(solution: Path) -> list[str]:
    """The ids of a solution notebook's written questions (markdown cells marked {"coursekit": {"written": id}})."""
    cells = nbformat.read(solution, as_version=4).cells
    return [c.metadata["coursekit"]["written"] for c in cells
            if c.cell_type == "markdown" and isinstance(c.metadata.get("coursekit"), dict)
            and isinstance(c.metadata["coursekit"].get("written"), str)]


def _written_problem(item: Item, solution: Path) -> str:
    if not isinstance(item.points, int) or item.points <= 0:
        return f"written question {item.exercise!r} needs its points (\"points\": 3)"
    questions = written_questions(solution)
    if item.exercise not in questions:
        return f"has no written question {item.exercise!r} (it has: {', '.join(questions) or 'none'})"
    return ""


def given_code(solution: Path) -> set[str]:
    """The code cells of the student version of a solution notebook (what every student starts from)."""
    given = {getattr(build, "COLAB_SETUP", "").strip()}
    for cell in nbformat.read(solution, as_version=4).cells:
        if cell.cell_type == "code":
            try:
                given.add((build.strip_solution(cell.source) if build.BEGIN_SOLUTION in cell.source
                           else cell.source).strip())
            except build.BuildError:
                pass
    return given


def plumbing_modules(solution: Path) -> set[str]:
    """The coursekit modules a student notebook itself imports (outside the answers): students may use those.

    Every other coursekit module (the reference implementations the checks compare against) is off limits.
    """
    notebook = nbformat.read(solution, as_version=4)
    modules = set()
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        try:
            tree = ast.parse(build.strip_solution(cell.source) if build.BEGIN_SOLUTION in cell.source else cell.source)
        except (SyntaxError, build.BuildError):
            continue
        modules |= references.coursekit_imports(ast.walk(tree))
    return modules
