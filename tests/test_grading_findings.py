"""Red team 3's findings against the landed grader (/work/redteam3/FINDINGS.md), one test each: the route it
found, rebuilt here, must now earn nothing, while the reference still earns everything."""

import copy
import errno
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn as nn

from coursekit import attention, gpt
from coursekit.checks import CHECKS
from coursekit.grading import containment, grader, judging, sandbox

SEED = 977  # a grading run's seed (not the public one)


def fraction(check_name, answer):
    check = CHECKS[check_name]
    return check.fraction(check.judge(check.probe_all((answer,), SEED), SEED))


class ZeroMLP(nn.Module):
    """F1: every Linear weight zeroed in __init__, so the judge's replay of the found weights is just the bias."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        for layer in (self.c_fc, self.c_proj):
            nn.init.zeros_(layer.weight)

    def forward(self, x):
        return self.dropout(self.c_proj.bias.expand_as(x).clone())


class ZeroBlock(nn.Module):
    """F1: no LayerNorm and a parallel wiring, hidden by zeroing every matrix."""

    def __init__(self, config):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn, self.mlp = gpt.CausalSelfAttention(config), ZeroMLP(config)
        with torch.no_grad():
            for parameter in self.parameters():
                if parameter.dim() == 2:
                    parameter.zero_()

    def forward(self, x):
        attended, _ = self.attn(x)
        return x + attended + self.mlp(x)


def test_f1_zeroed_weights_no_longer_pass_the_mlp_and_block_checks():
    assert fraction("check_mlp", gpt.MLP) == 1.0 and fraction("check_block", gpt.Block) == 1.0
    assert fraction("check_mlp", ZeroMLP) < 0.5
    assert fraction("check_block", ZeroBlock) < 0.5


def test_f2_every_sandbox_run_gets_a_uid_never_used_before():
    """F2: with --jobs 1 every sandbox got the same uid, and a key one student left in its keyring reached the
    next (the corpus's keyring_across_runs shows it end to end, across a notebook's own restarts)."""
    uids = []
    for _ in range(3):
        with containment.sandbox_uid() as uid:
            uids.append(uid)
    assert len(set(uids)) == 3 and all(uid >= 1_000_000 for uid in uids)


@pytest.mark.skipif(containment.level() != "bubblewrap" or containment.seccomp_filter() is None,
                    reason="needs the bubblewrap sandbox on x86_64 or aarch64")
def test_f2_the_kernel_keyrings_and_other_unnamespaced_calls_are_refused_inside_the_sandbox(tmp_path):
    """F2's channel closed at its source: whatever the uid, a sandbox cannot add or read a keyring key (nor use
    bpf or io_uring), while ordinary calls and torch work."""
    calls = {"x86_64": (248, 250, 321, 425), "aarch64": (217, 219, 280, 425)}[platform.machine()]
    boot = ("import ctypes, os, torch\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
            "add_key, keyctl, bpf, io_uring_setup = " + repr(calls) + "\nresults = []\n"
            "for call, args in ((add_key, (b'user', b'k', b'v', 1, ctypes.c_long(-3))), (keyctl, (0, -3)), "
            "(bpf, (0, None, 0)), (io_uring_setup, (1, None))):\n"
            "    results.append((libc.syscall(call, *args), ctypes.get_errno()))\n"
            "print(results, os.getpid() > 0, float(torch.ones(3).sum()))")
    staged = tmp_path / "staged"
    staged.mkdir()
    staged.chmod(0o755)
    argv, options = containment.command(boot, str(staged), [], 16 * 2**20)
    try:
        seen = subprocess.run(argv, capture_output=True, text=True, timeout=120, **options)
    finally:
        for fd in options["pass_fds"]:
            os.close(fd)
    assert seen.stdout.strip() == f"{[(-1, errno.EPERM)] * 4} True 3.0", seen.stderr


@pytest.mark.skipif(containment.level() != "bubblewrap", reason="needs the bubblewrap sandbox")
def test_f4_a_pip_installed_coursekit_is_an_empty_folder_inside_the_sandbox(tmp_path, monkeypatch):
    """F4: with coursekit pip-installed, the bound site-packages held the full reference next to the trimmed copy."""
    site = tmp_path / "python" / "lib" / "python3.11" / "site-packages"
    (site / "coursekit").mkdir(parents=True)
    (site / "coursekit" / "gpt.py").write_text("REFERENCE = True\n")
    (site / "neighbour.py").write_text("")
    for path in [tmp_path, *(tmp_path / "python").rglob("*")]:
        path.chmod(0o755)
    roots = containment.python_roots()
    monkeypatch.setattr(containment, "python_roots", lambda: [*roots, str(tmp_path / "python")])
    assert containment.installed_coursekit() == [str((site / "coursekit").resolve())]
    staged = tmp_path / "staged"
    staged.mkdir()
    staged.chmod(0o755)
    boot = f"import os; print(sorted(os.listdir({str(site)!r})), os.listdir({str(site / 'coursekit')!r}))"
    argv, options = containment.command(boot, str(staged), [], 16 * 2**20)
    seen = subprocess.run(argv, capture_output=True, text=True, timeout=120, **options)
    assert seen.stdout.split("\n")[0] == "['coursekit', 'neighbour.py'] []", seen.stderr[-500:]


class NanHead(nn.Module):
    """F3: no attention at all, only NaN, which passed every `difference > tolerance` of the causality test."""

    def __init__(self, n_embd, head_size, block_size, dropout=0.0):
        super().__init__()
        self.head_size = head_size

    def forward(self, x):
        return torch.full((*x.shape[:2], self.head_size), float("nan"))


class NanMultiHead(nn.Module):
    """F3: sees the future (a sum over every position), hidden by NaN."""

    def __init__(self, n_embd, n_head, block_size, dropout=0.0):
        super().__init__()

    def forward(self, x):
        return x.sum(1, keepdim=True).expand_as(x) * float("nan")


@pytest.mark.parametrize("check_name, answer", [("check_attention_head", NanHead),
                                                ("check_multi_head_attention", NanMultiHead)])
def test_f3_nan_outputs_fail_the_causality_test(check_name, answer):
    check = CHECKS[check_name]
    outcomes = check.judge(check.probe_all((answer,), SEED), SEED)
    future = [o for o in outcomes if "future" in o.test or "past" in o.test]
    assert future and not any(o.passed for o in future), outcomes


class ManyNormsBlock(gpt.Block):
    """F6: 1,500 unused LayerNorms and an output no wiring gives: the block judge tries every ordered pair of
    LayerNorms in every wiring (days of judging)."""

    def __init__(self, config):
        super().__init__(config)
        self.spare = nn.ModuleList(nn.LayerNorm(config.n_embd) for _ in range(1500))

    def forward(self, x):
        return 2 * x


def test_f6_a_claim_that_makes_a_judge_loop_for_days_costs_its_tests_not_the_batch():
    judges = judging.Judges([], memory_bytes=4 * 2**30, seconds=5)
    try:
        started = time.monotonic()
        outcomes = judges.judge("check_block", CHECKS["check_block"].probe_all((ManyNormsBlock,), SEED), SEED)
        took = time.monotonic() - started
        assert not any(o.passed for o in outcomes)
        # The block judge now refuses layers that are not a Block's at once; were it to loop, the deadline would stop
        # each test (a looping judge: tests/test_grading_channel.py).
        assert took < 5 * len(outcomes) + 300, outcomes
        [honest] = judges.judge("check_mlp", CHECKS["check_mlp"].probe_all((gpt.MLP,), SEED), SEED)[:1]
        assert honest.passed  # the batch goes on: the next student is judged as usual
    finally:
        judges.close()


class SpareNormsBlock(gpt.Block):
    """F7: a Block's layers and 246 spare LayerNorms (the layout stays under the judge's old cap of 256 sizes) and an
    output no wiring gives: the block judge tried every ordered pair of LayerNorms in every wiring, about 190 s a
    test, so each test took the whole judge deadline."""

    def __init__(self, config):
        super().__init__(config)
        self.spare = nn.ModuleList(nn.LayerNorm(config.n_embd) for _ in range(246))

    def forward(self, x):
        return 2 * x


def _forged(results, grow):
    """The results with each claim's layout grown by `grow(layout)`: what a sandbox can send whatever its module."""
    forged = copy.deepcopy(results)
    for _, data in forged:
        if "layout" in data:  # (a few of the attention's tests claim outputs only)
            grow(data["layout"])
    return forged


