"""The instructor's commands: `python -m coursekit grade …` and `python -m coursekit gradescope-zip …`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import coursekit
from coursekit.grading import feedback, gradescope, lms, matching, publish, rubric as rubrics, sandbox, submissions
from coursekit.grading import written

COURSE_ROOT = Path(coursekit.__file__).resolve().parent.parent
SECRET_FILE = "grading-secret.txt"
SOLUTIONS_HELP = ("the solution notebooks' folder (default: ./solutions if the current directory has one, "
                  "else the solutions of the coursekit checkout being run)")


def _solutions(arguments) -> Path:
    if arguments.solutions:
        return Path(arguments.solutions).resolve()
    local = Path("solutions")
    return (local if local.is_dir() else COURSE_ROOT / "solutions").resolve()


def _collect(paths: list[Path]) -> tuple[list[submissions.Submission], dict[str, str], set[str]]:
    """The class: LMS downloads split by student (with their ids), everything else as `submissions.collect`."""
    found, ids, kinds, plain = [], {}, set(), []
    for path in paths:
        kind = lms.detect(path)
        if kind is None:
            plain.append(path)
            notebooks = [p for p in path.iterdir() if p.suffix == ".ipynb"] if path.is_dir() else []
            if len(notebooks) > 1:
                print(f"note: {path} holds {len(notebooks)} notebooks whose names follow no LMS layout: graded as "
                      "ONE student's submission (for a class, use one folder or zip per student, or the LMS's "
                      "download as it is)", file=sys.stderr)
            continue
        kinds.add(kind)
        students = lms.split(path, kind)
        for student in students:
            found.append(student.submission)
            ids[student.submission.student] = student.student_id
        print(f"{path}: a {lms.NAMES[kind]} download, {len(students)} student(s)", file=sys.stderr)
    found += submissions.collect(plain) if plain else []
    return sorted(found, key=lambda s: s.student), ids, kinds


def _limits(arguments) -> sandbox.Limits:
    return sandbox.Limits(cell_seconds=arguments.cell_seconds, exercise_seconds=arguments.exercise_seconds,
                          notebook_seconds=arguments.notebook_seconds, memory_bytes=arguments.memory_mb * 2**20,
                          exercise_memory_bytes=arguments.exercise_memory_mb * 2**20,
                          judge_seconds=arguments.judge_seconds, submission_seconds=arguments.submission_seconds,
                          submission_judge_seconds=arguments.submission_judge_seconds)


def _rubric_name(arguments, paths: list[Path], solutions: Path) -> str:
    if arguments.rubric:
        return arguments.rubric
    # No rubric given: the solution notebooks the submissions' file names point to (e.g. 03_attention.ipynb).
    names = sorted({p.stem for p in solutions.glob("*.ipynb")
                    for s in paths for n in ([s] if s.is_file() else s.rglob("*.ipynb")) if p.stem in n.name})
    if not names:
        raise rubrics.RubricError("say which rubric to use: --rubric original, --rubric 03_attention, … "
                                  f"(named rubrics: {', '.join(rubrics.NAMED)})")
    return ",".join(names)


def grade_command(arguments) -> int:
    from coursekit.grading import grader

    solutions = _solutions(arguments)
    root = Path(arguments.gradescope_root)
    paths = [root / "submission"] if arguments.gradescope else [Path(p) for p in arguments.submissions]
    try:
        name = _rubric_name(arguments, paths, solutions)
        grader.register_check_modules(arguments.check_module)
        items = rubrics.resolve(rubrics.load(name, solutions), solutions)
    except rubrics.RubricError as error:
        print(f"✗ the rubric cannot be used:\n{error}", file=sys.stderr)
        if arguments.gradescope:
            gradescope.failure_results(str(error), root)
        return 2
    if arguments.show_rubric:
        for item in items:
            how = "written, graded by hand" if item.written else f"{item.check}({', '.join(item.arguments)})"
            print(f"{item.label:32} {item.points:3}  {item.notebook} / {how}")
        print(f"{'total':32} {sum(i.points for i in items):3}")
        return 0
    secret = arguments.secret or os.environ.get("COURSEKIT_GRADING_SECRET") or grader.new_secret()
    from coursekit.grading import containment

    print(f"containment: {containment.describe()}", file=sys.stderr)
    refused = containment.refusal(arguments.allow_root_student_code)
    if refused:
        print(refused, file=sys.stderr)
        if arguments.gradescope:
            gradescope.failure_results(refused, root)
        return 2
    if arguments.gradescope:
        found = submissions.read_submission(root / "submission")
        found.student = "submission"
        [grade] = grader.grade([found], [i for i in items if not i.written], solutions, _limits(arguments),
                               jobs=arguments.jobs, check_modules=arguments.check_module,
                               secret=secret)
        _hand_graded([found], [grade], items, solutions, arguments)
        print(f"wrote {gradescope.write_results(grade, root)}: {feedback.number(grade.earned)} / {grade.possible}")
        return 0
    if not arguments.out:
        print("✗ say where to write the grades: --out DIR", file=sys.stderr)
        return 2
    missing = [str(p) for p in paths if not os.path.lexists(p)]  # a dangling symlink is refused later, with a note
    if missing:
        print(f"✗ not found: {', '.join(missing)}", file=sys.stderr)
        return 2
    try:
        found, ids, kinds = _collect(paths)
    except lms.LayoutError as error:
        print(f"✗ {error}", file=sys.stderr)
        return 2
    from tqdm.auto import tqdm

    with tqdm(total=len(found), desc="grading", unit="student", file=sys.stderr) as bar:
        grades = grader.grade(found, [i for i in items if not i.written], solutions, _limits(arguments),
                              jobs=arguments.jobs, check_modules=arguments.check_module,
                              on_done=lambda student: bar.update(), secret=secret)
    for grade in grades:
        grade.student_id = ids.get(grade.student, "")
    try:
        _hand_graded(found, grades, items, solutions, arguments)
    except written.ScoresError as error:
        print(f"✗ the written scores cannot be merged (nothing was written):\n{error}", file=sys.stderr)
        return 2
    out = Path(arguments.out)
    with publish.staging(out) as fresh:
        feedback.write_all(grades, fresh, name)
        (fresh / SECRET_FILE).write_text(secret + "\n")
        (fresh / SECRET_FILE).chmod(0o600)
        rows = [(g.student, g.student_id, g.earned) for g in sorted(grades, key=lambda g: g.student) if g.student_id]
        exports = {kind: lms.write_export(kind, rows, arguments.assignment_name or name,
                                          sum(i.points for i in items), fresh) for kind in sorted(kinds)}
    print(feedback.summary(grades))
    print(f"wrote {out / 'grades.csv'}, {out / 'review.csv'} and {len(grades)} feedback page(s) in {out / 'feedback'}")
    for kind, target in exports.items():
        print(f"wrote {out / target.name}: import it into {lms.NAMES[kind]}" if target else
              f"{lms.NAMES[kind]}: no gradebook file is written; upload student_id and total from grades.csv")
    return 0


def _hand_graded(found, grades, items, solutions: Path, arguments) -> None:
    """Written questions: export the class's answers (--export-written), add the TA's points (--written-scores)."""
    hand = [item for item in items if item.written]
    if not hand:
        return
    stems = list(dict.fromkeys(item.notebook for item in items))
    course = matching.catalogue(solutions)
    matched = {s.student: matching.match(s.notebooks, stems, course).notebooks for s in found}
    if getattr(arguments, "export_written", None):
        target = written.export([(g, matched[g.student]) for g in grades], hand, Path(arguments.export_written))
        print(f"wrote the written answers to {arguments.export_written}: fill in {target} and grade again with "
              f"--written-scores {target}")
    scores = written.read_scores(Path(arguments.written_scores), hand) if arguments.written_scores else {}
    written.add_to_grades(grades, hand, scores)


def gradescope_zip_command(arguments) -> int:
    solutions = _solutions(arguments)
    notebooks = []
    for name in arguments.notebooks:
        path = Path(name) if Path(name).exists() else rubrics.find_solution(name, solutions)
        if path is None or not path.exists():
            print(f"✗ no solution notebook {name!r} in {solutions}", file=sys.stderr)
            return 2
        notebooks.append(path.resolve())
    if not notebooks and not arguments.rubric:
        print("✗ say what the autograder grades: solution notebooks (02_bigram_mlp.ipynb …) or --rubric NAME",
              file=sys.stderr)
        return 2
    name = arguments.rubric or ",".join(p.stem for p in notebooks)
    folder = notebooks[0].parent if notebooks else solutions
    try:
        items = rubrics.resolve(rubrics.load(name, folder), folder)
    except rubrics.RubricError as error:
        print(f"✗ the rubric cannot be used:\n{error}", file=sys.stderr)
        return 2
    needed = sorted({item.notebook for item in items})
    notebooks = sorted({*notebooks, *(folder / f"{stem}.ipynb" for stem in needed)})
    out = gradescope.build_zip(COURSE_ROOT, notebooks, name, Path(arguments.out))
    print(f"wrote {out}: rubric {name} ({sum(i.points for i in items)} points, {len(items)} exercises); "
          "upload it as a Gradescope autograder (Ubuntu base image)")
    return 0


def add_parsers(commands) -> None:
    """Register `grade` and `gradescope-zip` on the main parser's sub-commands."""
    grade = commands.add_parser("grade", help="grade submitted notebooks in a sandbox (instructors)")
    grade.add_argument("submissions", nargs="*", help="notebooks, folders or zips, one per student (or a folder "
                       "of student folders/zips)")
    grade.add_argument("--out", help="where to write grades.csv, review.csv and feedback/")
    grade.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel (default 1)")
    grade.add_argument("--rubric", help=f"a named rubric ({', '.join(rubrics.NAMED)}), solution notebooks "
                       "(03 or 02,03) or a rubric .json file (default: the notebooks the file names point to)")
    grade.add_argument("--solutions", help=SOLUTIONS_HELP)
    grade.add_argument("--assignment-name", help="the assignment's column in an LMS gradebook file (default: the "
                       "rubric's name)")
    grade.add_argument("--show-rubric", action="store_true", help="check the rubric, print it and stop")
    grade.add_argument("--cell-seconds", type=float, default=120, help="time limit per cell (default 120)")
    grade.add_argument("--exercise-seconds", type=float, default=60, help="time limit per exercise's tests (60)")
    grade.add_argument("--notebook-seconds", type=float, default=900, help="time limit per notebook (900)")
    grade.add_argument("--memory-mb", type=int, default=6144, help="address space per notebook (6144)")
    grade.add_argument("--exercise-memory-mb", type=int, default=2048, help="extra memory per exercise (2048)")
    grade.add_argument("--judge-seconds", type=float, default=120, help="time limit for judging one test's "
                       "result, in the grader's judge process (120)")
    grade.add_argument("--submission-seconds", type=float, default=3600, help="sandbox time for all of one "
                       "submission's notebooks together (3600)")
    grade.add_argument("--submission-judge-seconds", type=float, default=600, help="judging time for all of one "
                       "submission's tests together (600)")
    grade.add_argument("--secret", help="the secret the probes' inputs are drawn from (default: "
                       "$COURSEKIT_GRADING_SECRET, else a fresh one); it is saved as OUT/grading-secret.txt, and "
                       "the same secret regrades to the same grades.csv")
    grade.add_argument("--check-module", action="append", default=[], help="import extra checks from this module")
    grade.add_argument("--export-written", metavar="DIR", help="write every student's written answers to DIR: one "
                       "HTML page per question and written_scores.csv to fill in")
    grade.add_argument("--written-scores", metavar="FILE", help="the filled-in written_scores.csv: merge the TA's "
                       "points into grades.csv, the feedback and Gradescope's results")
    grade.add_argument("--allow-root-student-code", action="store_true", help="grade although the only containment "
                       "here is rlimits-only and the grader is root (student code then runs as root; see GRADING.md)")
    grade.add_argument("--gradescope", action="store_true", help="run as a Gradescope autograder")
    grade.add_argument("--gradescope-root", default="/autograder", help="Gradescope's root (default /autograder)")
    grade.set_defaults(run=grade_command)

    zip_parser = commands.add_parser("gradescope-zip", help="build a Gradescope autograder zip")
    zip_parser.add_argument("notebooks", nargs="*", help="solution notebooks to grade (e.g. 02_bigram_mlp.ipynb or "
                            "02); with --rubric, the rubric's notebooks are added by themselves")
    zip_parser.add_argument("--rubric", help="a named rubric or rubric .json (default: all exercises of the notebooks)")
    zip_parser.add_argument("--solutions", help=SOLUTIONS_HELP)
    zip_parser.add_argument("--out", default="autograder.zip", help="the zip to write (default autograder.zip)")
    zip_parser.set_defaults(run=gradescope_zip_command)
