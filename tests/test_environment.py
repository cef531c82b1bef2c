"""environment.yml (the Binder image) installs what pyproject.toml says coursekit needs, CPU-only, without data."""

import re
import sys
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest itself depends on tomli before Python 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent

# PyPI name -> the conda-forge names that provide it, when they differ.
CONDA_NAMES = {
    "torch": {"pytorch-cpu", "pytorch"},  # "pytorch" only with a CPU build string, e.g. pytorch=*=cpu*
    "matplotlib": {"matplotlib", "matplotlib-base"},
}
NOT_PACKAGES = {"python", "pip"}
CUDA = re.compile(r"cuda|cudnn|cublas|nccl|cupy|nvidia|pytorch-gpu|torch.*gpu", re.IGNORECASE)
CONDA_NAME = re.compile(r"\s*([A-Za-z0-9_.\-]+)\s*(.*?)\s*$")


def load_environment() -> dict:
    environment = yaml.safe_load((ROOT / "environment.yml").read_text(encoding="utf-8"))
    assert isinstance(environment, dict), "environment.yml must be a mapping with `channels` and `dependencies`"
    return environment


def runtime_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return [Requirement(line) for line in project["dependencies"]]


def conda_entries(environment) -> dict[str, str]:
    """Conda dependencies as {name: the whole spec}, e.g. {"numpy": "numpy>=1.24"}."""
    return {canonicalize_name(CONDA_NAME.match(item)[1]): item
            for item in environment.get("dependencies", []) if isinstance(item, str)}


def pip_lines(environment) -> list[str]:
    lines = []
    for item in environment.get("dependencies", []):
        if isinstance(item, dict) and "pip" in item:
            lines.extend(item["pip"] or [])
    return lines


def lower_bound(specifiers: SpecifierSet) -> Version | None:
    """The highest `>=` bound of a specifier set, e.g. '>=2.1' -> Version('2.1')."""
    bounds = [Version(spec.version) for spec in specifiers if spec.operator in (">=", "==", "~=")]
    return max(bounds) if bounds else None


def conda_specifiers(spec: str) -> SpecifierSet:
    """The version part of a conda spec as a pip specifier set.

    >>> [str(conda_specifiers(spec)) for spec in ["numpy>=1.24", "python=3.11", "pytorch=*=cpu*", "tqdm"]]
    ['>=1.24', '==3.11.*', '', '']
    """
    version = CONDA_NAME.match(spec)[2].split()[0] if CONDA_NAME.match(spec)[2] else ""
    if version.startswith("=") and not version.startswith("=="):  # conda's `=3.11` (or `=3.11=build`) means 3.11.*
        version = version[1:].split("=")[0]
        return SpecifierSet() if version in ("", "*") else SpecifierSet(f"=={version.rstrip('.*')}.*")
    return SpecifierSet(version)


def test_environment_parses_and_uses_conda_forge_only():
    environment = load_environment()
    channels = environment.get("channels", [])
    assert channels and channels[0] == "conda-forge", "list conda-forge as the first channel"
    assert "defaults" not in channels, "the `defaults` channel needs a licence for some users; use conda-forge only"
    assert isinstance(environment.get("dependencies"), list) and environment["dependencies"]


def test_python_is_pinned_to_a_version_pyproject_allows():
    environment = load_environment()
    entries = conda_entries(environment)
    assert "python" in entries, "pin Python (e.g. `python=3.11`): repo2docker otherwise picks its own default"
    match = re.fullmatch(r"python\s*=\s*(\d+\.\d+)(\.\*)?", entries["python"].strip())
    assert match, f"pin Python to one minor version like `python=3.11`, not {entries['python']!r}"
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert Version(match[1] + ".0") in SpecifierSet(project["requires-python"]), (
        f"environment.yml pins Python {match[1]}, but pyproject.toml requires {project['requires-python']}")


@pytest.mark.parametrize("requirement", runtime_requirements(), ids=lambda requirement: requirement.name)
def test_every_runtime_dependency_is_installed_with_at_least_pyprojects_version(requirement):
    environment = load_environment()
    entries = conda_entries(environment)
    name = canonicalize_name(requirement.name)
    candidates = CONDA_NAMES.get(name, {name})
    found = [entries[candidate] for candidate in candidates if candidate in entries]
    pip = {canonicalize_name(Requirement(line).name): Requirement(line) for line in pip_lines(environment)
           if not line.startswith("-") and not line.startswith(".")}
    assert found or name in pip, (
        f"{requirement.name} (pyproject.toml) is missing from environment.yml: add "
        f"{' or '.join(sorted(candidates))} under dependencies (or under pip: if conda-forge lacks it)")
    wanted = lower_bound(requirement.specifier)
    if wanted is None:
        return
    got = lower_bound(conda_specifiers(found[0]) if found else pip[name].specifier)
    assert got is not None and got >= wanted, (
        f"environment.yml allows {requirement.name} below {wanted} ({found[0] if found else pip[name]}); "
        f"use the same lower bound as pyproject.toml: {requirement}")


def test_environment_lists_nothing_pyproject_does_not_declare():
    """Binder and `pip install coursekit` must not drift: an extra package belongs in pyproject.toml first."""
    environment = load_environment()
    declared = set()
    for requirement in runtime_requirements():
        declared |= CONDA_NAMES.get(canonicalize_name(requirement.name), {canonicalize_name(requirement.name)})
    extra = sorted(set(conda_entries(environment)) - declared - NOT_PACKAGES)
    assert not extra, f"environment.yml installs {extra}, which pyproject.toml does not declare"


def test_torch_is_the_cpu_build_and_nothing_pulls_cuda():
    environment = load_environment()
    entries = conda_entries(environment)
    everything = list(entries.values()) + pip_lines(environment)
    assert not [line for line in everything if CUDA.search(line)], "no CUDA packages: Binder has no GPU"
    if "pytorch" in entries:
        assert re.search(r"=\S*cpu", entries["pytorch"]), (
            "`pytorch` without a CPU build string may resolve to the CUDA build; use `pytorch-cpu` or `pytorch=*=cpu*`")
    else:
        assert "pytorch-cpu" in entries, "install PyTorch from conda-forge as `pytorch-cpu`"
    pip_names = {canonicalize_name(Requirement(line).name) for line in pip_lines(environment)
                 if not line.startswith("-") and not line.startswith(".")}
    assert "torch" not in pip_names, "torch from pip is the CUDA build on Linux (several GB); take it from conda-forge"


def test_coursekit_itself_is_installed():
    environment = load_environment()
    local = [line for line in pip_lines(environment) if re.fullmatch(r"(-e\s+|--editable[=\s]+)?\.(/)?", line.strip())]
    post_build = ROOT / "postBuild"
    installs_in_post_build = post_build.exists() and re.search(r"pip install.*(\s\.|-e\s*\.)", post_build.read_text())
    assert local or installs_in_post_build, "install coursekit: add `- -e .` under `pip:` (or a postBuild that does)"


def test_data_stays_out_of_the_image():
    for name in ("postBuild", "start"):
        script = ROOT / name
        if script.exists():
            assert "data fetch" not in script.read_text(), (
                f"{name} downloads the course data into the image; the notebooks fetch it on first use")
    assert "data fetch" not in (ROOT / "environment.yml").read_text(encoding="utf-8")
