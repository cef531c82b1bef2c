"""The order in which a sandbox's worker reports, as the grader expects it: any frame out of that order is junk.

Student code shares the worker's interpreter, so it can always write frames of its own into the results pipe;
nothing in a frame can prove who wrote it. What the grader can do is know exactly what the worker says next:
"ready", then each cell of the job in order (skipped ones not at all), at most one error per cell, and after
the cell an exercise is probed at, that exercise's probe: its start, then each of its check's tests in the
check's order (those already judged in an earlier run left out), each announced before its one result; then
"end", the exercises probed at the end, and "done". A frame that does not fit (a second result for a test, a
result for a test that is not running, a cell out of turn, an unknown exercise) means someone else wrote into
the pipe, so the run ends there as "junk in the channel" and is flagged. An injected frame that does fit the
order is still only a claim about the student's code, judged against secret inputs like any other: it can
earn only what a correct computation on inputs it never saw would earn, and when the real worker then says
its own next frame, that repeats one already seen and ends the run.

>>> order = Order(cells=[0, 2], exercises=[{"exercise": "f", "after_cell": 2}], tests={"f": ["a", "b"]},
...               skip_tests={"f": ["a"]})
>>> for message in [{"type": "ready"}, {"type": "stage", "stage": "cell", "cell": 0},
...                 {"type": "stage", "stage": "cell", "cell": 2},
...                 {"type": "stage", "stage": "probe", "exercise": "f", "test": ""},
...                 {"type": "stage", "stage": "probe", "exercise": "f", "test": "b"}]:
...     order.check(message)
>>> order.check({"type": "test", "exercise": "f", "test": "a", "data": 1})
Traceback (most recent call last):
...
coursekit.grading.wire.WireError: a result for f / 'a' while f / 'b' is running
"""

from __future__ import annotations

from coursekit.grading.wire import WireError


class Order:
    """Checks each message of one run against what the worker says next; `check` raises WireError if it cannot be."""

    def __init__(self, cells: list[int], exercises: list[dict], tests: dict[str, list[str]],
                 skip_tests: dict[str, list[str]]):
        self.cells = list(cells)  # the cells still to be announced, in order
        self.points = {item["exercise"]: item["after_cell"] for item in exercises}  # None: probed at the end
        self.tests = {name: [t for t in names if t not in skip_tests.get(name, ())] for name, names in tests.items()}
        self.state = "startup"  # startup, ready, cell, end, done
        self.cell = None  # the last cell announced
        self.cell_errors: set[int] = set()
        self.exercise = None  # the exercise being probed, and its test ("" before the first)
        self.test = None
        self.answered = False  # the running test's result arrived
        self.started: set[str] = set()

    def check(self, message: dict) -> None:
        kind, stage = message.get("type"), message.get("stage")
        if kind == "flag":  # notes for the instructor's review: any time (they change no points)
            return
        if self.state == "startup":
            if kind != "ready":
                raise WireError(f"{kind!r} before the worker was ready")
            self.state = "ready"
            return
        if self.state == "done":
            raise WireError(f"{kind!r} after the worker said it was done")
        if kind == "stage" and stage == "cell":
            if self.state == "end" or not self.cells or message.get("cell") != self.cells[0]:
                raise WireError(f"cell {str(message.get('cell'))[:20]} announced out of turn")
            self.cell = self.cells.pop(0)
            self._leave_probe()
            self.state = "cell"
        elif kind == "cell_error":
            if self.state != "cell" or self.exercise is not None or message.get("cell") != self.cell or \
                    self.cell in self.cell_errors:
                raise WireError("a cell error out of turn")
            self.cell_errors.add(self.cell)
        elif kind == "stage" and stage == "probe":
            self._probe_stage(message.get("exercise"), message.get("test"))
        elif kind == "test":
            if (message.get("exercise"), message.get("test")) != (self.exercise, self.test) or not self.test \
                    or self.answered:
                running = f"{self.exercise} / {self.test!r} is running" if self.test else "no test is running"
                raise WireError(f"a result for {str(message.get('exercise'))[:40]} / {str(message.get('test'))[:60]!r}"
                                f" while {running}" if not self.answered else
                                f"a second result for {self.exercise} / {self.test!r}")
            self.answered = True
        elif kind == "missing":
            name = message.get("exercise")
            if name != self.exercise and not self._due(name):
                raise WireError(f"an exercise reported missing out of turn ({str(name)[:40]})")
            self._leave_probe()
            self.started.add(name)
        elif kind == "stage" and stage == "end":
            if self.state == "end":
                raise WireError("a second end")
            self._leave_probe()
            self.state = "end"
        elif kind == "done":
            if self.state != "end" or self.exercise is not None and self.test and not self.answered:
                raise WireError("done before the end")
            self.state = "done"

    def _due(self, name) -> bool:
        """Whether exercise `name` may start now: not started yet, and at its probe point (or at the end)."""
        return name in self.points and name not in self.started and (
            self.state == "end" or (self.state == "cell" and self.points[name] == self.cell))

    def _probe_stage(self, name, test) -> None:
        if test == "":  # the exercise's probing starts
            if not self._due(name):
                raise WireError(f"probing {str(name)[:40]} out of turn")
            if self.exercise is not None and self.test and not self.answered:
                raise WireError(f"{self.exercise} / {self.test!r} ended without a result")
            self.exercise, self.test, self.answered = name, "", False  # started once a test (or missing) follows
            return
        if name != self.exercise or (self.test and not self.answered):
            raise WireError(f"test {str(test)[:60]!r} of {str(name)[:40]} announced out of turn")
        remaining = self.tests.get(name, [])
        if not remaining or remaining[0] != test:
            raise WireError(f"test {str(test)[:60]!r} of {name} announced out of turn")
        remaining.pop(0)
        self.started.add(name)
        self.test, self.answered = test, False

    def _leave_probe(self) -> None:
        if self.exercise is not None and self.test and not self.answered:
            raise WireError(f"{self.exercise} / {self.test!r} ended without a result")
        self.exercise, self.test, self.answered = None, None, False
