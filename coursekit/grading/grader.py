"""Grading a class: match each submitted notebook to its solution, run it in the sandbox, judge here.

Student code runs only in sandbox children (containment.py); this process only ever sees plain data, and computes
every verdict with the checks' judges: points = the exercise's points × the weights of the tests passed. Each run
draws a run seed from a secret (`--secret`, recorded with the grades) and each notebook's seed from it and the
notebook's code (`notebook_seed`); the probes in the sandbox draw their inputs from that seed and the judges here
recompute the expected values for those same inputs from the reference, which the sandbox never holds. An exercise whose tests did not run (crash, time limit, missing function) scores 0 for
them, with the reason.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import secrets
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


from coursekit import data
from coursekit.checks import CHECKS, Check, Outcome
from coursekit.grading import rubric as rubrics
from coursekit.grading import containment, explain, judging, matching, sandbox, scan
from coursekit.grading.submissions import CodeCell, StudentNotebook, Submission


CELL_NOTES = 20  # cell errors (and scan flags) listed per notebook; a notebook of 3,000 failing cells gets a count
# One submission's time, whatever it does: once spent, its remaining runs and tests fail with these reasons.
SANDBOX_BUDGET = ("this submission's sandbox time ({seconds:g} s for all its notebooks, --submission-seconds) "
                  "is used up")
JUDGE_BUDGET = ("this submission's judging time ({seconds:g} s for all its tests, --submission-judge-seconds) is "
                "used up, by results that took long to judge")


@dataclass
class ExerciseGrade:
    label: str
    exercise: str
    notebook: str
    possible: int
    earned: float
    outcomes: list[Outcome]
    reason: str = ""  # why some or all tests did not run, or why no credit
    attempted: bool = True  # False: the exercise's cell is as handed out, or its notebook is missing (one line)


@dataclass
class Grade:
    student: str
    exercises: list[ExerciseGrade]
    notes: list[str] = field(default_factory=list)  # what happened to the files and cells
    flags: list[str] = field(default_factory=list)  # for the instructor to review
    student_id: str = ""  # the LMS's id when the submissions came from an LMS download

    @property
    def earned(self) -> float:
        return round(sum(e.earned for e in self.exercises), 2)

    @property
    def possible(self) -> int:
        return sum(e.possible for e in self.exercises)


def plan(notebook: StudentNotebook, items: list[rubrics.Resolved]) -> list[dict]:
    """Where to probe each exercise: after the last cell that holds it or calls its check (else at the end)."""
    planned = []
    for item in items:
        after, fallback = None, []
        for cell in notebook.cells:
            calls = [arguments for name, arguments in cell.check_calls if name == item.check]
            if cell.exercise == item.exercise or calls:
                after = cell.index
            if calls and len(calls[-1]) == len(item.arguments):
                fallback = calls[-1]
        planned.append({"exercise": item.exercise, "check": item.check, "arguments": list(item.arguments),
                        "fallback_arguments": fallback, "after_cell": after})
    return planned


def needed_cells(notebook: StudentNotebook, planned: list[dict], given: set[str]) -> list[CodeCell]:
    """The cells to run while grading: all but the handed-out cells after the last one a grade can depend on.

    A grade depends on the cells up to the last probe point, or up to the last cell that (re)binds a name a probe
    uses, whichever is later. After that, cells exactly as handed out (the long demonstration training runs that
    close notebook 04) change no grade and are skipped; cells the student wrote or changed still run (and are
    still watched). An exercise probed only at the end keeps every cell.
    """
    if any(item["after_cell"] is None for item in planned):
        return notebook.cells
    names = {name for item in planned for name in item["arguments"] + item["fallback_arguments"]}
    last = max(item["after_cell"] for item in planned)
    for cell in notebook.cells:
        if names & explain.defined_names(cell.source):
            last = max(last, cell.index)
    untouched = explain.untouched_cells(notebook, given)
    return [cell for cell in notebook.cells if cell.index <= last or cell.index not in untouched]


def run_seed(secret: str) -> int:
    """The run seed of a grading run: a hash of its secret (the same secret, the same probe inputs).

    >>> run_seed("a") == run_seed("a") != run_seed("b")
    True
    """
    return int.from_bytes(hashlib.sha256(f"coursekit grading {secret}".encode()).digest()[:8], "big") | 1


def notebook_seed(seed: int, notebook: StudentNotebook) -> int:
    """The seed one submitted notebook is probed under: a hash of the run seed and of everything of the notebook
    the sandbox is handed (each code cell's position among all cells and its source).

    The same notebook regraded with the same secret meets the same inputs (the same grade); a notebook changed in
    any way the sandbox can see meets new ones, so inputs learnt in one run (code in the sandbox can read its seed,
    and print it into its feedback) are worth nothing to a resubmission graded with that secret, even one that
    carries them in the positions of its cells.
    """
    digest = hashlib.sha256(f"coursekit notebook {seed}".encode())
    for cell in notebook.cells:
        digest.update(f"{cell.index}:".encode() + hashlib.sha256(cell.source.encode()).digest())
    return int.from_bytes(digest.digest()[:8], "big") | 1


def new_secret() -> str:
    return secrets.token_hex(16)


def judge(item: rubrics.Resolved, run: sandbox.Run, seed: int, judges: judging.Judges,
          budget: sandbox.Budget | None = None) -> ExerciseGrade:
    """Verdicts for one exercise from the plain data its probes returned under `seed` (judged in `judges`' limited
    child, never in the sandbox, within what is left of the submission's judging `budget`)."""
    check = CHECKS[item.check]
    results = run.results.get(item.exercise, [])
    outcomes = judges.judge(item.check, results, seed, budget)
    reason = run.missing.get(item.exercise, "")
    if reason:
        ran = {name for name, _ in results}
        outcomes = [o if o.test in ran else Outcome(o.test, False, reason) for o in outcomes]
    earned = round(item.points * check.fraction(outcomes), 2)
    names = run.names_used.get(item.exercise)
    if names and list(names) != list(item.arguments) and not reason:
        reason = f"graded {', '.join(names)} (the names your check cell passes) instead of {', '.join(item.arguments)}"
    return ExerciseGrade(item.label, item.exercise, item.notebook, item.points, earned, outcomes, reason)


def register_check_modules(names: list[str]) -> None:
    """Add the check_* objects of extra modules (e.g. a course's own) to CHECKS, here and in every sandbox."""
    import importlib

    for name in names:
        for attribute, value in vars(importlib.import_module(name)).items():
            if attribute.startswith("check_") and isinstance(value, Check):
                CHECKS[attribute] = value


def check_module(name: str) -> str:
    """The module that defines the check `name` (the sandbox imports only that one)."""
    check = CHECKS[name]
    found = sorted(module_name for module_name, module in list(sys.modules.items())
                   if getattr(module, name, None) is check and module_name != "coursekit.checks"
                   and getattr(module, "__file__", None))
    return found[0] if found else "coursekit.checks"


def grade(submissions: list[Submission], items: list[rubrics.Resolved], solutions: Path,
          limits: sandbox.Limits | None = None, jobs: int = 1, on_done=None, check_modules: list[str] = (),
          secret: str | None = None, every_cell: bool = False) -> list[Grade]:
    """Grade every submission against the resolved rubric items; `on_done(student)` reports progress.

    `secret` fixes the probes' inputs (a regrade with the same secret gives the same grades); `every_cell` runs
    the cells after the last probe too (slower; the same grades: see `needed_cells`).
    """
    limits = limits or sandbox.Limits()
    seed = run_seed(secret if secret is not None else new_secret())
    register_check_modules(list(check_modules))
    data_dirs, notes = containment.sandbox_data_dirs(data.cache_dirs())
    for note in notes:
        print(note, file=sys.stderr)
    wanted: dict[str, list[rubrics.Resolved]] = {}
    for item in items:
        wanted.setdefault(item.notebook, []).append(item)
    allowed = {stem: sorted(rubrics.plumbing_modules(solutions / f"{stem}.ipynb")) for stem in wanted}
    given = {stem: rubrics.given_code(solutions / f"{stem}.ipynb") for stem in wanted}
    tests = {item.exercise: [t.name for t in CHECKS[item.check].tests] for item in items}
    tasks, grades = [], {}
    course = matching.catalogue(solutions)
    for submission in submissions:
        matched = matching.match(submission.notebooks, list(wanted), course)
        grades[submission.student] = (submission, matched, {})
        for stem, notebook in matched.notebooks.items():
            tasks.append((submission.student, stem, notebook))
    remaining = {s.student: sum(1 for t in tasks if t[0] == s.student) for s in submissions}
    staging = Path(tempfile.mkdtemp(prefix="coursekit-staged-"))
    staging.chmod(0o711)  # the fallback's uid must reach the staged copies, never list them
    finished: dict[str, Grade] = {}
    judges = judging.Judges(list(check_modules), limits.memory_bytes, limits.judge_seconds)
    sandbox_time = {s.student: sandbox.Budget(limits.submission_seconds, SANDBOX_BUDGET.format(
        seconds=limits.submission_seconds)) for s in submissions}

    def assemble(student):  # judged as soon as the student's runs are in, while other sandboxes run
        budget = sandbox.Budget(limits.submission_judge_seconds,
                                JUDGE_BUDGET.format(seconds=limits.submission_judge_seconds))
        finished[student] = _assemble_grade(*grades[student], wanted, allowed, solutions, check_modules, seed, judges,
                                            budget)
        on_done and on_done(student)

    try:
        staged = {stem: str(containment.stage(stem, list(check_modules), staging / stem)) for stem in wanted}
        unavailable = {stem: containment.unavailable(stem) for stem in wanted}

        def work(task):
            student, stem, notebook = task
            planned = plan(notebook, wanted[stem])
            run_cells = notebook.cells if every_cell else needed_cells(notebook, planned, given[stem])
            cells = [{"index": c.index, "source": c.source} for c in run_cells]
            if not cells:
                return sandbox.Run(missing={i.exercise: "the notebook has no code cells to run" for i in wanted[stem]})
            stem_tests = {i.exercise: tests[i.exercise] for i in wanted[stem]}
            planned = [{**entry, "module": check_module(entry["check"])} for entry in planned]
            return sandbox.run_notebook(cells, planned, stem_tests, limits, staged[stem], data_dirs,
                                        unavailable[stem], notebook_seed(seed, notebook), sandbox_time[student])

        _run_all(tasks, work, jobs, grades, remaining, submissions, assemble)
    finally:
        judges.close()
        shutil.rmtree(staging, ignore_errors=True)
    return [finished[s.student] for s in submissions]


def _run_all(tasks, work, jobs, grades, remaining, submissions, assemble) -> None:
    """Run the sandboxes `jobs` at a time; `assemble(student)` (judging) runs here as each student completes."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(work, task): task for task in tasks}
        for student in [s.student for s in submissions if remaining[s.student] == 0]:
            assemble(student)
        for future in concurrent.futures.as_completed(futures):
            student, stem, _ = futures[future]
            try:
                grades[student][2][stem] = future.result()
            except Exception as error:  # a grader bug must not sink the batch
                grades[student][2][stem] = sandbox.Run(notes=[f"internal grader error: {error!r}"])
            remaining[student] -= 1
            if remaining[student] == 0:
                assemble(student)


def _assemble_grade(submission: Submission, matched: matching.Matching, runs, wanted, allowed, solutions: Path,
                    check_modules, seed: int, judges: judging.Judges, budget: sandbox.Budget) -> Grade:
    grade = Grade(submission.student, [], list(submission.notes))
    for notebook in submission.notebooks:
        grade.notes.extend(notebook.notes)
    grade.notes.extend(matched.notes)
    for stem, items in wanted.items():
        notebook, run = matched.notebooks.get(stem), runs.get(stem)
        if notebook is None:
            grade.notes.append(f"missing: no submitted notebook is {stem}.ipynb, so its exercises score 0")
            grade.exercises.extend(ExerciseGrade(i.label, i.exercise, stem, i.points, 0.0, [
                Outcome(t.name, False, "notebook not submitted") for t in CHECKS[i.check].tests],
                f"missing: no notebook {stem} in the submission", attempted=False) for i in items)
            continue
        given = rubrics.given_code(solutions / f"{stem}.ipynb")
        untouched = explain.untouched_cells(notebook, given)
        grade.notes.extend(f"{notebook.filename}: {note}" for note in run.notes)
        hidden = [cell for cell, error in run.cell_errors.items() if cell in untouched and explain.is_consequence(error)]
        shown = [(cell, error) for cell, error in sorted(run.cell_errors.items()) if cell not in hidden]
        grade.notes.extend(f"{notebook.filename}, cell {cell}: {error}" for cell, error in shown[:CELL_NOTES])
        if len(shown) > CELL_NOTES:
            grade.notes.append(f"{notebook.filename}: {len(shown) - CELL_NOTES} more cells failed (not listed)")
        if hidden:
            grade.notes.append(f"{notebook.filename}: {len(hidden)} handed-out cell(s) (cells "
                               f"{', '.join(map(str, sorted(hidden)))}) also stopped, because work they use is "
                               "missing or failed (see the exercises)")
        present = notebook.exercise_ids()
        for item in items:
            if item.exercise not in present:
                grade.notes.append(f"{notebook.filename}: the cell of exercise {item.exercise!r} was not found "
                                   "(deleted or its metadata lost); graded whatever your notebook defines")
        grade.flags.extend(f"{notebook.filename}, {flag}" for flag in run.flags)
        scanned = scan.scan_cells([(c.index, c.source) for c in notebook.cells if c.source.strip() not in given],
                                  set(allowed[stem]), {name.split(".")[0] for name in check_modules})
        grade.flags.extend(f"{notebook.filename}, {flag}" for flag in scanned[:CELL_NOTES])
        if len(scanned) > CELL_NOTES:
            grade.flags.append(f"{notebook.filename}: {len(scanned) - CELL_NOTES} more flags from the scan (not listed)")
        run.missing = {exercise: explain.missing_reason(reason, notebook, run.cell_errors)
                       for exercise, reason in run.missing.items()}
        for item in items:
            judged = judge(item, run, notebook_seed(seed, notebook), judges, budget)
            if judged.earned == 0 and not explain.attempted(notebook, item.exercise, untouched):
                judged.reason, judged.attempted = "not attempted: the exercise's cell is as handed out", False
            grade.exercises.append(judged)
    return grade
