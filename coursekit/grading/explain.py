"""Feedback in terms of the student's own cells: which cell defines a name, which exercises were never attempted.

The sandbox reports facts ("the notebook never defines losses_one_hot", "cell 12 raised ValueError"); this module
joins them with what the notebook's source says, so a student reads "losses_one_hot is defined in cell 12,
which failed: ValueError: …" instead of a claim that contradicts their notebook.
"""

from __future__ import annotations

import ast

from coursekit.grading.submissions import StudentNotebook

NEVER_DEFINES = "your notebook never defines "
CONSEQUENCES = ("NameError", "NotImplementedError")  # what a handed-out cell raises when earlier work is missing


def defined_names(source: str) -> set[str]:
    """The names a cell binds at its top level (assignments, defs, classes, imports, loop targets).

    >>> sorted(defined_names("import torch as t\\nx, y = 1, 2\\ndef f(): z = 3\\nfor i in []: pass"))
    ['f', 'i', 't', 'x', 'y']
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        else:
            for target in _targets(node):
                names.update(leaf.id for leaf in ast.walk(target) if isinstance(leaf, ast.Name))
    return names


def _targets(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        return node.targets
    if isinstance(node, (ast.AnnAssign, ast.AugAssign, ast.For)):
        return [node.target]
    if isinstance(node, ast.With):
        return [item.optional_vars for item in node.items if item.optional_vars]
    return []


def missing_reason(reason: str, notebook: StudentNotebook, cell_errors: dict[int, str]) -> str:
    """Replace "never defines X" by the failed cell that defines X, with its error, when there is one."""
    if not reason.startswith(NEVER_DEFINES):
        return reason
    explained = []
    for name in reason.removeprefix(NEVER_DEFINES).split(", "):
        cells = [cell.index for cell in notebook.cells if name in defined_names(cell.source)]
        failed = [index for index in cells if index in cell_errors]
        if failed:
            explained.append(f"{name} is defined in cell {failed[-1]}, which failed ({cell_errors[failed[-1]]}): "
                             "fix that cell")
        elif cells:
            explained.append(f"{name} is defined in cell {cells[-1]}, but that cell did not run")
        else:
            explained.append(f"your notebook never defines {name}")
    return "; ".join(explained)


def untouched_cells(notebook: StudentNotebook, given: set[str]) -> set[int]:
    """The code cells that are exactly as handed out (the student version of the solution notebook)."""
    return {cell.index for cell in notebook.cells if cell.source.strip() in given}


def attempted(notebook: StudentNotebook, exercise: str, untouched: set[int]) -> bool:
    """False when the exercise's own cell is still the handed-out stub (True when the cell cannot be found)."""
    cells = [cell.index for cell in notebook.cells if cell.exercise == exercise]
    return not cells or not set(cells) <= untouched


def is_consequence(error: str) -> bool:
    """An error a handed-out cell raises because work before it is missing (reported with that work instead)."""
    return error.startswith(CONSEQUENCES)
