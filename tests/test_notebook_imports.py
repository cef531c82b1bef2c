"""No student notebook imports the reference answers to its own exercises.

For every notebook in notebooks/, collect the coursekit modules its code cells import, follow what those modules
import when they are imported (their module-level imports, recursively), and require that none of them is in
`forbidden_modules(stem)`: the modules holding that notebook's answers and everything that imports them. The
grader keeps those modules out of that notebook's sandbox, so a notebook that needed one would break there, and a
notebook that handed one to the student would hand over the answers.

`coursekit.checks` is followed like any other module: its `__init__` loads the check modules with importlib (not an
import statement), and in the sandbox the grader replaces the whole package with stand-in checks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from coursekit.grading.references import ANSWERS, coursekit_imports, forbidden_modules, module_names, top_level_imports

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def python_source(cell_source: str) -> str:
    """A code cell without IPython's magics and shell lines, which are not Python."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in cell_source.splitlines())


def imports_in(source: str) -> set[str]:
    """Every coursekit name a piece of code imports, anywhere in it (module names, and `module.name` for `from`).

    >>> sorted(imports_in("from coursekit import data\\ndef f():\\n    import coursekit.gpt"))
    ['coursekit', 'coursekit.data', 'coursekit.gpt']
    """
    return coursekit_imports(ast.walk(ast.parse(source)))


def notebook_imports(path: Path) -> set[str]:
    """The coursekit modules a notebook's code cells import."""
    notebook = nbformat.read(path, as_version=4)
    names = set()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            names |= imports_in(python_source(cell.source))
    return names & set(module_names())


def loaded_modules(imported: set[str]) -> dict[str, str]:
    """Every coursekit module that importing `imported` loads, each with the module that brought it in."""
    modules = module_names()
    loaded = {name: "the notebook" for name in imported}
    todo = sorted(imported)
    while todo:
        name = todo.pop()
        parts = name.split(".")
        parents = {".".join(parts[:i]) for i in range(1, len(parts))}  # a package's __init__ runs first
        for used in sorted((top_level_imports(modules[name]) | parents) & set(modules)):
            if used not in loaded:
                loaded[used] = name
                todo.append(used)
    return loaded


def test_every_notebook_has_an_answers_entry():
    assert {path.stem for path in NOTEBOOKS} == set(ANSWERS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_student_notebook_does_not_import_its_own_answers(path):
    loaded = loaded_modules(notebook_imports(path))
    leaks = sorted(set(loaded) & forbidden_modules(path.stem))
    assert not leaks, (f"{path.name} loads modules that hold its own answers (or import them): "
                       + ", ".join(f"{name} (imported by {loaded[name]})" for name in leaks))


def test_the_closure_follows_module_level_imports(tmp_path):
    # A notebook that imports only checkpoints still loads coursekit.gpt if checkpoints imports it at the top.
    package = module_names()
    uses_gpt = {name for name in package if "coursekit.gpt" in top_level_imports(package[name])}
    for name in sorted(uses_gpt):
        assert "coursekit.gpt" in loaded_modules({name})
    assert loaded_modules({"coursekit.data"}).keys() >= {"coursekit.data", "coursekit"}


def exercise_names(path: Path) -> set[str]:
    """The functions and classes a solution notebook defines at the top of its exercise cells (### BEGIN SOLUTION).

    >>> sorted(exercise_names(ROOT / "solutions" / "05_prompting.ipynb"))
    ['apply_temperature', 'sample_next_token', 'top_k_filter', 'top_p_filter']
    """
    notebook = nbformat.read(path, as_version=4)
    names = set()
    for cell in notebook.cells:
        if cell.cell_type == "code" and "### BEGIN SOLUTION" in cell.source:
            names.update(node.name for node in ast.parse(python_source(cell.source)).body
                         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))
    return names


def public_names(file: Path) -> set[str]:
    """The public names a module offers at its top level: what it defines (def, class) and what it imports.

    >>> sorted(public_names(ROOT / "coursekit" / "gpt_config.py"))
    ['GPTConfig', 'annotations', 'dataclass']
    """
    names = set()
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return {name for name in names if not name.startswith("_")}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_no_module_a_student_notebook_loads_offers_one_of_its_exercises(path):
    # Catches an answer that sits in an allowed module (05's filters once lived next to GPT.generate in
    # coursekit.gpt, which notebook 05 imports): `from coursekit.gpt import top_k_filter` would then pass the check.
    exercises = exercise_names(ROOT / "solutions" / path.name)
    assert exercises, f"no exercise functions or classes found in solutions/{path.name}"
    modules = module_names()
    offered = {name: sorted(public_names(modules[name]) & exercises) for name in loaded_modules(notebook_imports(path))}
    offered = {name: found for name, found in offered.items() if found}
    assert not offered, (f"{path.name} loads modules that define (or import) its own exercises, so a student could "
                         f"import the answer: " + "; ".join(f"{name}: {', '.join(found)}" for name, found in offered.items()))
