"""The AST mutator of benchmarks/check_strength.py produces the kinds of mutants it promises, and only there."""

import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "check_strength.py"
spec = importlib.util.spec_from_file_location("check_strength", SCRIPT)
check_strength = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_strength)

CELL = '''import torch


def f(x, y):
    """Kept as it is."""
    ### BEGIN SOLUTION
    z = x[:-1] + y[1:]
    if len(x) < 2:
        return torch.softmax(z, dim=-1)
    w = torch.cat([x, y], dim=0)
    return torch.where(w > 0, w, y)
    ### END SOLUTION
'''


@pytest.fixture(scope="module")
def found():
    return check_strength.mutants(CELL, check_strength.solution_lines(CELL))


def diffs(found, kind):
    return [m["diff"] for m in found if m["kind"] == kind]


def test_every_kind_of_mutant_is_made(found):
    assert {m["kind"] for m in found} == {"operator", "comparison", "constant", "dim", "slice", "drop statement",
                                          "swap statements", "arguments", "keyword"}


def test_specific_mutants(found):
    everything = [m["diff"] for m in found]
    assert "-     z = x[:-1] + y[1:]\n+     z = x[:-1] - y[1:]" in diffs(found, "operator")
    assert "-     if len(x) < 2:\n+     if len(x) <= 2:" in diffs(found, "comparison")
    assert "-     if len(x) < 2:\n+     if len(x) < 3:" in diffs(found, "constant")
    assert "-         return torch.softmax(z, dim=-1)\n+         return torch.softmax(z, dim=-2)" in diffs(found, "dim")
    assert "-     w = torch.cat([x, y], dim=0)\n+     w = torch.cat([x, y], dim=1)" in diffs(found, "dim")
    assert "-     z = x[:-1] + y[1:]\n+     z = x[:-2] + y[1:]" in everything  # a slice bound off by one
    assert "-     z = x[:-1] + y[1:]\n+     z = x[:-1] + y[1:-1]" in diffs(found, "slice")
    assert "-     return torch.where(w > 0, w, y)\n+     return torch.where(w > 0, y, w)" in diffs(found, "arguments")
    assert "-         return torch.softmax(z, dim=-1)\n+         return torch.softmax(z)" in diffs(found, "keyword")
    assert "-     w = torch.cat([x, y], dim=0)" in diffs(found, "drop statement")


def test_swapped_statements_show_both_lines(found):
    assert ("-     w = torch.cat([x, y], dim=0)\n-     return torch.where(w > 0, w, y)\n"
            "+     return torch.where(w > 0, w, y)\n+     w = torch.cat([x, y], dim=0)") in diffs(found, "swap statements")


def test_only_the_solution_is_mutated(found):
    for mutant in found:
        assert "Kept as it is." in mutant["source"] and "import torch" in mutant["source"]
        assert "def f(x, y):" in mutant["source"]
        assert not any("import" in line or "def f" in line for line in mutant["diff"].splitlines()), mutant["diff"]


def test_mutants_compile_differ_and_are_unique(found):
    sources = [m["source"] for m in found]
    assert len(sources) == len(set(sources)) and len(sources) > 20
    original = check_strength.ast.unparse(check_strength.ast.parse(CELL))
    for source in sources:
        compile(source, "<mutant>", "exec")
        assert source != original


def test_a_dropped_only_statement_becomes_pass():
    found = check_strength.mutants("def g():\n    return 1\n")
    assert any(m["kind"] == "drop statement" and "pass" in m["source"] for m in found)


def test_every_solution_region_of_a_cell_is_mutated():
    cell = ("class M:\n    def a(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION\n\n"
            "    def b(self):\n        ### BEGIN SOLUTION\n        return 2\n        ### END SOLUTION\n")
    found = check_strength.mutants(cell, check_strength.solution_lines(cell))
    changed = {line for m in found for line in m["diff"].splitlines() if line.startswith("-")}
    assert changed == {"-         return 1", "-         return 2"}