def test_f7_claims_sized_to_make_a_judge_work_are_refused_on_their_sizes_in_no_more_time_than_honest_ones():
    """F7: the judges' cost grew with sizes the claim states (LayerNorms the block judge pairs up, Linears and
    matrices redrawn from the seed): each hostile test took up to the judge deadline. They are refused on their
    sizes first, so a hostile claim costs about what an honest one does, far below one deadline."""
    deadline = 10.0
    honest = {name: CHECKS[name].probe_all((answer,), SEED) for name, answer in
              [("check_block", gpt.Block), ("check_mlp", gpt.MLP),
               ("check_causal_self_attention", attention.CausalSelfAttention)]}
    big = [[4096, 4096, True]] * 120  # 2e9 values to redraw
    hostile = [("check_block", CHECKS["check_block"].probe_all((SpareNormsBlock,), SEED), "248 LayerNorms"),
               ("check_block", _forged(honest["check_block"], lambda layout: layout["linears"].extend(big)),
                "values in all"),
               ("check_mlp", _forged(honest["check_mlp"], lambda layout: layout["linears"].extend(big)),
                "values in all"),
               ("check_causal_self_attention", _forged(honest["check_causal_self_attention"],
                                                       lambda layout: layout.extend([layout[-1]] * 20000)),
                "20002 weight matrices")]
    judges = judging.Judges([], memory_bytes=4 * 2**30, seconds=deadline)
    try:
        judges.judge("check_mlp", honest["check_mlp"], SEED)  # the child's start is not judging: not timed
        started = time.monotonic()
        for name, results in honest.items():
            assert all(o.passed for o in judges.judge(name, results, SEED)), name
        honest_took = time.monotonic() - started
        started = time.monotonic()
        for name, results, named in hostile:
            outcomes = judges.judge(name, results, SEED)
            grown = {test for test, data in results if "layout" in data}
            assert all(not o.passed and (named in o.message or "first" in o.message)
                       for o in outcomes if o.test in grown) and named in outcomes[0].message, outcomes
        hostile_took = time.monotonic() - started
    finally:
        judges.close()
    # Before: the spare LayerNorms alone took the deadline on each of the block's 4 tests.
    assert hostile_took < deadline / 2 + 10 * honest_took, (hostile_took, honest_took)


