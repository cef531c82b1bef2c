"""How much slower is grading than just running the notebooks? Target (issue 13): at most 1.3x.

Grades N copies of a solved notebook with `python -m coursekit grade --jobs J` and compares with executing the
same N notebooks with nbclient, J at a time, in the same run: nbclient before and after the grading run (their
mean is the baseline, so a load that changes during the run hits both sides). On a shared machine absolute times
are noisy: read the ratios, and the load printed with them.

    python benchmarks/grade.py                                  # 8 copies of 01_tokenization: ~5 min on 2 cores
    python benchmarks/grade.py --copies 100 --notebook 04_gpt_training --jobs 2    # the issue's measurement
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()


def measured(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def load() -> str:
    return "load average " + ", ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8, help="copies of the notebook (default 8; the issue: 100)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--notebook", default="01_tokenization", help="a solution notebook (default: 01, the "
                        "fastest)")
    arguments = parser.parse_args()
    chosen = next(p for p in sorted((ROOT / "solutions").glob("*.ipynb")) if p.stem.startswith(arguments.notebook))
    work = Path(tempfile.mkdtemp(prefix="coursekit-benchmark-"))
    copies = work / "submissions"
    copies.mkdir()
    for index in range(arguments.copies):
        shutil.copy(chosen, copies / f"student{index:03d}_{chosen.name}")
    paths = sorted(copies.glob("*.ipynb"))
    grade = [sys.executable, "-m", "coursekit", "grade", *map(str, paths), "--out", str(work / "out"), "--jobs",
             str(arguments.jobs), "--rubric", chosen.stem, "--solutions", str(chosen.parent)]

    def nbclient():
        with concurrent.futures.ThreadPoolExecutor(arguments.jobs) as pool:
            list(pool.map(execute, paths))

    loads = [load()]
    rows = [("nbclient (before)", measured(nbclient))]
    loads.append(load())
    rows.append(("coursekit grade", measured(lambda: subprocess.run(
        grade, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))))
    loads.append(load())
    rows.append(("nbclient (after)", measured(nbclient)))
    loads.append(load())
    baseline_wall = (rows[0][1] + rows[2][1]) / 2
    grades = list(csv.DictReader(open(work / "out" / "grades.csv")))
    same = sum(1 for row in grades if row["total"] == grades[0]["total"])

    print(f"\n{arguments.copies} copies of {chosen.name}, {arguments.jobs} at a time; {os.cpu_count()} cores")
    print("| run | wall (s) | per notebook (s) | ratio to nbclient |")
    print("|---|---|---|---|")
    for label, wall in rows:
        print(f"| {label} | {wall:.1f} | {wall / len(paths):.2f} | {wall / baseline_wall:.2f} |")
    print(f"\ngrading / nbclient (mean of before and after): {rows[1][1] / baseline_wall:.2f}x (target <= 1.3x); "
          f"{same}/{len(grades)} copies got the same total ({grades[0]['total']})")
    print("load at the start, after each run:", " | ".join(loads))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
