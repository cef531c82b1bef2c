"""Every notebook opens on Colab: a badge, and a first code cell that installs coursekit there and only there."""

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from coursekit import build

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "solutions").glob("*.ipynb")) + sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[f"{p.parent.name}/{p.name}" for p in NOTEBOOKS])
def test_every_notebook_starts_with_the_badge_and_the_same_setup_cell(path):
    notebook = nbformat.read(path, as_version=4)
    badge = notebook.cells[0]
    first_code = next(cell for cell in notebook.cells if cell.cell_type == "code")
    assert badge.cell_type == "markdown" and "colab.research.google.com" in badge.source
    assert f"{path.parent.name}/{path.name}" in badge.source, "the badge must open this very notebook"
    assert first_code.source == build.COLAB_SETUP


def run_setup_cell(monkeypatch, on_colab: bool, installed: bool) -> list[list[str]]:
    """Execute the set-up cell with subprocess.run recorded instead of run; returns the commands."""
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    if on_colab:
        monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    else:
        monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: real_find_spec(name, *args) if installed or name != "coursekit" else None)
    exec(compile(build.COLAB_SETUP, "colab-setup", "exec"), {})
    return commands


def test_the_setup_cell_does_nothing_outside_colab(monkeypatch):
    assert run_setup_cell(monkeypatch, on_colab=False, installed=False) == []


def test_on_colab_it_installs_coursekit_without_pinning_torch_then_fetches_data(monkeypatch):
    install, fetch = run_setup_cell(monkeypatch, on_colab=True, installed=False)
    assert install[1:4] == ["-m", "pip", "install"] and any("coursekit" in part for part in install)
    assert not any("torch" in part for part in install), "Colab's own torch must be left alone"
    assert fetch[1:] == ["-m", "coursekit", "data", "fetch", "tinyshakespeare"]


def test_on_colab_with_coursekit_installed_it_only_fetches_data(monkeypatch):
    [fetch] = run_setup_cell(monkeypatch, on_colab=True, installed=True)
    assert fetch[-3:] == ["data", "fetch", "tinyshakespeare"]
