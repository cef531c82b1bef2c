"""How strong is each check? Mutate every exercise's reference answer and count the mutants its check kills.

    python benchmarks/check_strength.py [--root DIR] [--notebooks 01,02] [--exercises encode,decode]
                                        [--list-survivors] [--timeout 20]

For each exercise of each solution notebook (`DIR/solutions/NN_*.ipynb`, with `DIR/coursekit` on the path), the
code between `### BEGIN SOLUTION` and `### END SOLUTION` is mutated by a small AST mutator (below): operators,
comparison flips, constants +-1 / 0 / True<->False, dims and axes (dim=-1 <-> -2, 0 <-> 1), slice bounds off by
one, dropped statements, swapped adjacent statements, swapped call arguments and removed keyword arguments.

Each notebook runs once, top to bottom, in a subprocess. Just before an exercise cell, every mutant runs in a
forked copy of that process: the mutated cell, the cells up to and including the one that calls the check, under
a per-mutant time limit. A mutant is *killed* when that raises (the check's AssertionError or any other error),
times out or crashes; it *survives* when the check passes. Mutants identical to the reference are dropped.

Survivors judged truly equivalent (the same behaviour, e.g. `range(0, n)` for `range(n)`) are listed with a
reason in check_strength_equivalent.json next to this script, keyed by notebook, exercise and the changed
lines; the table leaves them out and says how many there were. Target: >= 97 % of the other mutants killed
per notebook. This is a benchmark (minutes per notebook), not part of the test run.
"""

from __future__ import annotations

import argparse
import ast
import copy
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
EQUIVALENT_FILE = Path(__file__).with_name("check_strength_equivalent.json")
DIM_KEYWORDS = {"dim", "axis", "dim0", "dim1"}
DIM_SWAPS = {-1: -2, -2: -1, 0: 1, 1: 0}
OPERATOR_SWAPS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult, ast.FloorDiv: ast.Div,
                  ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult, ast.MatMult: ast.Mult, ast.BitAnd: ast.BitOr,
                  ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift}
COMPARISON_FLIPS = {ast.Lt: [ast.LtE, ast.Gt], ast.LtE: [ast.Lt, ast.GtE], ast.Gt: [ast.GtE, ast.Lt],
                    ast.GtE: [ast.Gt, ast.LtE], ast.Eq: [ast.NotEq], ast.NotEq: [ast.Eq], ast.In: [ast.NotIn],
                    ast.NotIn: [ast.In], ast.Is: [ast.IsNot], ast.IsNot: [ast.Is]}


# ---------------------------------------------------------------- the mutator


def _in_region(node: ast.AST, lines: set[int]) -> bool:
    return getattr(node, "lineno", None) in lines and getattr(node, "end_lineno", node.lineno) in lines


def _number_variants(value) -> list:
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return sorted({value + 1, value - 1, 0} - {value})
    if isinstance(value, float):
        return sorted({value + 1.0, value - 1.0, 0.0, value * 2} - {value})
    return []


def _edits(node: ast.AST, parents: dict) -> list[tuple[str, object]]:
    """(kind, change) for one node; `change` is applied to a deep copy of the node's tree (see _apply)."""
    edits = []
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in OPERATOR_SWAPS:
        edits.append(("operator", ("op", OPERATOR_SWAPS[type(node.op)]())))
    if isinstance(node, ast.BoolOp):
        edits.append(("operator", ("op", ast.Or() if isinstance(node.op, ast.And) else ast.And())))
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        edits.append(("operator", ("replace", node.operand)))
    if isinstance(node, ast.Compare):
        for position, op in enumerate(node.ops):
            for flipped in COMPARISON_FLIPS.get(type(op), []):
                edits.append(("comparison", ("compare", position, flipped())))
    parent = parents.get(node)
    if isinstance(node, ast.Constant) and not isinstance(parent, ast.JoinedStr) and not _is_docstring(node, parents):
        value = node.value
        if isinstance(parent, ast.keyword) and parent.arg in DIM_KEYWORDS and value in DIM_SWAPS:
            edits.append(("dim", ("value", DIM_SWAPS[value])))
        elif isinstance(value, (int, float)):
            edits += [("constant", ("value", new)) for new in _number_variants(value)]
        elif isinstance(value, str):
            edits.append(("constant", ("value", "" if value else " ")))
        elif value is None and isinstance(parent, ast.keyword):
            edits.append(("constant", ("value", 0)))
    if (isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)
            and isinstance(parent, ast.keyword) and parent.arg in DIM_KEYWORDS and -node.operand.value in DIM_SWAPS):
        edits.append(("dim", ("replace", ast.Constant(DIM_SWAPS[-node.operand.value]))))
    if isinstance(node, ast.Slice):
        for bound, step in (("lower", 1), ("upper", -1)):
            value = getattr(node, bound)
            if _is_number(value):
                continue  # the constant edits already move it by one
            for delta in (step, -step) if value is not None else (step,):
                edits.append(("slice", ("bound", bound, delta)))
    if isinstance(node, ast.Call):
        for i in range(len(node.args) - 1):
            if not any(isinstance(arg, ast.Starred) for arg in node.args[i:i + 2]):
                edits.append(("arguments", ("swap_args", i)))
        for i in range(len(node.keywords)):
            if node.keywords[i].arg is not None:
                edits.append(("keyword", ("drop_keyword", i)))
    for field in ("body", "orelse"):
        body = getattr(node, field, None)
        if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
            for i in range(len(body)):
                if not _is_docstring(body[i], parents):
                    edits.append(("drop statement", ("drop", field, i)))
            for i in range(len(body) - 1):
                if not _is_docstring(body[i], parents):
                    edits.append(("swap statements", ("swap", field, i)))
    return edits


