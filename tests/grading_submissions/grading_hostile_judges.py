"""A check whose judges do what a claim crafted against a real judge makes it do: allocate what the claim asks
for, or loop for as long as the claim says; tests/test_grading_channel.py shows the grader survives both."""

from coursekit.checks.core import Check, Test


def _allocates(got):
    return None if len(bytearray(int(got))) == 1 else "expected a length of 1"  # bytearray(10**12): 1 TB


def _loops(got):
    while got:  # a judge that replays a claimed sequence step by step, here forever
        pass
    return None


check_greedy = Check("greedy", ["anything"], [
    Test("allocates what it is told", lambda f: f(), _allocates),
    Test("loops while it is told", lambda f: f(), _loops),
    Test("honest", lambda f: f(), lambda got: None if got == 1 else f"expected 1, got {got}"),
])
