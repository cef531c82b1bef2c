"""README's "open the course" command works from a plain (non-dev) install in a brand-new virtual environment:
`pip install torch==2.13.0 .` into a new venv, then that venv's `python -m jupyter lab notebooks/01_tokenization.ipynb`
serves notebook 01 over loopback, with a Python kernel, and can import coursekit.

The venv is built from a copy of the package's sources (so the build never writes into the checkout); pip's cache
keeps this quick after the first time. Skipped, with the reason, only when pip cannot reach a package index.
"""

from __future__ import annotations

import json
import re
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

import browser_support

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = "notebooks/01_tokenization.ipynb"
OFFLINE = re.compile(r"NewConnectionError|Failed to establish a new connection|Network is unreachable|"
                     r"Temporary failure in name resolution|No route to host")


def readme_open_command() -> str:
    """README's first shell block: the command that installs the course and opens it."""
    return re.findall(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), flags=re.DOTALL)[0]


@pytest.fixture(scope="module")
def plain_install(tmp_path_factory) -> tuple[Path, Path]:
    """(the new venv's python, a copy of the course) after README's install, without the dev extra."""
    command = readme_open_command()
    match = re.search(r"python -m pip install (.*?) -e \. &&", command)
    assert match, f"README's open-the-course command no longer installs with `pip install ... -e .`: {command}"
    home = tmp_path_factory.mktemp("fresh-install")
    course = home / "course"
    for folder in ("coursekit", "notebooks"):
        shutil.copytree(ROOT / folder, course / folder, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, course / name)
    subprocess.run([sys.executable, "-m", "venv", str(home / "venv")], check=True, capture_output=True, timeout=300)
    python = home / "venv" / "bin" / "python"
    # README installs editable (-e .); a regular install of the copy proves the same requirements suffice.
    install = subprocess.run([str(python), "-m", "pip", "install", "-q", *match[1].split(), str(course)],
                             capture_output=True, text=True, timeout=1800, stdin=subprocess.DEVNULL)
    if install.returncode != 0:
        output = install.stdout + install.stderr
        if OFFLINE.search(output):
            pytest.skip(f"pip cannot reach a package index to build a fresh venv: {output.strip()[-300:]}")
        pytest.fail(f"`pip install {match[1]} .` failed in a fresh venv:\n{output[-3000:]}")
    return python, course


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.status, response.read().decode("utf-8", errors="replace")


def test_the_plain_install_has_no_dev_packages_and_imports_coursekit(plain_install):
    python, _ = plain_install
    probe = ("import importlib.util, coursekit, sys; print(coursekit.__file__); "
             "print([m for m in ('pytest', 'hypothesis', 'nbval') if importlib.util.find_spec(m)])")
    outside = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}  # a developer's checkout
    done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=300, cwd="/",
                          env=outside)
    assert done.returncode == 0, f"coursekit does not import in the fresh venv:\n{done.stderr[-2000:]}"
    location, dev_packages = done.stdout.splitlines()
    assert location.startswith(str(python.parent.parent)), f"coursekit came from {location}, not the new venv"
    assert dev_packages == "[]", f"a non-dev install pulled dev packages {dev_packages}: keep them in the dev extra"


def test_jupyter_lab_from_the_plain_install_serves_notebook_01(plain_install, tmp_path):
    python, course = plain_install
    with browser_support.jupyterlab(course, tmp_path, timeout=180, python=str(python), opens=NOTEBOOK) as (base, token):
        status, page = get(f"{base}/lab/tree/{NOTEBOOK}?token={token}")
        assert status == 200 and "jupyter-config-data" in page, f"no JupyterLab page at /lab/tree/{NOTEBOOK}"
        status, body = get(f"{base}/api/contents/{NOTEBOOK}?token={token}")
        notebook = json.loads(body)
        assert status == 200 and notebook["type"] == "notebook" and notebook["content"]["cells"], (
            f"the server does not hand out {NOTEBOOK} as a notebook")
        status, body = get(f"{base}/api/kernelspecs?token={token}")
        assert "python3" in json.loads(body)["kernelspecs"], "the fresh install offers no Python 3 kernel"