def _is_number(node) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    return isinstance(node, ast.Constant) and isinstance(node.value, (int, float))


def _is_docstring(node: ast.AST, parents: dict) -> bool:
    statement = parents.get(node) if isinstance(node, ast.Constant) else node
    return (isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str))


def _apply(node: ast.AST, change: tuple) -> ast.AST | None:
    """Apply one change to `node` (a copy) and return the node that should stand in its place."""
    kind = change[0]
    if kind == "op":
        node.op = change[1]
    elif kind == "replace":
        return change[1]
    elif kind == "compare":
        node.ops[change[1]] = change[2]
    elif kind == "value":
        node.value = change[1]
    elif kind == "bound":
        _, bound, delta = change
        value = getattr(node, bound)
        if value is None:
            value = ast.Constant(0) if bound == "lower" else None
            if value is None:  # x[a:] -> x[a:-1]
                setattr(node, bound, ast.Constant(-1))
                return node
        op = ast.Add() if delta > 0 else ast.Sub()
        setattr(node, bound, ast.BinOp(value, op, ast.Constant(abs(delta))))
    elif kind == "swap_args":
        i = change[1]
        node.args[i], node.args[i + 1] = node.args[i + 1], node.args[i]
    elif kind == "drop_keyword":
        del node.keywords[change[1]]
    elif kind == "drop":
        _, field, i = change
        body = getattr(node, field)
        del body[i]
        if not body and field == "body":
            body.append(ast.Pass())
    elif kind == "swap":
        _, field, i = change
        body = getattr(node, field)
        body[i], body[i + 1] = body[i + 1], body[i]
    return node


def solution_lines(source: str) -> set[int]:
    """The 1-based numbers of the lines between solution markers of a cell (all lines when it has none).

    >>> sorted(solution_lines("x = 1\\n### BEGIN SOLUTION\\ny = 2\\n### END SOLUTION\\n### BEGIN SOLUTION\\nz\\n### END SOLUTION"))
    [3, 6]
    """
    lines, inside, found = source.splitlines(), False, set()
    for number, line in enumerate(lines, start=1):
        if line.strip() in (BEGIN, END):
            inside = line.strip() == BEGIN
        elif inside:
            found.add(number)
    return found if any(line.strip() == BEGIN for line in lines) else set(range(1, len(lines) + 1))


def mutants(source: str, lines: set[int] | None = None) -> list[dict]:
    """Every mutant of the code on `lines` of `source`: dicts with kind, source (unparsed) and diff.

    >>> sorted({m["kind"] for m in mutants("def f(x):\\n    return x + 1")})
    ['constant', 'drop statement', 'operator']
    """
    tree = ast.parse(source)
    lines = lines if lines is not None else set(range(1, len(source.splitlines()) + 1))
    original = ast.unparse(tree)
    seen, found = {original}, []
    nodes = list(ast.walk(tree))
    parents = {child: parent for parent in nodes for child in ast.iter_child_nodes(parent)}
    for index, node in enumerate(nodes):
        if not _in_region(node, lines) and not (isinstance(node, (ast.FunctionDef, ast.ClassDef, ast.Module))):
            continue
        for kind, change in _edits(node, parents):
            if kind in ("drop statement", "swap statements"):
                body = getattr(node, change[1])
                touched = body[change[2]:change[2] + (2 if kind == "swap statements" else 1)]
                if not all(_in_region(statement, lines) for statement in touched):
                    continue
            elif not _in_region(node, lines):
                continue
            mutant_tree = copy.deepcopy(tree)
            target = list(ast.walk(mutant_tree))[index]
            replacement = _apply(target, change)
            if replacement is not target:
                _replace(mutant_tree, target, replacement)
            try:
                text = ast.unparse(ast.fix_missing_locations(mutant_tree))
                compile(text, "<mutant>", "exec")
            except (SyntaxError, ValueError, TypeError):
                continue  # not counted: it does not compile
            if text in seen:
                continue
            seen.add(text)
            found.append({"kind": kind, "source": text, "diff": line_diff(original, text)})
    return found


