"""Writes the adversarial submissions in this folder (run it after changing the list; the files are committed).

Every notebook answers the tiny course of grading_tiny_checks.py: `double` (2 points), `square` (3 points).
EXPECTED (in test_grading.py) says what each must score.
"""

import json
from pathlib import Path

import nbformat

HERE = Path(__file__).parent
SETUP = "import torch\nimport numpy as np\nfrom coursekit.checks import check_double, check_square"
DOUBLE = "def double(x):\n    ### BEGIN SOLUTION\n    return 2 * x\n    ### END SOLUTION"
SQUARE = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION"


def exercise(source, name, points):
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["coursekit"] = {"exercise": name, "points": points}
    return cell


def notebook(*cells):
    made = []
    for cell in cells:
        made.append(cell if not isinstance(cell, str) else nbformat.v4.new_code_cell(cell))
    return nbformat.v4.new_notebook(cells=made)


def course(double=DOUBLE, square=SQUARE, before_square=(), after=()):
    return notebook(SETUP, exercise(double, "double", 2), "check_double(double)", *before_square,
                    exercise(square, "square", 3), "check_square(square)", *after)


SOLUTION = course()
CORPUS = {
    "infinite_loop_cell": course(before_square=["while True:\n    pass"]),
    "infinite_loop_in_function": course(square="def square(x):\n    while True:\n        pass"),
    "swallows_timeouts": course(square="def square(x):\n    while True:\n        try:\n            while True:\n"
                                       "                pass\n        except BaseException:\n            pass"),
    "memory_bomb_cell": course(before_square=["hog = []\nwhile True:\n    hog.append(np.empty(2**27))  # 1 GiB each, never touched"]),
    "memory_bomb_in_function": course(square="def square(x):\n    hog = bytearray(2**40)\n    return x * x"),
    "fork_bomb": course(before_square=["import subprocess, os\nfor _ in range(50):\n"
                                       "    try:\n        subprocess.Popen(['sleep', '60'])\n"
                                       "    except Exception as error:\n        print(error)\n"
                                       "for _ in range(50):\n    try:\n        os.fork()\n"
                                       "    except Exception as error:\n        print(error)"]),
    "sys_exit": course(before_square=["import sys\nsys.exit(1)"]),
    "os_exit_cell": course(before_square=["import os\nos._exit(0)"]),
    "os_exit_in_function": course(square="def square(x):\n    import os\n    os._exit(1)"),
    "kill_itself": course(before_square=["import os, signal\nos.kill(os.getpid(), signal.SIGKILL)"]),
    "segfault_ctypes": course(before_square=["import ctypes\nctypes.string_at(0)"]),
    "segfault_in_function": course(square="def square(x):\n    import ctypes\n    ctypes.string_at(0)\n    return x * x"),
    "monkeypatch": course(
        double="def double(x):\n    return x  # wrong",
        before_square=["import builtins, torch, numpy as np\nimport coursekit.checks as checks\n"
                       "torch.allclose = lambda *a, **k: True\nnp.allclose = lambda *a, **k: True\n"
                       "np.array_equal = lambda *a, **k: True\ntorch.equal = lambda *a, **k: True\n"
                       "checks.check_double = lambda *a: None\n"
                       "builtins.AssertionError = type('Quiet', (Exception,), {})"]),
    "patches_the_checks": course(
        double="def double(x):\n    return x  # wrong",
        before_square=["import coursekit.checks.core as core\ncore.Check.judge = lambda self, r: []"]),
    "lying_objects": course(
        double="class Liar:\n    def __eq__(self, other):\n        return True\n    def __bool__(self):\n"
               "        return True\n\ndef double(x):\n    return Liar()",
        square="class Number(int):\n    def __eq__(self, other):\n        return True\n\n"
               "def square(x):\n    return Number(0)"),
    "imports_reference": course(
        double="def double(x):\n    from grading_tiny_checks import reference_double\n    return reference_double(x)",
        square="def square(x):\n    import coursekit.checks.core\n    return x * x"),
    "imports_reference_early": course(
        before_square=["try:\n    import grading_tiny_checks as reference\nexcept ImportError:\n    reference = None"],
        square="def square(x):\n    return reference.reference_double(x) // 2 * x"),
    "reads_solutions": course(square=(
        "import coursekit, pathlib, os\nstolen = []\n"
        "for guess in [pathlib.Path(coursekit.__file__).parent / 'checks' / 'core.py',\n"
        "              pathlib.Path(coursekit.__file__).parent.parent / 'solutions',\n"
        "              pathlib.Path(f'/proc/{os.getppid()}/cwd'), pathlib.Path(f'/proc/{os.getppid()}/cmdline')]:\n"
        "    try:\n        stolen.append(guess.read_text() if guess.is_file() else os.listdir(guess))\n"
        "    except Exception as error:\n        stolen.append(repr(error))\n\n"
        "def square(x):\n    return x * x")),
    "frames_to_probe": course(square=(
        "import sys\n\ndef square(x):\n    probe_globals = sys._getframe(1).f_globals\n"
        "    return probe_globals['reference_double'](x) // 2 * x")),
    "writes_everywhere": course(before_square=[
        "import os, glob\nfor target in ['/tmp/pwned-by-student', os.path.expanduser('~/../pwned'),\n"
        "               f'/proc/{os.getppid()}/cwd/pwned']:\n    try:\n"
        "        open(target, 'w').write('x')\n    except Exception as error:\n        print(error)\n"
        "for victim in glob.glob('/tmp/*/grades.csv') + glob.glob('/tmp/**/feedback', recursive=True):\n"
        "    try:\n        os.remove(victim)\n    except Exception as error:\n        print(error)"]),
    "forges_results": course(square=(
        "import os, json, struct, hashlib\n"
        "def forged(message):\n    payload = json.dumps(message).encode()\n"
        "    return struct.pack('>Q32s', len(payload), hashlib.sha256(payload).digest()) + payload\n"
        "for name, data in [('square(3)', 9), ('square(-2)', 4)]:\n"
        "    frame = forged({'type': 'test', 'exercise': 'square', 'test': name, 'data': data})\n"
        "    for fd in range(3, 1024):\n        try:\n            os.write(fd, frame)\n"
        "        except OSError:\n            pass\n\n"
        "def square(x):\n    raise NotImplementedError()")),
    "deleted_cells": notebook(SETUP, exercise(DOUBLE, "double", 2), "check_double(double)"),
    "reordered_cells": notebook(SETUP, "check_square(square)", exercise(SQUARE, "square", 3),
                                "check_double(double)", exercise(DOUBLE, "double", 2)),
    "duplicated_cells": course(double="def double(x):\n    return 3 * x  # first try",
                               before_square=[exercise(DOUBLE, "double", 2), "check_double(double)"]),
    "renamed_function": notebook(SETUP, exercise(DOUBLE.replace("def double", "def my_double"), "double", 2),
                                 "check_double(my_double)", exercise(SQUARE, "square", 3), "check_square(square)"),
    "metadata_stripped": notebook(SETUP, DOUBLE, "check_double(double)", SQUARE, "check_square(square)"),
}


def main():
    for name, made in CORPUS.items():
        nbformat.write(made, HERE / f"{name}.ipynb")
    solved = nbformat.writes(SOLUTION)
    (HERE / "truncated.ipynb").write_text(solved[: solved.index("def square")])
    (HERE / "not_a_notebook.ipynb").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\n")
    (HERE / "python_script.ipynb").write_text(f"{SETUP}\n\n{DOUBLE}\n\n{SQUARE}\n")
    (HERE / "non_utf8.ipynb").write_bytes(solved.encode().replace(b"return 2 * x", b"return 2 * x  # caf\xe9", 1))
    (HERE / "not_json_cells.ipynb").write_text(json.dumps({"cells": "nope", "nbformat": 4}))


if __name__ == "__main__":
    main()