def test_f7_a_submission_whose_every_claim_takes_the_judge_deadline_spends_its_own_budget_not_the_batch():
    """F7: with no budget per submission, a student whose claims each make a judge run to its deadline cost
    tests x deadline (259 s against 28 s for an honest one). Judging now stops at the submission's budget: its
    remaining tests fail naming that budget, and the next student is judged in full as before."""
    sys.path.insert(0, str(Path(__file__).parent / "grading_submissions"))
    grader.register_check_modules(["grading_hostile_judges"])
    deadline, budget_seconds, exercises = 2.0, 5.0, 30

    def student(claim):
        """Judge one submission of `exercises` exercises, each check_greedy's loop claim and an honest one."""
        budget = sandbox.Budget(budget_seconds, "THE JUDGING BUDGET is used up")
        started = time.monotonic()
        outcomes = [o for _ in range(exercises) for o in judges.judge(
            "check_greedy", [("loops while it is told", claim), ("honest", 1)], 7, budget)
            if o.test != "allocates what it is told"]  # not sent: its outcome is 'did not run'
        return time.monotonic() - started, outcomes

    judges = judging.Judges(["grading_hostile_judges"], memory_bytes=3 * 2**30, seconds=deadline)
    try:
        started = time.monotonic()
        judges.judge("check_greedy", [("honest", 1)], 7)
        start_took = time.monotonic() - started  # starting the child (it is restarted after each stopped loop)
        honest_took, honest = student([])
        hostile_took, hostile = student([1])
        after_took, after = student([])
    finally:
        judges.close()
    assert all(o.passed for o in honest) and all(o.passed for o in after), (honest, after)
    stopped = [o for o in hostile if "longer than 2 s" in o.message or "judging stopped" in o.message]
    spent = [o for o in hostile if o.message == "not judged: THE JUDGING BUDGET is used up"]
    assert not any(o.passed for o in hostile if o.test == "loops while it is told")
    assert 2 <= len(stopped) <= budget_seconds / deadline + 1 and len(stopped) + len(spent) >= len(hostile) - 3
    # Without the budget: 30 deadlines and 30 restarts of the child. With it: the budget and a restart per stop.
    assert hostile_took < budget_seconds + len(stopped) * 2 * start_took + 2 * honest_took + after_took, \
        (hostile_took, start_took, honest_took)