def _replace(tree: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(tree):
        for field, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, field, new)
            elif isinstance(value, list) and any(item is old for item in value):
                value[[id(item) for item in value].index(id(old))] = new


def line_diff(before: str, after: str) -> str:
    """The lines that differ, between the common first and last lines: '- old' lines, then '+ new' lines.

    >>> line_diff("a = 1\\nb = 2\\nc = 3", "a = 1\\nc = 3\\nb = 2")
    '- b = 2\\n- c = 3\\n+ c = 3\\n+ b = 2'
    """
    old, new = before.splitlines(), after.splitlines()
    start = 0
    while start < min(len(old), len(new)) and old[start] == new[start]:
        start += 1
    end = 0
    while end < min(len(old), len(new)) - start and old[-1 - end] == new[-1 - end]:
        end += 1
    return "\n".join([f"- {line}" for line in old[start:len(old) - end]] +
                     [f"+ {line}" for line in new[start:len(new) - end]])


# ---------------------------------------------------------------- running a notebook's mutants (worker)


def _cells(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text())["cells"]
    return [{"source": "".join(cell["source"]), "exercise": cell.get("metadata", {}).get("coursekit", {}).get(
        "exercise")} for cell in cells if cell["cell_type"] == "code"]


def _check_cell_index(cells: list[dict], start: int, exercise: str) -> int:
    for index in range(start + 1, len(cells)):
        if "check_" in cells[index]["source"]:
            return index
    raise ValueError(f"no cell calls the check of {exercise!r} after its exercise cell")


