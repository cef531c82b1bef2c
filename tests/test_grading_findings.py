"""Red team 3's findings against the landed grader (/work/redteam3/FINDINGS.md), one test each: the route it
found, rebuilt here, must now earn nothing, while the reference still earns everything."""

import errno
import os
import platform
import subprocess
import time

import pytest
import torch
import torch.nn as nn

from coursekit import gpt
from coursekit.checks import CHECKS
from coursekit.grading import containment, judging

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
