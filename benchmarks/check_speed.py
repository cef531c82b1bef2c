"""How long does each check take? Issue 12: "a check still takes at most a couple of seconds" (<= ~2 s, quiet machine).

    python benchmarks/check_speed.py [--notebooks 05,06] [--checks check_sample] [--seed 7]

Each solution notebook runs top to bottom in a subprocess, as benchmarks/check_strength.py runs it (the same cell
reader). After every cell that calls a check, that check is timed on the reference answer the cell passed it:

- public: `check(answer)`, as the student's notebook calls it (every probe and judge under the public seed 0);
- secret: as the grader does, `check.probe_all(answer, seed)` then `check.judge(results, seed)` under a secret run
  seed (--seed), with the slowest of its tests named.

The cell itself has run just before, so imports and caches are warm: the times are the check's own work.

Baseline, measured in the same run and the same process: **one AdamW training step of the course's GPT at notebook
04's configuration** (vocab 65, block_size 64, 3 layers, 4 heads, n_embd 64, a batch of 32 sequences; forward,
backward, step), the median of 5 steps, taken before and after each notebook (the mean of the two, so a load that
changes during the run hits both sides). The ratio columns are check seconds / step seconds: how many training steps of the
course's own model a check costs, a number that moves much less with the machine's load than seconds do. Both the
checks and the baseline run on one torch thread (as benchmarks/check_strength.py does), which is steadier on a shared
machine. Checks over 2 s are marked `<-- slow`; on a loaded machine compare the ratios (the load is printed under
each notebook).
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from check_strength import _cells  # noqa: E402  (the benchmarks' notebook reader, shared)
from grade import load, measured  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SLOW_SECONDS = 2.0


def training_step_seconds(steps: int = 5) -> float:
    """The baseline: the median time of one AdamW step of coursekit's GPT at notebook 04's configuration."""
    import torch

    from coursekit.gpt import GPT, GPTConfig

    generator = torch.Generator().manual_seed(0)
    model = GPT(GPTConfig(vocab_size=65, block_size=64, n_layer=3, n_head=4, n_embd=64, dropout=0.0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 65, (32, 65), generator=generator)

    def step():
        _, loss = model(ids[:, :-1], ids[:, 1:])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.enable_grad():  # notebook 06 turns gradients off for all its cells
        step()  # warm-up
        return statistics.median(measured(step) for _ in range(steps))


def check_calls(source: str, namespace: dict) -> list[tuple[str, object, tuple]]:
    """(name, Check, arguments) for every call `check_x(a, b)` in a cell whose name is a Check in namespace."""
    from coursekit.checks.core import Check

    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                isinstance(namespace.get(node.func.id), Check):
            arguments = tuple(eval(compile(ast.Expression(argument), "<check call>", "eval"), namespace)
                              for argument in node.args)
            calls.append((node.func.id, namespace[node.func.id], arguments))
    return calls


def time_check(check, arguments: tuple, seed: int) -> dict:
    """Seconds of the public call (as in a notebook) and of the grader's probes + judges under `seed`."""
    from coursekit.checks.core import Check

    public_passed = []

    def public_call():
        try:
            check(*arguments)
            public_passed.append(True)
        except AssertionError:  # shown in the table, not raised: the other checks still get timed
            public_passed.append(False)
    with contextlib.redirect_stdout(io.StringIO()):
        public = measured(public_call)
    seconds, outcomes = {}, []
    for test in check.tests:  # one test of probe_all, then its judge alone, as the grader's judge child does
        started = time.perf_counter()
        single = Check(check.exercise, check.expects, [test], check.accepts)
        outcomes.extend(single.judge([(test.name, _probe(check, test, arguments, seed))], seed))
        seconds[test.name] = time.perf_counter() - started
    per_test = {o.test: (seconds[o.test], o.passed) for o in check.counted(outcomes)}
    slowest = max(per_test, key=lambda name: per_test[name][0])
    return {"public": public, "secret": sum(seconds for seconds, _ in per_test.values()), "slowest": slowest,
            "slowest_seconds": per_test[slowest][0],
            "passed": public_passed == [True] and all(passed for _, passed in per_test.values())}


def _probe(check, test, arguments: tuple, seed: int):
    from coursekit.checks.core import ProbeError

    try:
        return check.probe(test, arguments, seed)
    except Exception as error:  # as probe_all records it
        return ProbeError(str(error))


def worker(notebook: Path, wanted: set[str], seed: int) -> None:
    """Run one notebook; print a JSON line per timed check, and one with the baseline."""
    import matplotlib

    import torch

    matplotlib.use("Agg")
    torch.set_num_threads(1)
    os.chdir(notebook.parent)
    before = training_step_seconds()
    namespace: dict = {"__name__": "__main__"}
    for index, cell in enumerate(_cells(notebook)):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(cell["source"], f"<cell {index}>", "exec"), namespace)
        if "check_" not in cell["source"]:
            continue
        for name, check, arguments in check_calls(cell["source"], namespace):
            if not wanted or name in wanted:
                print(json.dumps({"check": name, **time_check(check, arguments, seed)}), flush=True)
    print(json.dumps({"baseline": (before + training_step_seconds()) / 2}), flush=True)


def run_notebook(notebook: Path, checks: list[str], seed: int) -> tuple[list[dict], float]:
    command = [sys.executable, __file__, "--worker", str(notebook), "--seed", str(seed), "--checks", ",".join(checks)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg")
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{\"")]
    if process.returncode:
        raise SystemExit(f"{notebook.name} failed: " + " | ".join(process.stderr.strip().splitlines()[-3:]))
    baseline = next(line["baseline"] for line in lines if "baseline" in line)
    return [line for line in lines if "check" in line], baseline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", default="", help="comma-separated notebook numbers, e.g. 05,06 (default all)")
    parser.add_argument("--checks", default="", help="comma-separated check names, e.g. check_sample (default all)")
    parser.add_argument("--seed", type=int, default=7, help="the secret run seed of the grader-side timing")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    checks = [name for name in args.checks.split(",") if name]
    if args.worker:
        worker(args.worker.resolve(), set(checks), args.seed)
        return 0
    numbers = [n for n in args.notebooks.split(",") if n]
    notebooks = [p for p in sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb")) if not numbers or p.name[:2] in numbers]
    print(f"{'notebook':<20} {'check':<32} {'public s':>8} {'secret s':>8} {'pub/step':>8} {'sec/step':>8}  "
          f"slowest test (secret s)")
    slow = []
    for notebook in notebooks:
        timed, baseline = run_notebook(notebook, checks, args.seed)
        for row in timed:
            flag = "  <-- slow" if max(row["public"], row["secret"]) > SLOW_SECONDS else ""
            failed = "" if row["passed"] else "  (the reference FAILED its check)"
            print(f"{notebook.stem[:20]:<20} {row['check']:<32} {row['public']:>8.2f} {row['secret']:>8.2f} "
                  f"{row['public'] / baseline:>8.2f} {row['secret'] / baseline:>8.2f}  "
                  f"{row['slowest'][:40]} ({row['slowest_seconds']:.2f}){flag}{failed}")
            slow += [row["check"]] if flag else []
        print(f"{notebook.stem[:20]:<20} {'(baseline: one GPT training step)':<32} {baseline:>8.3f} s, {load()}")
    print(f"over {SLOW_SECONDS:g} s: {', '.join(slow) if slow else 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
