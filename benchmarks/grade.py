"""How much slower is grading than just running the notebooks? Target: at most 1.3x.

Grades N copies of a solved notebook with `python -m coursekit grade --jobs 2` and compares with executing the
same N notebooks with nbclient, two at a time. Full notebooks may be too slow for 100 copies on a laptop: by default
the fastest solved notebook is used, and the table says which.

    python benchmarks/grade.py [--copies 100] [--notebook 01_tokenization] [--jobs 2]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parent.parent


def execute(path: Path) -> float:
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    NotebookClient(notebook, timeout=900, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--notebook", help="a solution notebook's name (default: the fastest one)")
    arguments = parser.parse_args()
    solutions = sorted((ROOT / "solutions").glob("*.ipynb"))
    if arguments.notebook:
        chosen = next(p for p in solutions if p.stem.startswith(arguments.notebook))
        single = {chosen: None}
    else:
        single = {path: execute(path) for path in solutions}
        for path, seconds in single.items():
            print(f"  one run of {path.name}: {seconds:.1f} s")
        chosen = min(single, key=single.get)
    work = Path(tempfile.mkdtemp(prefix="coursekit-benchmark-"))
    copies = work / "submissions"
    copies.mkdir()
    for index in range(arguments.copies):
        shutil.copy(chosen, copies / f"student{index:03d}_{chosen.name}")
    paths = sorted(copies.glob("*.ipynb"))

    started = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(arguments.jobs) as pool:
        list(pool.map(execute, paths))
    baseline = time.perf_counter() - started

    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "coursekit", "grade", *map(str, paths), "--out", str(work / "out"),
                    "--jobs", str(arguments.jobs), "--rubric", chosen.stem, "--solutions", str(chosen.parent)],
                   check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    grading = time.perf_counter() - started
    rows = list(csv.DictReader(open(work / "out" / "grades.csv")))
    full = sum(1 for row in rows if row["total"] == rows[0]["total"])

    print(f"\n{arguments.copies} copies of {chosen.name} (the fastest solved notebook)" if not arguments.notebook
          else f"\n{arguments.copies} copies of {chosen.name}")
    print(f"{'':34}{'seconds':>9}{'per notebook':>14}")
    print(f"{'nbclient, ' + str(arguments.jobs) + ' at a time':34}{baseline:9.1f}{baseline / len(paths):14.2f}")
    print(f"{'coursekit grade --jobs ' + str(arguments.jobs):34}{grading:9.1f}{grading / len(paths):14.2f}")
    print(f"ratio grading / executing: {grading / baseline:.2f}x (target <= 1.3x); "
          f"{full}/{len(rows)} copies got the same total ({rows[0]['total']})")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
