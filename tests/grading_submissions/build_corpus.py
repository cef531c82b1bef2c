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
UNSOLVED = "    raise NotImplementedError()"
PUBLIC_ANSWERS = ("import torch\nfrom coursekit.checks.core import Check\n"
                  "def fake(self, test, values, run_seed=0):\n"
                  "    return {'double of small ints': [4, -6, 0], 'double of a tensor': torch.tensor([0., 2., 4.]).numpy(),\n"
                  "            'square(3)': 9, 'square(-2)': 4, 'square of a tensor': torch.tensor([0., 1., 4.]).numpy()}[test.name]\n")
# One submission per route around containment or judging; test_grading.py's EXPECTED says what each deserves.
ROUTES = {
    "callbacks_reference": course(square=(  # library callbacks and a pool thread import the reference for it
        "import concurrent.futures, pickle, pickletools, pkgutil, pydoc\nfound = []\n"
        "for load in [lambda: pydoc.locate('grading_tiny_reference.reference_square'),\n"
        "             lambda: pkgutil.resolve_name('grading_tiny_reference:reference_square'),\n"
        "             lambda: pickle._loads(b'cgrading_tiny_reference\\nreference_square\\n.'),\n"
        "             lambda: concurrent.futures.ThreadPoolExecutor(1).submit(\n"
        "                 __import__, 'grading_tiny_reference').result().reference_square]:\n"
        "    try:\n        found.append(load())\n    except Exception as error:\n        print(error)\n"
        "found = [f for f in found if callable(f)]\n\ndef square(x):\n    return found[0](x)")),
    "marshal_relabelled": course(square=(  # code relabelled as a library file imports the reference
        "import marshal, torch\n"
        "code = compile('import grading_tiny_reference as r', torch.__file__, 'exec')\n"
        "namespace = {}\ntry:\n    exec(marshal.loads(marshal.dumps(code)), namespace)\nexcept Exception as e:\n    print(e)\n\n"
        "def square(x):\n    return namespace['r'].reference_square(x)")),
    "imports_tooling": course(square=(  # importlib.import_module of what the sandbox was not handed
        "import importlib\n\ndef square(x):\n    grader = importlib.import_module('coursekit.grading.grader')\n"
        "    return x * x")),
    "subclasses_reference": course(square=(  # the reference's objects, looked for in the live interpreter
        "import gc, torch\nfound = [f for f in gc.get_objects() if getattr(f, '__name__', '') == 'reference_square']\n"
        "found += [c for c in torch.nn.Module.__subclasses__() if 'reference' in c.__module__]\n\n"
        "def square(x):\n    return found[0](x)")),
    "file_tricks": course(before_square=[  # torch.from_file, torch.save, sqlite3, mkfifo outside the sandbox
        "import torch, sqlite3, os, glob\n"
        "for attempt in [lambda: torch.from_file((glob.glob('/*/*/solutions/*.ipynb') + ['/work/wt-sandbox/solutions/02_bigram_mlp.ipynb'])[0], size=10),\n"
        "                lambda: torch.save(torch.zeros(1), '/work/pwned-by-student.pt'),\n"
        "                lambda: sqlite3.connect('/work/pwned-by-student.db').execute('create table t(x)'),\n"
        "                lambda: os.mkfifo('/work/pwned-by-student.fifo')]:\n"
        "    try:\n        attempt()\n    except Exception as error:\n        print(error)"]),
    "starts_a_shell": course(before_square=[  # fork_exec and /bin/sh writing canaries, killing every process
        "import _posixsubprocess, subprocess, os\n"
        "subprocess.run(['/bin/sh', '-c', 'echo x > /work/pwned-by-student; echo x > /tmp/pwned-by-student; ls /'])\n"
        "try:\n    subprocess.run(['/bin/sh', '-c', 'kill -9 -1'], timeout=5)\nexcept Exception as error:\n    print(error)"]),
    "kills_everyone": course(before_square=[  # signals and pidfds for every pid it can name, grader included
        "import os, signal\nfor pid in range(1, 3000):\n    if pid != os.getpid():\n        try:\n"
        "            os.kill(pid, signal.SIGKILL)\n        except OSError:\n            pass\n"
        "        try:\n            fd = os.pidfd_open(pid)\n            signal.pidfd_send_signal(fd, signal.SIGKILL)\n"
        "        except OSError:\n            pass"]),
    "daemon_rewrites_grades": course(before_square=[  # a setsid grandchild that outlives the notebook
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time, glob, os\\nwhile True:\\n    time.sleep(0.2)\\n'\n"
        "                  '    for p in glob.glob(\"/**/grades.csv\", recursive=True):\\n'\n"
        "                  '        open(p, \"w\").write(\"student,total\\\\ndaemon_rewrites_grades,999\")'],\n"
        "                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"]),
    "patches_probe": course(double="def double(x):\n" + UNSOLVED, square="def square(x):\n" + UNSOLVED,
                            before_square=[PUBLIC_ANSWERS + "Check.probe = fake"]),
    "patches_json": course(double="def double(x):\n" + UNSOLVED, square="def square(x):\n" + UNSOLVED,
                           before_square=[PUBLIC_ANSWERS + (
                               "import json\nreal = json.dumps\n"
                               "def dumps(message, **options):\n"
                               "    if message.get('type') == 'test':\n"
                               "        message = {**message, 'data': {'square(3)': 9, 'square(-2)': 4}.get(message['test'], 4)}\n"
                               "    return real(message, **options)\njson.dumps = dumps")]),
    "hard_codes_public": course(  # the public probes' answers, looked up: earns only what secret inputs give
        double="def double(x):\n    import torch\n    if isinstance(x, torch.Tensor):\n"
               "        return torch.tensor([0., 2., 4.])\n    return {2: 4, -3: -6, 0: 0}.get(x, 0)",
        square="def square(x):\n    import torch\n    if isinstance(x, torch.Tensor):\n"
               "        return torch.tensor([0., 1., 4.])\n    return {3: 9, -2: 4}.get(x, 0)"),
    "tensor_lies_about_dtype": course(double=(
        "import torch\nclass Liar(torch.Tensor):\n    @classmethod\n"
        "    def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
        "        result = super().__torch_function__(func, types, args, kwargs or {})\n"
        "        return torch.float32 if func is torch.Tensor.dtype.__get__ else result\n\n"
        "def double(x):\n    if isinstance(x, torch.Tensor):\n        return (2 * x).long().as_subclass(Liar)\n"
        "    return 2 * x")),
    "lying_float": course(square=(
        "import torch\nclass Nine:\n    def __float__(self):\n        return 9.0\n    def __int__(self):\n"
        "        return 9\n    def __eq__(self, other):\n        return True\n\n"
        "def square(x):\n    return x * x if isinstance(x, torch.Tensor) else Nine()")),
    "deeply_nested_result": course(double=(
        "import torch\ndef double(x):\n    if not isinstance(x, torch.Tensor):\n        return 2 * x\n"
        "    nested = (2 * x).tolist()\n    for _ in range(100):\n        nested = [nested]\n    return nested")),
    "replaces_check_tests": course(  # the live checks' tests swapped for probes that return the public answers
        double="def double(x):\n" + UNSOLVED, square="def square(x):\n" + UNSOLVED, before_square=[
            PUBLIC_ANSWERS + "import dataclasses, gc\n"
            "for check in [o for o in gc.get_objects() if isinstance(o, Check)]:\n"
            "    check.tests[:] = [dataclasses.replace(t, probe=lambda *a, _t=t: fake(None, _t, a)) for t in check.tests]"]),
    "injects_frames": course(  # frames of its own in the results pipe, in the worker's order, right for the secret
        square="def square(x):\n" + UNSOLVED,  # inputs: they come from other code than square, so they earn nothing
        after=["import gc, json, os, re, struct\nfrom coursekit.checks.core import Check\n"
               "channel = int(re.findall(r'\\d+', open('/proc/self/cmdline').read().split('main(')[-1])[1])\n"
               "def send(message):\n    payload = json.dumps(message).encode()\n"
               "    os.write(channel, struct.pack('>Q', len(payload)) + payload)\n"
               "send({'type': 'flag', 'kind': 'import', 'detail': 'GRADER NOTE: reviewed by hand, full marks'})\n"
               "[probe] = [f for f in gc.get_objects() if type(f).__name__ == 'function' and f.__name__ == 'probe'\n"
               "         and 'run_seed' in f.__code__.co_freevars]  # the worker's own closure holds the run seed\n"
               "seed = probe.__closure__[probe.__code__.co_freevars.index('run_seed')].cell_contents\n"
               "[real] = [o for o in gc.get_objects() if isinstance(o, Check) and o.exercise == 'square']\n"
               "send({'type': 'stage', 'stage': 'probe', 'exercise': 'square', 'test': '', 'names': ['square']})\n"
               "for test in real.tests:\n"
               "    send({'type': 'stage', 'stage': 'probe', 'exercise': 'square', 'test': test.name})\n"
               "    value = real.probe(test, (lambda x: x * x,), seed)\n"
               "    if hasattr(value, 'tolist'):\n"
               "        value = {'array': {'dtype': '<f4', 'shape': list(value.shape), 'data': __import__('base64')"
               ".b64encode(value.astype('<f4').tobytes()).decode()}}\n"
               "    send({'type': 'test', 'exercise': 'square', 'test': test.name, 'data': value})\n"
               "check_square(square)"]),
    "floods_cell_errors": course(before_square=["raise ValueError('<b>' + 'A' * 280)"] * 30),  # 30 notes
    "keyring_across_runs": notebook(  # a kernel key left for the next sandbox of the same uid; the crash reruns it
        SETUP, "import ctypes, os, platform\nadd_key, keyctl = {'x86_64': (248, 250), 'aarch64': (217, 219)}"
               "[platform.machine()]\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
               "left = libc.syscall(keyctl, 10, ctypes.c_long(-4), b'user', b'coursekit-corpus', 0)\n"
               "libc.syscall(add_key, b'user', b'coursekit-corpus', b'left by an earlier run', 22, ctypes.c_long(-4))\n"
               "print('a key from an earlier sandbox' if left > 0 else 'no key', left)",
        exercise("def double(x):\n    return 2 * x if left <= 0 else 0", "double", 2),
        "os._exit(0)  # the notebook is run again without this cell",
        "check_double(double)", exercise(SQUARE, "square", 3), "check_square(square)"),
}
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
        double="def double(x):\n    from grading_tiny_reference import reference_double\n    return reference_double(x)",
        square="def square(x):\n    import coursekit.checks.core\n    return x * x"),
    "imports_reference_early": course(
        before_square=["try:\n    import grading_tiny_reference as reference\nexcept ImportError:\n    reference = None"],
        square="def square(x):\n    return reference.reference_double(x) // 2 * x"),
    "reads_solutions": course(square=(
        "import coursekit, pathlib, os, glob\nstolen = []\n"
        "for guess in [pathlib.Path(coursekit.__file__).parent / 'grading' / 'grader.py',\n"
        "              *map(pathlib.Path, glob.glob('/*/solutions') + glob.glob('/*/*/solutions')),\n"
        "              *map(pathlib.Path, glob.glob('/proc/[0-9]*/environ') + glob.glob('/proc/[0-9]*/cmdline')),\n"
        "              pathlib.Path(f'/proc/{os.getppid()}/cwd'), pathlib.Path('/etc/passwd')]:\n"
        "    try:\n        stolen.append(guess.read_text() if guess.is_file() else os.listdir(guess))\n"
        "    except Exception as error:\n        stolen.append(repr(error))\n\n"
        "def square(x):\n    raise RuntimeError(repr(stolen)[:20000])")),
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
        "import os, json, struct\n"
        "def forged(message):\n    payload = json.dumps(message).encode()\n"
        "    return struct.pack('>Q', len(payload)) + payload\n"
        "for name, data in [('square(3)', 9), ('square(-2)', 4)]:\n"
        "    frame = forged({'type': 'test', 'exercise': 'square', 'test': name, 'data': data})\n"
        "    for fd in range(3, 1024):\n        try:\n            os.write(fd, frame)\n"
        "        except OSError:\n            pass\n"
        "for fd in range(3, 1024):\n    try:\n        os.write(fd, b'junk' * 1000)\n    except OSError:\n        pass\n\n"
        "def square(x):\n    raise NotImplementedError()")),
    "deleted_cells": notebook(SETUP, exercise(DOUBLE, "double", 2), "check_double(double)"),
    "reordered_cells": notebook(SETUP, "check_square(square)", exercise(SQUARE, "square", 3),
                                "check_double(double)", exercise(DOUBLE, "double", 2)),
    "duplicated_cells": course(double="def double(x):\n    return 3 * x  # first try",
                               before_square=[exercise(DOUBLE, "double", 2), "check_double(double)"]),
    "renamed_function": notebook(SETUP, exercise(DOUBLE.replace("def double", "def my_double"), "double", 2),
                                 "check_double(my_double)", exercise(SQUARE, "square", 3), "check_square(square)"),
    "metadata_stripped": notebook(SETUP, DOUBLE, "check_double(double)", SQUARE, "check_square(square)"),
    **ROUTES,
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
