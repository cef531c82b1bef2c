"""Does every solution notebook fit Binder's and the course's budget? Wall time and peak memory of each.

    python benchmarks/notebooks.py [NN_name.ipynb ...] [--fresh-cache] [--json results.json] [--outputs DIR]

Runs each notebook of solutions/ (or the ones named) top to bottom in a fresh `python3` kernel, as a student would,
and records the wall time (kernel start included) and the peak resident memory: the larger of the kernel's own peak,
read inside the kernel by an extra last cell (`resource.getrusage(...).ru_maxrss`), and the peak of the kernel and
every process it started added up, sampled from /proc five times a second (Linux).
Budgets: each notebook at most 3 minutes and 1.0 GB (mybinder.org gives 2 GB in all, and the JupyterLab server and
the browser's kernel traffic need the rest), the whole course at most 10 minutes on 2 CPU cores. Prints a table;
exits 1 when anything is over budget.

--fresh-cache measures a student's first run: the first cache directory (where downloads and checkpoints go) is
replaced by an empty temporary one, so nothing trained or downloaded by an earlier run is reused.

`cpu s` is the CPU time the kernel (and its children) used: on a busy shared machine it is closer than the wall time
to what a quiet machine's wall time would be for these mostly single-threaded notebooks (it leaves out waiting for a
core, and counts every thread's time).

New notebooks are found by themselves: anything named NN_name.ipynb in solutions/. The notebooks are not changed
(they run from an in-memory copy); --outputs DIR writes each executed copy there, to read the numbers the markdown
quotes against the ones the cells printed. On a shared machine other people's jobs slow the wall times: rerun before
trusting a close call.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK_LIMIT_S = 180
NOTEBOOK_LIMIT_MB = 1024
COURSE_LIMIT_S = 600
CELL_TIMEOUT_S = 600  # a cell stuck longer than this is reported, not waited on forever
MARKER = "COURSEKIT_PEAK_RSS"
MEASURE = f"""\
import resource, sys
_scale = 1 if sys.platform != "darwin" else 1024  # ru_maxrss is in KiB on Linux, bytes on macOS
_self, _children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print("{MARKER}", _self.ru_maxrss // _scale, _children.ru_maxrss // _scale,
      _self.ru_utime + _self.ru_stime + _children.ru_utime + _children.ru_stime)"""


def tree_rss_mb(root: int) -> float:
    """Resident memory of a process and all its descendants, in MB, from /proc (0 where /proc is missing)."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # the process ended meanwhile
                continue
            parents[int(entry)], rss[int(entry)] = int(fields[1]), int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = set(), {root}
    while frontier:
        tree |= frontier
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - tree
    return sum(rss.get(pid, 0) for pid in tree) / 2**20


def sample_peak(client: NotebookClient, done: threading.Event, peak: list[float]) -> None:
    """Until `done`, keep in peak[0] the largest memory of the client's kernel process tree seen so far."""
    while not done.wait(0.2):
        process = getattr(getattr(getattr(client, "km", None), "provisioner", None), "process", None)
        if process is not None:
            peak[0] = max(peak[0], tree_rss_mb(process.pid))


def run(path: Path, outputs: Path | None = None) -> dict:
    """Execute one notebook (its executed copy into outputs/, if given); returns its name, wall seconds, CPU
    seconds, peak RSS in MB (kernel, and its children) and error."""
    notebook = nbformat.read(path, as_version=4)
    notebook.cells.append(nbformat.v4.new_code_cell(MEASURE))
    client = NotebookClient(notebook, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    error, peak, done = None, [0.0], threading.Event()
    sampler = threading.Thread(target=sample_peak, args=(client, done, peak), daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as failure:
        error = f"{failure.ename}: {failure.evalue}"[:120]
    except (CellTimeoutError, DeadKernelError) as failure:
        error = f"{type(failure).__name__}: {str(failure).splitlines()[0][:100]}"
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    if outputs is not None:
        outputs.mkdir(parents=True, exist_ok=True)
        nbformat.write(notebook, outputs / path.name)
    kernel_mb = children_mb = cpu = None
    for output in notebook.cells[-1].get("outputs", []):
        if output.get("output_type") == "stream" and MARKER in output.get("text", ""):
            _, kernel_kb, children_kb, cpu_s = output["text"].split()
            kernel_mb, children_mb, cpu = int(kernel_kb) / 1024, int(children_kb) / 1024, float(cpu_s)
    return {"notebook": path.name, "wall_s": round(wall, 1), "kernel_cpu_s": cpu and round(cpu, 1),
            "kernel_peak_rss_mb": kernel_mb and round(kernel_mb),
            "children_peak_rss_mb": children_mb and round(children_mb), "tree_peak_rss_mb": round(peak[0]),
            "peak_rss_mb": kernel_mb and round(max(kernel_mb, peak[0])), "error": error}


def within_budget(result: dict) -> bool:
    return (result["error"] is None and result["peak_rss_mb"] is not None
            and result["wall_s"] <= NOTEBOOK_LIMIT_S and result["peak_rss_mb"] <= NOTEBOOK_LIMIT_MB)


def table(results: list[dict]) -> str:
    rows = [f"{'notebook':32} {'wall s':>7} {'cpu s':>7} {'peak RSS MB':>12}  within budget?"]
    for result in results:
        peak = "?" if result["peak_rss_mb"] is None else str(result["peak_rss_mb"])
        cpu = "?" if result["kernel_cpu_s"] is None else f"{result['kernel_cpu_s']:.1f}"
        verdict = "yes" if within_budget(result) else "NO" + (f" — {result['error']}" if result["error"] else "")
        rows.append(f"{result['notebook']:32} {result['wall_s']:>7.1f} {cpu:>7} {peak:>12}  {verdict}")
    total = sum(result["wall_s"] for result in results)
    course_ok = total <= COURSE_LIMIT_S
    rows.append(f"{'whole course':32} {total:>7.1f} {'':>7} {'':>12}  {'yes' if course_ok else 'NO'}"
                f" (≤ {COURSE_LIMIT_S} s; each notebook ≤ {NOTEBOOK_LIMIT_S} s and ≤ {NOTEBOOK_LIMIT_MB} MB)")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", help="solution notebooks to run (default: all of solutions/)")
    parser.add_argument("--json", type=Path, help="also write the results to this JSON file")
    parser.add_argument("--outputs", type=Path, help="write each executed notebook into this folder")
    parser.add_argument("--fresh-cache", action="store_true",
                        help="an empty first cache directory: time a student's first run (downloads, training)")
    arguments = parser.parse_args(argv)
    if arguments.fresh_cache:
        from coursekit import data

        later = [str(directory) for directory in data.cache_dirs()[1:]]
        fresh = tempfile.mkdtemp(prefix="coursekit-benchmark-cache-")
        os.environ[data.DATA_DIR_VARIABLE] = os.pathsep.join([fresh, *later])  # the kernels inherit it
        print(f"fresh cache: {os.environ[data.DATA_DIR_VARIABLE]}", file=sys.stderr)
    paths = ([ROOT / "solutions" / Path(name).name for name in arguments.notebooks] if arguments.notebooks
             else sorted(path for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")))
    results = []
    for path in paths:
        print(f"running {path.name} …", file=sys.stderr, flush=True)
        results.append(run(path, arguments.outputs))
    print(table(results))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=1) + "\n")
    total = sum(result["wall_s"] for result in results)
    return 0 if all(map(within_budget, results)) and total <= COURSE_LIMIT_S else 1


if __name__ == "__main__":
    sys.exit(main())
