"""check_training_loop against a forger (red team 4's F3). Its probe runs train on a spy model and reports the run's
records (calls, optimizer steps, the history) and the weights train left in the model. Records alone can be made up
inside the sandbox (15 of 15 points before); the replay test ties them to the weights, and every test of the
records earns only beside it. Here the forger is played with the data such a probe would send."""

import numpy as np
import pytest
import torch
from test_checks_04_students import MORE_VALID, get_batch, train

from coursekit.checks import check_training_loop as check
from coursekit.checks.gpt_training import SpyModel

SECRETS = (977, 31337)
REPLAY = next(t.name for t in check.tests if "trained weights" in t.name)
GET_BATCH = check.tests[0]


def probed(seed, answer=(get_batch, train)) -> dict:
    return dict(check.probe_all(answer, seed))


def points(data: dict, seed) -> float:
    return check.fraction(check.judge(list(data.items()), seed))


def with_weights(data: dict, weights) -> dict:
    """Every train test's record, with `weights` claimed as what train left in the model."""
    return {name: {**got, "trained": weights} if isinstance(got, dict) and "trained" in got else got
            for name, got in data.items()}


def untrained_weights():
    torch.manual_seed(0)
    return [p.detach().clone() for p in SpyModel().parameters()]


@pytest.mark.parametrize("seed", SECRETS)
def test_an_honest_run_earns_everything_and_its_records_beside_other_weights_earn_only_get_batch(seed):
    honest = probed(seed)
    assert points(honest, seed) == 1.0
    share = GET_BATCH.weight / sum(t.weight for t in check.tests)
    trained = honest[REPLAY]["trained"]
    nudged = [np.asarray(w) + 1e-2 for w in trained]
    for weights in (untrained_weights(), nudged, [np.zeros_like(np.asarray(w)) for w in trained]):
        assert points(with_weights(honest, weights), seed) == pytest.approx(share)


@pytest.mark.parametrize("seed", SECRETS)
def test_records_of_the_public_run_do_not_fit_a_secret_run(seed):
    """Records and weights of a real run, replayed from the notebook's public check: the secret run's judges
    expect other data (other batches), so the forger earns at most get_batch."""
    public = probed(0)
    assert points(public, seed) <= GET_BATCH.weight / sum(t.weight for t in check.tests) + 1e-9


@pytest.mark.parametrize("answer", MORE_VALID["training_loop"], ids=lambda pair: pair[1].__name__)
def test_valid_loops_pass_the_replay_under_secrets(answer):
    for seed in SECRETS:
        outcomes = {o.test: o for o in check.judge(check.probe_all(answer, seed), seed)}
        assert outcomes[REPLAY].passed, outcomes[REPLAY].message
