"""Every third-party module that tests/, coursekit/ or benchmarks/ import comes from a distribution pyproject.toml
declares (in `dependencies` or any extra), or from a requirement of one, so a fresh `pip install -e ".[dev]"` has it.

A module counts as provided when an installed distribution that is allowed ships it (importlib.metadata knows which
distribution installed which top-level module); a module that is not installed here is allowed only when its name is
a declared (or transitively required) distribution's name. Environment markers are ignored when following
requirements (`tomli; python_version < "3.11"` still counts), because the course supports every Python it declares.
"""

from __future__ import annotations

import ast
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "coursekit", "benchmarks")


def declared_requirements(pyproject: Path) -> list[Requirement]:
    """The project's `dependencies` and every optional extra, as parsed requirements."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    lines = list(project.get("dependencies", []))
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def allowed_distributions(requirements: list[Requirement]) -> set[str]:
    """The declared distributions and, for those installed here, everything they require, transitively.

    >>> {"pytest", "pluggy", "iniconfig"} <= allowed_distributions([Requirement("pytest")])
    True
    """
    allowed: set[str] = set()
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        name = canonicalize_name(requirement.name)
        if name in allowed:
            continue
        allowed.add(name)
        try:
            nested = [Requirement(line) for line in requires(name) or []]
        except PackageNotFoundError:
            continue  # not installed here: only its own name is known
        for inner in nested:  # follow each requirement unless it belongs to an extra nobody asked for
            if inner.marker is None or "extra" not in str(inner.marker) or any(
                    inner.marker.evaluate({"extra": extra}) for extra in requirement.extras):
                todo.append(inner)
    return allowed


def imported_modules(path: Path) -> set[str]:
    """Top-level names of the absolute imports anywhere in a Python file (inside functions too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def local_modules(root: Path) -> set[str]:
    """Names importable from the checkout itself: its packages, and the helper scripts among tests and benchmarks
    (which put their own folders on sys.path)."""
    names = {path.parent.name for path in root.glob("*/__init__.py")}
    for folder in SCANNED:
        names.update(path.stem for path in (root / folder).rglob("*.py"))
    return names


def undeclared_imports(root: Path) -> dict[str, list[str]]:
    """{module: [files importing it]} for third-party modules no declared distribution provides."""
    allowed = allowed_distributions(declared_requirements(root / "pyproject.toml"))
    providers = {module: {canonicalize_name(dist) for dist in dists}
                 for module, dists in packages_distributions().items()}
    local = local_modules(root)
    missing: dict[str, list[str]] = {}
    for folder in SCANNED:
        for path in sorted((root / folder).rglob("*.py")):
            for module in imported_modules(path):
                if module in sys.stdlib_module_names or module in local:
                    continue
                if not (providers.get(module, {canonicalize_name(module)}) & allowed):
                    missing.setdefault(module, []).append(str(path.relative_to(root)))
    return missing


def test_every_third_party_import_is_declared_in_pyproject():
    missing = undeclared_imports(ROOT)
    assert not missing, "imports that pyproject.toml does not declare (add them to `dependencies` or the `dev` " \
        "extra):\n" + "\n".join(f"  {module}: {', '.join(files)}" for module, files in sorted(missing.items()))


def write_project(root: Path, requirements: list[str], sources: dict[str, str]) -> Path:
    lines = ", ".join(f'"{line}"' for line in requirements)
    (root / "pyproject.toml").write_text(f'[project]\nname = "demo"\nversion = "0"\ndependencies = [{lines}]\n')
    for relative, text in sources.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def test_an_undeclared_import_is_reported_with_the_file_that_imports_it(tmp_path):
    root = write_project(tmp_path, ["pytest"], {
        "tests/test_a.py": "import os\nimport pytest\nimport helper\n\ndef test():\n    import yaml.constructor\n",
        "tests/helper.py": "from pluggy import HookimplMarker\n",  # pytest requires pluggy: allowed
        "benchmarks/b.py": "from no_such_module_anywhere import thing\n",
        "coursekit/__init__.py": "from coursekit import x\n",
    })
    assert undeclared_imports(root) == {"yaml": ["tests/test_a.py"], "no_such_module_anywhere": ["benchmarks/b.py"]}


def test_declaring_the_distribution_by_its_own_name_satisfies_the_check(tmp_path):
    sources = {"tests/test_a.py": "import yaml\n"}  # the module is `yaml`, the distribution `PyYAML`
    assert undeclared_imports(write_project(tmp_path, ["pytest"], sources)) == {"yaml": ["tests/test_a.py"]}
    assert undeclared_imports(write_project(tmp_path, ["pytest", "PyYAML>=6"], sources)) == {}
