"""check_forward against a forger: a hostile notebook replaces forward's probes and reports any plain data it likes.
The forger is played honestly here, with the data such a probe would return (zero weights with zero logits, Block
calls that do not start at the embeddings, a loss from forged logits or targets, a replay of the notebook's public
run): under a grading secret the judges fail it, while the reference's own probe data passes under several."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn

from coursekit import gpt
from coursekit.checks import check_forward
from coursekit.checks.core import seeded
from coursekit.checks.gpt_common import PUBLIC, blocks_of, load_seeded_gpt, seeded_gpt
from test_checks_gpt import ListGPT

SECRETS = (977, 31337, 2**40 + 7)  # grading runs' seeds (not the public 0)
EMBEDDINGS, LOSS_NONE, LOSS, CAUSAL, BLOCKS, DROPOUT, GRADIENT = (test.name for test in check_forward.tests)


def probed(seed, answer=gpt.GPT) -> dict:
    return dict(check_forward.probe_all((answer,), seed))


def verdicts(data: dict, seed) -> dict:
    """{test name: passed} for probe data judged under `seed`, as the grader judges it."""
    return {outcome.test: outcome.passed for outcome in check_forward.judge(list(data.items()), seed)}


def zero_weights_claimed(data: dict) -> dict:
    """The old probes' claim beside the data: all-zero embeddings, LayerNorms and LM head (zero logits fit them)."""
    C, V = PUBLIC.n_embd, PUBLIC.vocab_size
    zero_norm = {"weight": np.zeros(C, np.float32), "bias": np.zeros(C, np.float32)}
    return {**data, "token": np.zeros((V, C), np.float32), "position": np.zeros((PUBLIC.block_size, C), np.float32),
            "norms": [zero_norm], "final_norms": [zero_norm],
            "head": {"in": C, "out": V, "weight": np.zeros((V, C), np.float32), "bias": None}}


def zero_gradients(run: dict) -> dict:
    """The gradients zero weights and zero logits would get: none reaches the embeddings through a zero LM head or
    a zero gain, and ln_f's gain and bias get zeros too."""
    return {**run, "embedding_gradients": [np.zeros_like(grad) for grad in run["embedding_gradients"]],
            "norm_gradients": [[np.zeros_like(grad) for grad in pair] for pair in run["norm_gradients"]]}


def with_logits(result: dict, logits: np.ndarray, loss=None) -> dict:
    return {**result, "logits": logits, **({} if loss is None else {"loss": {"type": "Tensor", "value": loss}})}


def zero_chain(run: dict) -> dict:
    """Block calls that are consistent with each other and with zero weights, from a zero stream, and zero logits."""
    zeros = np.zeros_like(run["calls"][0]["input"])
    calls = [{"block": i, "input": zeros, "output": zeros} for i in range(len(run["calls"]))]
    return {"calls": calls, "result": with_logits(run["result"], np.zeros_like(run["result"]["logits"]))}


@pytest.mark.parametrize("seed", SECRETS)
def test_the_references_probe_data_passes_under_several_secrets_even_beside_claimed_weights(seed):
    data = probed(seed)
    assert all(verdicts(data, seed).values()), verdicts(data, seed)
    claimed = {name: zero_weights_claimed(got) for name, got in data.items()}
    assert all(verdicts(claimed, seed).values())


@pytest.mark.parametrize("seed", SECRETS)
def test_zero_weights_with_zero_logits_fail_every_test(seed):
    data = probed(seed)
    forged = {name: zero_weights_claimed(got) for name, got in data.items()}
    zeros = np.zeros_like(data[EMBEDDINGS]["result"]["logits"])
    forged[EMBEDDINGS]["result"] = with_logits(data[EMBEDDINGS]["result"], zeros)
    for name in (LOSS_NONE, LOSS):  # uniform logits: the loss is log(vocab_size) whatever the targets
        forged[name]["without"] = with_logits(data[name]["without"], zeros)
        forged[name]["with"] = with_logits(data[name]["with"], zeros, np.array(math.log(PUBLIC.vocab_size), np.float32))
    for name in (CAUSAL, BLOCKS):
        forged[name]["runs"] = [zero_chain(run) for run in data[name]["runs"]]
    runs = data[DROPOUT]["runs"]  # dropout's own evidence kept, the logits forged
    forged[DROPOUT]["runs"] = {**runs, "eval": [zeros, zeros], "train": np.ones_like(zeros)}
    forged[GRADIENT] = zero_gradients(forged[GRADIENT])
    assert not any(verdicts(forged, seed).values()), verdicts(forged, seed)


@pytest.mark.parametrize("seed", SECRETS)
def test_the_notebooks_public_run_replayed_under_a_secret_fails(seed):
    """What a forger can compute without the secret: the right answers for the public seed's weights and tokens."""
    public, secret = probed(0), probed(seed)
    forged = {name: {**public[name], "layout": secret[name]["layout"]} for name in public}
    assert not any(verdicts(forged, seed).values()), verdicts(forged, seed)


@pytest.mark.parametrize("seed", SECRETS)
def test_block_calls_that_do_not_start_at_the_judges_embeddings_fail(seed):
    """The Blocks' chain is consistent and the logits are lm_head(ln_f(its end)) with the right weights, but the
    first Block's input is not the embeddings of the secret tokens (it is the public run's)."""
    public, secret = probed(0), probed(seed)
    forged = dict(secret)
    for name in (CAUSAL, BLOCKS):
        runs = [{**run, "calls": [{**run["calls"][0], "input": other["calls"][0]["input"]}, *run["calls"][1:]]}
                for run, other in zip(secret[name]["runs"], public[name]["runs"])]
        forged[name] = {**secret[name], "runs": runs}
    judged = verdicts(forged, seed)
    assert not judged[CAUSAL] and not judged[BLOCKS], judged
    messages = [o.message for o in check_forward.judge(list(forged.items()), seed) if o.test == BLOCKS]
    assert "first Block does not get the embeddings" in messages[0]


@pytest.mark.parametrize("seed", SECRETS)
def test_a_loss_from_claimed_targets_fails(seed):
    """The right logits, and the loss they give for targets the forger chose (the most likely tokens), reported
    with those targets: the judge uses its own targets."""
    data = probed(seed)
    result = data[LOSS]["with"]
    logits = torch.as_tensor(result["logits"])
    claimed = logits.argmax(-1)
    loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), claimed.flatten()).numpy()
    claim = {**data[LOSS], "targets": claimed.numpy(), "with": with_logits(result, result["logits"], loss)}
    forged = {**data, LOSS: claim}
    assert not verdicts(forged, seed)[LOSS]


@pytest.mark.parametrize("answer", [gpt.GPT, ListGPT], ids=["head tied to wte", "wte tied to the head"])
def test_the_judge_redraws_exactly_what_the_probe_loaded_into_a_gpt(answer):
    config = gpt.GPTConfig(**vars(PUBLIC))
    model = answer(config)
    with seeded(SECRETS[0], "forward", "any test"):
        layout = load_seeded_gpt(model, blocks_of(model, config))
        drawn = seeded_gpt(layout)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    tables = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    assert [torch.equal(layer.weight, values["weight"]) for layer, values in zip(linears, drawn["linears"])] == \
        [True] * len(linears)
    assert [torch.equal(table.weight, values) for table, values in zip(tables, drawn["embeddings"])] == [True, True]
    head = next(layer for layer in linears if layer.out_features == PUBLIC.vocab_size)
    assert head.weight is tables[0].weight
    assert len(layout["final_norms"]) == 1 and len(layout["norms"]) == 2 * PUBLIC.n_layer + 1