def _run_forked(namespace: dict, sources: list[str], timeout: float) -> tuple[str, str]:
    """Exec sources in a forked copy of namespace: ('passed'|'failed'|'timeout'|'crashed', message)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        signal.alarm(int(max(1, timeout)))  # the default action ends the process, even inside C code
        sys.stdout = sys.stderr = open(os.devnull, "w")
        try:
            scope = dict(namespace)
            for source in sources:
                exec(compile(source, "<cell>", "exec"), scope)
            verdict = "passed\n"
        except BaseException as error:  # anything raised kills the mutant
            verdict = f"failed\n{type(error).__name__}: {str(error)[:300]}"
        os.write(write_end, verdict.encode())
        os._exit(0)
    os.close(write_end)
    chunks = []
    while True:
        ready, _, _ = select.select([read_end], [], [], timeout + 5)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    text = b"".join(chunks).decode(errors="replace")
    if not text:
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) in (signal.SIGALRM, signal.SIGKILL):
            return "timeout", ""
        return "crashed", f"status {status}"
    verdict, _, message = text.partition("\n")
    return verdict, message


def worker(notebook: Path, exercises: set[str] | None, timeout: float) -> list[dict]:
    """Run one notebook and every mutant of its (selected) exercises; one result dict per exercise."""
    import matplotlib

    matplotlib.use("Agg")
    import torch

    torch.set_num_threads(1)  # forked children and a shared machine
    os.chdir(notebook.parent)
    cells = _cells(notebook)
    wanted = [i for i, cell in enumerate(cells) if cell["exercise"] and (not exercises or cell["exercise"] in exercises)]
    namespace: dict = {"__name__": "__main__"}
    results = []
    last = max((_check_cell_index(cells, i, cells[i]["exercise"]) for i in wanted), default=-1)
    for index, cell in enumerate(cells[:last + 1]):
        if index in wanted:
            results.append(_mutate_exercise(cells, index, namespace, timeout))
            print(json.dumps(results[-1]), flush=True)
        exec(compile(cell["source"], f"<cell {index}>", "exec"), namespace)
    return results


def _mutate_exercise(cells: list[dict], index: int, namespace: dict, timeout: float) -> dict:
    cell = cells[index]
    check_index = _check_cell_index(cells, index, cell["exercise"])
    tail = [c["source"] for c in cells[index + 1:check_index + 1]]
    started = time.time()
    reference, message = _run_forked(namespace, [cell["source"], *tail], timeout)
    result = {"exercise": cell["exercise"], "check_cell": cells[check_index]["source"].strip().splitlines()[-1],
              "reference": reference, "reference_message": message, "mutants": []}
    if reference != "passed":
        return result
    for mutant in mutants(cell["source"], solution_lines(cell["source"])):
        verdict, message = _run_forked(namespace, [mutant["source"], *tail], timeout)
        result["mutants"].append({"kind": mutant["kind"], "diff": mutant["diff"], "verdict": verdict,
                                  "message": message.splitlines()[0][:160] if message else ""})
    result["seconds"] = round(time.time() - started, 1)
    return result


# ---------------------------------------------------------------- the table (parent)


def load_equivalent() -> list[dict]:
    return json.loads(EQUIVALENT_FILE.read_text()) if EQUIVALENT_FILE.exists() else []


def _is_equivalent(equivalent: list[dict], notebook: str, exercise: str, diff: str) -> bool:
    return any(e["notebook"] == notebook and e["exercise"] == exercise and e["diff"] == diff for e in equivalent)


def run_notebook(root: Path, notebook: Path, exercises: list[str], timeout: float) -> list[dict]:
    command = [sys.executable, __file__, "--worker", str(notebook), "--root", str(root), "--timeout", str(timeout)]
    if exercises:
        command += ["--exercises", ",".join(exercises)]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    process = subprocess.run(command, env=env, capture_output=True, text=True)
    results = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{\"")]
    if process.returncode:
        tail = process.stderr.strip().splitlines()[-3:]
        results.append({"exercise": "(notebook)", "reference": "crashed", "reference_message": " | ".join(tail),
                        "mutants": []})
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the repository whose solutions/ and coursekit/ to use (default: this one)")
    parser.add_argument("--notebooks", default="", help="comma-separated notebook numbers, e.g. 01,02 (default all)")
    parser.add_argument("--exercises", default="", help="comma-separated exercise ids (default all)")
    parser.add_argument("--list-survivors", action="store_true", help="print each surviving mutant's diff")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per mutant (default 30)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    exercises = [e for e in args.exercises.split(",") if e]
    if args.worker:
        sys.path.insert(0, str(args.root.resolve()))
        worker(args.worker.resolve(), set(exercises), args.timeout)
        return 0
    root = args.root.resolve()
    numbers = [n for n in args.notebooks.split(",") if n]
    notebooks = [p for p in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb"))
                 if not numbers or p.name[:2] in numbers]
    equivalent = load_equivalent()
    everything, failed_target = {}, False
    print(f"{'notebook':<24} {'exercise':<28} {'killed':>7} {'mutants':>7} {'%':>6} {'equiv.':>6}")
    for notebook in notebooks:
        results = run_notebook(root, notebook, exercises, args.timeout)
        everything[notebook.stem] = results
        total_killed = total = 0
        for result in results:
            if result["reference"] != "passed":
                print(f"{notebook.stem:<24} {result['exercise']:<28} reference {result['reference']}: "
                      f"{result['reference_message'][:100]}")
                failed_target = True
                continue
            counted = [m for m in result["mutants"]
                       if not _is_equivalent(equivalent, notebook.stem, result["exercise"], m["diff"])]
            killed = sum(m["verdict"] != "passed" for m in counted)
            total_killed, total = total_killed + killed, total + len(counted)
            share = 100.0 * killed / len(counted) if counted else 100.0
            print(f"{notebook.stem:<24} {result['exercise']:<28} {killed:>7} {len(counted):>7} {share:>6.1f} "
                  f"{len(result['mutants']) - len(counted):>6}")
            if args.list_survivors:
                for mutant in counted:
                    if mutant["verdict"] == "passed":
                        print(f"    survivor ({mutant['kind']}):\n" + "\n".join(
                            "      " + line for line in mutant["diff"].splitlines()))
        share = 100.0 * total_killed / total if total else 100.0
        failed_target |= share < 97.0
        print(f"{notebook.stem:<24} {'(all)':<28} {total_killed:>7} {total:>7} {share:>6.1f}")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))
    return 1 if failed_target else 0


if __name__ == "__main__":
    sys.exit(main())
