"""Check modules are safe to load into a grading sandbox (issue 13 item 2).

The grader mounts only plumbing into a notebook's sandbox and runs the probes there, so:
- every module of coursekit.checks imports with nothing of coursekit but coursekit.data and coursekit.checks.*;
- at the top level, check modules import only the standard library, numpy, torch, coursekit.data and
  coursekit.checks.* (references are imported inside judge-side functions);
- run on the reference answers of the solution notebooks, no probe imports a module outside the sandbox of that
  notebook (coursekit.data, coursekit.checks.*, and what an earlier notebook taught: not
  `references.forbidden_modules(notebook)`), and the probes, run under the blocker, still give passing results.
Generic: every check module and every solution notebook is covered without a change here.
"""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECK_FILES = sorted((ROOT / "coursekit" / "checks").glob("*.py"))
SOLUTIONS = sorted((ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))
ALLOWED_THIRD_PARTY = {"numpy", "torch"}

BLOCKER = r'''
import importlib.abc
import sys


class Blocker(importlib.abc.MetaPathFinder):
    """Refuses (and records) every import of a coursekit module that is not in `allowed`, while active."""

    def __init__(self, allowed):
        self.allowed, self.attempts, self.active = allowed, [], False

    def blocks(self, name):
        return name.split(".")[0] == "coursekit" and name not in self.allowed and not name.startswith(
            "coursekit.checks.")

    def find_spec(self, name, path=None, target=None):
        if self.active and self.blocks(name):
            self.attempts.append(name)
            raise ImportError(f"{name} is not in the sandbox")
        return None

    def __enter__(self):
        """Hide what is already imported too: sys.modules entries and the attributes of parent packages."""
        self.stash = {name: sys.modules.pop(name) for name in list(sys.modules) if self.blocks(name)}
        self.detached = []
        for name in self.stash:
            parent, _, child = name.rpartition(".")
            if parent in sys.modules and child in vars(sys.modules[parent]):
                self.detached.append((sys.modules[parent], child, vars(sys.modules[parent]).pop(child)))
        sys.meta_path.insert(0, self)
        self.active = True
        return self

    def __exit__(self, *exc):
        self.active = False
        sys.meta_path.remove(self)
        for name in [name for name in sys.modules if self.blocks(name)]:
            del sys.modules[name]  # imported by a probe despite us? (recorded) do not keep it
        sys.modules.update(self.stash)
        for parent, child, value in self.detached:
            setattr(parent, child, value)
'''

IMPORT_ALL = BLOCKER + r'''
blocker = Blocker(["coursekit", "coursekit.data", "coursekit.checks"])
with blocker:
    import coursekit.checks
    import pkgutil, importlib
    for module in pkgutil.iter_modules(coursekit.checks.__path__):
        importlib.import_module(f"coursekit.checks.{module.name}")
print(sorted(set(blocker.attempts)))
'''

PROBE_NOTEBOOK = BLOCKER + r'''
import ast, json, os, sys
import matplotlib
matplotlib.use("Agg")
import torch
torch.set_num_threads(1)
from coursekit.grading import references

notebook = sys.argv[1]
stem = os.path.basename(notebook)[:-len(".ipynb")]
order = sorted(references.ANSWERS)
earlier = set().union(*(references.ANSWERS[n] for n in order[:order.index(stem)])) if stem in order else set()
allowed = ["coursekit", "coursekit.data", "coursekit.checks",
           *sorted(earlier - references.forbidden_modules(stem))]
os.chdir(os.path.dirname(notebook))
namespace = {"__name__": "__main__"}
report = []
for cell in json.load(open(notebook))["cells"]:
    if cell["cell_type"] != "code":
        continue
    source = "".join(cell["source"])
    exec(compile(source, "<cell>", "exec"), namespace)
    for node in ast.parse(source).body:
        call = node.value if isinstance(node, ast.Expr) else None
        if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id.startswith("check_")):
            continue
        check = namespace[call.func.id]
        student = tuple(eval(compile(ast.Expression(arg), "<arg>", "eval"), namespace) for arg in call.args)
        for run_seed in (0, 1):
            blocker = Blocker(allowed)
            with blocker:
                results = check.probe_all(student, run_seed)
            failed = [f"{o.test}: {o.message}" for o in check.judge(results, run_seed) if not o.passed]
            report.append({"check": call.func.id, "seed": run_seed, "attempts": sorted(set(blocker.attempts)),
                           "failed": failed})
print("REPORT " + json.dumps(report))
'''


def _run(code: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_every_check_module_imports_inside_the_sandbox():
    process = _run(IMPORT_ALL)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stdout.strip() == "[]", f"check modules imported: {process.stdout}"


def _top_level_imports(file: Path) -> set[str]:
    found = set()
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module != "__future__":
            if node.module != "coursekit":
                found.add(node.module)
            else:
                found.update(f"coursekit.{alias.name}" for alias in node.names)
    return found


def _allowed_at_top_level(name: str) -> bool:
    top = name.split(".")[0]
    if top == "coursekit":
        return name in ("coursekit.data", "coursekit.checks") or name.startswith("coursekit.checks.")
    return top in ALLOWED_THIRD_PARTY or top in sys.stdlib_module_names


@pytest.mark.parametrize("file", CHECK_FILES, ids=[f.name for f in CHECK_FILES])
def test_check_modules_import_only_plumbing_at_the_top(file):
    wrong = sorted(name for name in _top_level_imports(file) if not _allowed_at_top_level(name))
    assert not wrong, (f"{file.name} imports {wrong} at the top level: only the standard library, numpy, torch, "
                       f"coursekit.data and coursekit.checks.* are in the sandbox; import references inside judges")


def test_the_blocker_itself_blocks_and_records():
    code = BLOCKER + r'''
import coursekit.checks, coursekit.bpe
blocker = Blocker(["coursekit", "coursekit.data", "coursekit.checks"])
with blocker:
    try:
        from coursekit import bpe
        print("not blocked")
    except ImportError:
        print("blocked", blocker.attempts)
import coursekit.bpe as again
print("restored", again is coursekit.bpe)
'''
    process = _run(code)
    assert process.stdout.split("\n")[:2] == ["blocked ['coursekit.bpe']", "restored True"], process.stderr


@pytest.mark.parametrize("notebook", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_probes_import_nothing_outside_the_sandbox(notebook):
    process = _run(PROBE_NOTEBOOK, str(notebook))
    lines = [line for line in process.stdout.splitlines() if line.startswith("REPORT ")]
    assert process.returncode == 0 and lines, process.stderr[-3000:]
    report = json.loads(lines[-1][len("REPORT "):])
    assert report, f"{notebook.name} calls no check"
    imported = {f"{r['check']} (run seed {r['seed']})": r["attempts"] for r in report if r["attempts"]}
    assert not imported, f"probes imported modules that are not in the sandbox: {imported}"
    failed = {f"{r['check']} (run seed {r['seed']})": r["failed"] for r in report if r["failed"]}
    assert not failed, f"with the sandbox's modules only, the reference fails: {failed}"
