"""The sandbox's second line: clear messages for what the wall (containment.py) stops anyway.

Nothing here is what keeps student code in: the reference modules are not in the sandbox at all and the OS
namespaces hide everything else. What this adds, installed by the worker before student code runs:
- importing a module the sandbox was not handed raises an ImportError that says why ("coursekit.sampling holds
  the answers to this notebook's exercises…") instead of "No module named …", and is noted for the student;
- starting processes, sending signals and opening sockets are noted for the instructor's review (they are
  allowed to fail or succeed inside the sandbox; they change no points).
"""

from __future__ import annotations

import importlib.abc
import sys

REVIEWED_EVENTS = {"subprocess.Popen": "started a process", "os.system": "started a shell command",
                   "os.exec": "replaced the kernel with another program", "os.posix_spawn": "started a process",
                   "os.fork": "forked the kernel", "os.kill": "sent a signal", "os.killpg": "sent a signal",
                   "socket.connect": "opened a network connection", "socket.bind": "opened a network socket"}


class Unavailable(importlib.abc.MetaPathFinder):
    """Refuses the modules the grader kept out of this sandbox, with a note saying why."""

    def __init__(self, notes: dict[str, str], report):
        self.notes, self.report = notes, report

    def find_spec(self, name, path=None, target=None):
        for module, note in self.notes.items():
            if name == module or name.startswith(module + "."):
                self.report("import", note)
                raise ImportError(note, name=name)
        return None


def install(notes: dict[str, str], report) -> None:
    """Install the import notes and the review hook; `report(kind, detail)` sends a flag to the parent."""
    sys.meta_path.insert(0, Unavailable(notes, report))
    seen: set[str] = set()
    reviewed = tuple(REVIEWED_EVENTS.items())  # an immutable copy: clearing the module's dict changes nothing
    names = frozenset(name for name, _ in reviewed)  # every audit event passes here: most leave at this test

    def hook(event, args):
        if event not in names:
            return
        what = next(what for name, what in reviewed if name == event)
        if what not in seen:
            seen.add(what)
            report("review", f"{what} ({event})")

    sys.addaudithook(hook)
