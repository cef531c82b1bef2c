"""In a real kernel, a failing check shows its message and the student's own lines, never a coursekit file."""

import os
from pathlib import Path

import nbclient
import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]

CELLS = [
    f"import sys\nsys.path.insert(0, {str(ROOT)!r})\n"
    "from coursekit.checks import check_encode, check_pair_counts, check_bigram_one_hot_mlp",
    "def encode(text):\n    return [ord(c) for c in text]",
    "check_encode(encode)",  # 2: a judge's message
    "def pair_counts(ids):\n    counts = {}\n    for pair in zip(ids, ids[1:]):\n"
    "        counts[pair] = counts[pair] + 1  # KeyError: the student's line\n    return counts",
    "x = 1\ncheck_pair_counts(pair_counts)",  # 4: an error raised by the student's code
    "def stub(ids):\n    raise NotImplementedError('write pair_counts')",
    "check_pair_counts(stub)",  # 6: not done yet
    "check_bigram_one_hot_mlp(42)",  # 7: called with the wrong kind of object
]


@pytest.fixture(scope="module")
def errors():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    nbclient.NotebookClient(notebook, timeout=180, allow_errors=True, kernel_name="python3",
                            resources={"metadata": {"path": str(ROOT)}}).execute()
    found = {}
    for index, cell in enumerate(notebook.cells):
        for output in cell.outputs:
            if output.output_type == "error":
                found[index] = {"ename": output.ename, "evalue": output.evalue, "text": "\n".join(output.traceback)}
    return found


def assert_no_coursekit_frames(text):
    assert "coursekit" + os.sep not in text and "core.py" not in text and "site-packages" not in text, text


def test_only_the_failing_cells_fail(errors):
    assert sorted(errors) == [2, 4, 6, 7]


def test_a_failing_check_shows_its_message_and_the_calling_line(errors):
    error = errors[2]
    assert_no_coursekit_frames(error["text"])
    assert "Unicode code points (ord)" in error["text"]
    assert "----> 1 check_encode(encode)" in error["text"]
    assert error["ename"] == "AssertionError"


def test_an_error_in_student_code_shows_the_students_line(errors):
    error = errors[4]
    assert_no_coursekit_frames(error["text"])
    assert "your code raised KeyError" in error["text"]
    assert "----> 2 check_pair_counts(pair_counts)" in error["text"]
    assert "counts[pair] = counts[pair] + 1" in error["text"] and "in pair_counts" in error["text"]


def test_an_unfinished_exercise_shows_its_own_raise(errors):
    error = errors[6]
    assert_no_coursekit_frames(error["text"])
    assert error["ename"] == "NotImplementedError" and "write pair_counts" in error["text"]
    assert "raise NotImplementedError" in error["text"]


def test_a_wrong_argument_says_what_the_check_takes(errors):
    error = errors[7]
    assert_no_coursekit_frames(error["text"])
    assert error["ename"] == "TypeError" and "the class BigramOneHotMLP itself" in error["text"]