def test_f8_the_reference_head_gets_full_marks_when_the_secret_draws_fewer_channels_than_heads():
    """F8: this secret draws head_size 3 with n_head 4, and reading the head's matrices by head divided by 0."""
    from coursekit import attention
    from coursekit.grading.grader import run_seed

    seed = run_seed("e7eaa23bb0f6f751a3d6e9966290886c")
    check = CHECKS["check_attention_head"]
    outcomes = check.judge(check.probe_all((attention.AttentionHead,), seed), seed)
    assert all(o.passed for o in outcomes), outcomes


def test_f9_a_nan_gradient_fails_the_zero_grad_and_clipping_tests():
    """F9: one NaN gradient entry made every `residual > tolerance` and `|norm - clip| > tolerance` False."""
    from coursekit.checks import gpt_training

    nan, clip = float("nan"), gpt_training.CLIP
    fine = {"residual": 0.0, "norm": clip, "fresh_norm": 10 * clip}
    assert gpt_training._zero_grad_judge({"steps": [fine, fine]}) is None
    assert gpt_training._clip_judge({"steps": [fine, fine]}) is None
    assert gpt_training._zero_grad_judge({"steps": [fine, {**fine, "residual": nan}]})
    assert gpt_training._clip_judge({"steps": [fine, {**fine, "norm": nan, "fresh_norm": nan}]})



def test_a_judge_process_slow_to_start_still_judges_the_first_student(tmp_path, monkeypatch):
    """On a starved machine the judge child took over 300 s to import torch and the checks, and the first student's
    tests failed as "out of memory?". The start has no deadline (only judging has): a child whose start outlasts
    the deadline several times over still judges, within it."""
    (tmp_path / "slow_to_import_checks.py").write_text("import time\ntime.sleep(6)\n")
    monkeypatch.syspath_prepend(str(tmp_path))  # the spawned child gets the parent's sys.path
    judges = judging.Judges(["slow_to_import_checks"], memory_bytes=4 * 2**30, seconds=2)
    try:
        outcomes = judges.judge("check_mlp", CHECKS["check_mlp"].probe_all((gpt.MLP,), SEED), SEED)
    finally:
        judges.close()
    assert all(o.passed for o in outcomes), outcomes


def test_f7_a_submission_that_runs_to_every_time_limit_spends_its_own_sandbox_budget_not_the_batch(tmp_path):
    """F7's sandbox side: with no budget per submission, one whose cells each loop to the cell limit cost a run
    per loop (restarts included) up to the notebook limit, per notebook. Its sandbox time now stops at the
    submission's budget, here twice an honest submission's whole grading, and the next student is graded as usual."""
    import csv

    import nbformat

    from coursekit.cli import main
    from coursekit.grading.feedback import file_name

    sys.path.insert(0, str(Path(__file__).parent / "grading_submissions"))
    import build_corpus

    solutions = tmp_path / "solutions"
    solutions.mkdir()
    nbformat.write(build_corpus.SOLUTION, solutions / "01_tiny.ipynb")

    def graded(name, notebooks, *options):
        folder, out = tmp_path / f"in-{name}", tmp_path / f"out-{name}"
        folder.mkdir()
        for student, notebook in notebooks.items():
            nbformat.write(notebook, folder / f"{student}.ipynb")
        started = time.monotonic()
        assert main(["grade", *sorted(map(str, folder.iterdir())), "--out", str(out), "--rubric", "01_tiny",
                     "--solutions", str(solutions), "--check-module", "grading_tiny_checks", "--cell-seconds", "20",
                     *options]) == 0
        took = time.monotonic() - started
        with open(out / "grades.csv", newline="") as handle:
            rows = {row["student"]: row for row in csv.DictReader(handle)}
        return took, rows, lambda student: (out / "feedback" / f"{file_name(student)}.md").read_text()

    honest_took, rows, _ = graded("honest", {"honest": build_corpus.SOLUTION})
    assert float(rows["honest"]["total"]) == 5.0
    loops = build_corpus.course(before_square=["while True:\n    pass"] * 8)
    budget = 2 * honest_took
    took, rows, feedback = graded("batch", {"a-loops": loops, "b-honest": build_corpus.SOLUTION},
                                  "--submission-seconds", f"{budget:.1f}")
    assert float(rows["b-honest"]["total"]) == 5.0, rows  # graded after the looping one, as usual
    assert float(rows["a-loops"]["square"]) == 0.0 and "sandbox time" in feedback("a-loops").replace("\\", "")
    # Without the budget: 4 runs to a 20 s loop's kill (over 100 s). With it: the budget, the kill, and the honest
    # student's own grading.
    assert took < budget + 2 * honest_took, (took, honest_took)
