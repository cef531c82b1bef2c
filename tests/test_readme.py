"""README: two set-up commands (the second is exactly what CI runs), every notebook listed with its Colab badge,
and a Binder badge that opens JupyterLab at notebook 01."""

import re
from pathlib import Path

from coursekit.build import REPOSITORY

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOTEBOOKS = sorted(path.name for path in (ROOT / "solutions").glob("[0-9][0-9]_*.ipynb"))


def shell_blocks() -> list[str]:
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", README, flags=re.DOTALL)]


def test_exactly_two_set_up_commands_open_the_course_and_run_the_tests():
    blocks = shell_blocks()
    assert len(blocks) == 2, f"README must have exactly two set-up commands, found {len(blocks)}: {blocks}"
    open_course, run_tests = blocks
    assert "jupyter lab notebooks/01_tokenization.ipynb" in open_course
    assert "pytest" in run_tests and "[dev]" in run_tests
    for command in blocks:
        assert "torch==2.13.0" in command, "pin torch so pip takes the CPU wheel here, never a newer CUDA build"


def test_ci_runs_the_readme_test_command_exactly():
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    run_tests = shell_blocks()[1]
    # .ci/run may quieten pip (-q); otherwise the command is README's, word for word.
    assert run_tests in [line.replace("pip install -q ", "pip install ") for line in ci_lines], (
        f".ci/run must call README's test command: {run_tests}")


def test_ci_runs_the_test_command_in_a_venv_it_has_just_created():
    """Nothing installed by hand can hide an undeclared dependency: .ci/run makes a new venv outside the checkout
    and puts it first on PATH before README's command runs."""
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    command = next(i for i, line in enumerate(ci_lines) if "python -m pytest" in line)
    made = [i for i, line in enumerate(ci_lines) if re.match(r"python3 -m venv \S*\$", line)]
    first_on_path = [i for i, line in enumerate(ci_lines) if re.match(r'export PATH="\$VIRTUAL_ENV/bin:\$PATH"', line)]
    assert made and made[0] < command, ".ci/run must create a fresh venv (python3 -m venv) before the tests"
    assert first_on_path and first_on_path[0] < command, ".ci/run must put the fresh venv first on PATH"
    assert any(re.search(r"=\"?\$\(mktemp -d\)", line) for line in ci_lines[:made[0]]), (
        "make the venv in a new temporary directory (mktemp -d), outside the checkout")


def test_root_users_are_told_about_allow_root():
    assert "--allow-root" in README, "say that JupyterLab needs --allow-root when run as root (e.g. in a container)"


def test_every_notebook_is_listed_with_a_colab_badge_that_opens_it():
    assert len(NOTEBOOKS) == 6
    for name in NOTEBOOKS:
        assert f"](notebooks/{name})" in README, f"README's table does not link notebooks/{name}"
        colab = f"https://colab.research.google.com/github/{REPOSITORY}/blob/main/notebooks/{name}"
        assert colab in README, f"README has no Colab badge for {name} (expected a link to {colab})"


def test_binder_badge_opens_jupyterlab_at_notebook_01():
    binder = f"https://mybinder.org/v2/gh/{REPOSITORY}/main?urlpath=lab/tree/notebooks/{NOTEBOOKS[0]}"
    assert NOTEBOOKS[0] == "01_tokenization.ipynb"
    assert f"(https://mybinder.org/badge_logo.svg)]({binder})" in README
