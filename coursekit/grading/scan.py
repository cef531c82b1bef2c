"""A static look at the student's cells, before anything runs: what deserves an instructor's eye.

The scan changes no score (the sandbox and the judges decide those); it flags code that monkeypatches libraries
or the checks, defines objects whose comparisons lie, reaches for the grader's internals, or obfuscates imports,
so the instructor can review it. False alarms are possible; that is why these are flags, not penalties.

>>> scan_cells([(3, "import torch\\ntorch.allclose = lambda *a, **k: True")], allowed=set())
['cell 3: assigns torch.allclose (monkeypatching a library the checks rely on)']
"""

from __future__ import annotations

import ast

PATCHED_ROOTS = {"torch", "np", "numpy", "builtins", "coursekit", "sys", "os", "math", "random", "json", "nn", "F",
                 "copy", "posixpath", "io", "IPython", "__builtins__", "checks"}
SUSPICIOUS_MODULES = {"ctypes", "subprocess", "multiprocessing", "gc", "inspect", "importlib", "signal", "socket",
                      "pty", "resource", "marshal", "pickle", "builtins", "threading", "_thread"}
SUSPICIOUS_NAMES = {"__import__", "exec", "eval", "compile", "globals", "breakpoint"}
SUSPICIOUS_ATTRIBUTES = {"_getframe", "f_back", "f_globals", "f_locals", "tb_frame", "__globals__", "__code__",
                         "__closure__", "__subclasses__", "__builtins__", "modules", "_exit", "kill", "killpg",
                         "system", "fork", "popen", "addaudithook", "settrace", "setprofile", "setrlimit"}
LYING_METHODS = {"__eq__", "__ne__", "__bool__", "__hash__", "__len__", "__lt__", "__gt__", "__contains__"}
MAX_FLAGS = 20


def _root(node) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _findings(tree, allowed: set[str], forbidden: set[str] = frozenset()):
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module:
                names += [f"{node.module}.{alias.name}" for alias in node.names]
            for name in names:
                top = name.split(".")[0]
                if top in forbidden:
                    yield f"imports {name} (where the checks and their reference implementations live)"
                elif top == "coursekit" and name not in allowed and name != "coursekit" and not name.startswith(
                        "coursekit.checks"):
                    if not any(name.startswith(a + ".") for a in allowed):
                        yield f"imports {name} (a reference implementation the grader compares with)"
                elif top in SUSPICIOUS_MODULES:
                    yield f"imports {name}"
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for target in targets:
                for sub in ast.walk(target):
                    if isinstance(sub, ast.Attribute) and _root(sub) in PATCHED_ROOTS:
                        yield f"assigns {_dotted(sub) or _root(sub) + '…'} (monkeypatching a library the checks rely on)"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id in ("setattr", "delattr") and node.args and _root(node.args[0]) in PATCHED_ROOTS:
                yield f"calls {node.func.id} on {_root(node.args[0])} (monkeypatching)"
            elif node.func.id in SUSPICIOUS_NAMES:
                yield f"calls {node.func.id}()"
            elif node.func.id == "open" and node.args and isinstance(node.args[0], ast.Constant) and any(
                    word in str(node.args[0].value) for word in ("solution", "checks", "grade", "rubric", "autograder")):
                yield f"opens {node.args[0].value!r}"
        elif isinstance(node, ast.Attribute) and node.attr in SUSPICIOUS_ATTRIBUTES:
            yield f"uses .{node.attr}"
        elif isinstance(node, ast.FunctionDef) and node.name in LYING_METHODS:
            body = [s for s in node.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
            if len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(body[0].value, ast.Constant):
                yield f"defines {node.name} that always returns {body[0].value.value!r} (an object that lies)"


def scan_cells(cells: list[tuple[int, str]], allowed: set[str], forbidden: set[str] = frozenset()) -> list[str]:
    """Flags for a notebook's code cells [(cell index, source)]; `allowed` are the coursekit modules it may import,
    `forbidden` other modules it must not (extra check modules)."""
    flags = []
    for index, source in cells:
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            tree = ast.parse("\n".join(lines))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        for finding in dict.fromkeys(_findings(tree, allowed, forbidden)):
            flags.append(f"cell {index}: {finding}")
            if len(flags) >= MAX_FLAGS:
                return flags + ["… (more not shown)"]
    return flags
