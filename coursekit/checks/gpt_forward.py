"""Check for notebook 04's GPT.forward: logits from the embeddings through the Blocks, ln_f and the LM head,
the loss, causality and the embedding dropout.

forward is probed on models whose every parameter was randomised (probing.randomise_parameters(weights=True)):
a fresh GPT's logits are ~0, and with logits ~0 any targets give the same loss, so a forward that used idx as
its targets would pass. With n_layer=0 the logits are computable from the embeddings, ln_f and the LM head; with
n_layer=2 forward hooks record each Block's input and output, so the judge sees that the Blocks run in order on
the embeddings and that the logits come from the last one. The embedding dropout is checked by recording the
dropout calls in training mode. The judges replay the right answer from coursekit.judging.gpt.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn

from coursekit.checks.core import (Check, Test, describe, is_module_class, is_public, probe_rng,
                                   probe_torch_generator, type_and_value)
from coursekit.checks.gpt_common import (B, PUBLIC, T, GPTConfig, blocks_of, close, dropout_probability,
                                         layer_norms, linears)
from coursekit.checks.probing import (dropout_summary, is_norm, randomise_parameters, single_threaded,
                                      train_and_eval_runs)

C, V = PUBLIC.n_embd, PUBLIC.vocab_size


def public_model(**changes) -> GPTConfig:
    """forward is probed at the public sizes (its inputs and weights are secret in grading)."""
    return replace(PUBLIC, **changes)


# ---------------------------------------------------------------- forward


def _tokens() -> tuple[torch.Tensor, torch.Tensor]:
    """idx (B, T) and targets (B, T) from the test's generator; targets is a slice (windows[:, 1:], as a training
    batch often is), not contiguous in memory."""
    tokens = torch.randint(V, (B, 2 * T + 1), generator=probe_torch_generator())
    return tokens[:, :T], tokens[:, T:][:, 1:]


def _weights_seed() -> int:
    return 1 if is_public() else int(probe_rng().integers(2**31))


def _informative(model: nn.Module) -> nn.Module:
    """Every parameter random (seeded by the test), so the logits are far from 0 and depend on everything."""
    return randomise_parameters(model, seed=_weights_seed(), weights=True).eval()


def _forward_result(model, *args) -> dict:
    try:
        with torch.no_grad():
            out = model(*args)
    except Exception as error:  # the judge turns it into advice
        return {"error": f"{type(error).__name__}: {error}", "pair": False}
    if not (isinstance(out, tuple) and len(out) == 2):
        return {"error": None, "pair": False, "returned": describe(out)}
    logits, loss = out
    return {"error": None, "pair": True, "logits": logits if isinstance(logits, torch.Tensor) else describe(logits),
            "loss": type_and_value(loss)}


@single_threaded
def _forward_embeddings(gpt_class):
    """No Blocks (n_layer=0): the logits are lm_head(ln_f(wte[idx] + wpe[positions])), computable from the weights."""
    torch.manual_seed(0)
    model = _informative(gpt_class(public_model(n_layer=0)))
    embeddings = {m.num_embeddings: m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Embedding)}
    idx = _tokens()[0]
    return {"idx": idx, "norms": layer_norms(model), "token": embeddings.get(V),
            "position": embeddings.get(PUBLIC.block_size),
            "head": next((layer for layer in reversed(linears(model)) if layer["out"] == V), None),
            "result": _forward_result(model, idx)}


def _forward_problem(result, what: str) -> str | None:
    if result["error"]:
        if "index out of range" in result["error"]:
            return (f"{what} raised {result['error']}: the positions must be torch.arange(T) for the T tokens of idx "
                    f"(T <= block_size), not the token ids")
        if "must match the size of tensor" in result["error"]:
            return (f"{what} raised {result['error']}: idx has T = {T} tokens, fewer than block_size; the positions "
                    f"are torch.arange(T), not torch.arange(block_size)")
        return f"{what} raised {result['error']}"
    if not result["pair"]:
        return f"{what} should return a pair (logits, loss), got {result['returned']}"
    logits = result["logits"]
    if not isinstance(logits, np.ndarray):
        return f"{what}: the logits should be a tensor, got {logits}"
    if logits.shape == (B, V):
        return (f"{what}: the logits have shape {logits.shape}, only the last position; forward returns logits for "
                f"every position, (B, T, vocab_size) = {(B, T, V)} (generate picks the last one itself)")
    if logits.shape != (B, T, V):
        return f"{what}: the logits should have shape (B, T, vocab_size) = {(B, T, V)}, got {logits.shape}"
    return None


EMBEDDING_MISTAKES = {
    "": None,
    "no positions": "the position embeddings are not added: x = wte(idx) + wpe(torch.arange(T))",
    "positions from 1": "the positions start at 1; they are torch.arange(T) = 0 .. T - 1",
    "last positions": ("the positions are the last T of block_size; a sequence of T tokens uses positions 0 .. T - 1 "
                       "(torch.arange(T))"),
    "no final LayerNorm": "the final LayerNorm (ln_f) is not applied before the LM head",
    "probabilities": ("forward returns probabilities; return the raw logits (F.cross_entropy and sampling apply the "
                      "softmax themselves)"),
    "positions from ids": ("the position embeddings are looked up with the token ids; look them up with the positions "
                           "torch.arange(T)"),
}


@single_threaded
def _embeddings_judge(got):
    what = f"forward(idx) on idx of shape {(B, T)} with n_layer=0"
    problem = _forward_problem(got["result"], what)
    if problem:
        return problem
    if got["token"] is None or got["position"] is None or got["head"] is None or len(got["norms"]) != 1:
        return "fix check_gpt_constructor first (it finds the embeddings, final LayerNorm and LM head)"
    from coursekit.judging.gpt import embedding_candidates  # the reference's replays: judge side only

    idx = torch.as_tensor(got["idx"])
    candidates = embedding_candidates(idx, torch.as_tensor(got["token"]), torch.as_tensor(got["position"]),
                                      got["norms"][0], got["head"])
    for name, expected in candidates.items():
        if close(got["result"]["logits"], expected):
            return EMBEDDING_MISTAKES[name]
    return ("with n_layer=0 the logits should be lm_head(ln_f(wte(idx) + wpe(arange(T)))), and they are not "
            "(none of the usual mistakes matches)")


@single_threaded
def _forward_loss(gpt_class):
    torch.manual_seed(0)
    model = _informative(gpt_class(public_model()))
    idx, targets = _tokens()
    return {"idx": idx, "targets": targets, "without": _forward_result(model, idx), "with": _forward_result(model, idx, targets)}


def _loss_none_judge(got):
    result = got["without"]
    problem = _forward_problem(result, "forward(idx) without targets")
    if problem:
        return problem
    if result["loss"]["type"] != "NoneType":
        return (f"forward(idx) without targets should return (logits, None): there is nothing to compare with, got a "
                f"loss of type {result['loss']['type']}")
    return None


LOSS_MISTAKES = {
    "": None,
    "sum": "the loss is the sum over positions; F.cross_entropy's default mean is what we want",
    "shifted again": ("forward shifts the targets again: the targets passed in are already the next tokens "
                      "(y[t] = x[t + 1]), so compare logits[:, t] with targets[:, t]"),
    "inputs as targets": ("the loss compares the logits with idx, the inputs; compare them with targets (the next "
                          "tokens): F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))"),
    "probabilities": "the loss is computed on probabilities; F.cross_entropy takes the raw logits",
}


@single_threaded
def _loss_judge(got):
    result = got["with"]
    if result["error"] and "Expected target size" in result["error"]:
        return ("F.cross_entropy got the logits as (B, T, vocab_size): it wants one row per prediction, so flatten "
                "both: F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))")
    if result["error"] and "view size is not compatible" in result["error"]:
        return (f"forward(idx, targets) raised {result['error']}: targets here is a slice (windows[:, 1:], as a "
                f"training batch often is), which .view(-1) cannot flatten; use targets.reshape(-1)")
    problem = _forward_problem(result, "forward(idx, targets)")
    if problem:
        return problem
    loss = result["loss"]
    if loss["type"] != "Tensor" or not isinstance(loss["value"], np.ndarray) or loss["value"].size != 1:
        return f"the loss should be a 0-dimensional tensor (what F.cross_entropy returns), got a {loss['type']}"
    from coursekit.judging.gpt import loss_candidates  # the reference's replays: judge side only

    value = float(np.asarray(loss["value"]).reshape(-1)[0])
    candidates = loss_candidates(torch.as_tensor(result["logits"]).double(), torch.as_tensor(got["idx"]),
                                 torch.as_tensor(got["targets"]))
    for name, expected in candidates.items():
        if abs(value - expected) < 1e-4 * max(1.0, abs(expected)):
            return LOSS_MISTAKES[name]
    flat = candidates[""]
    return f"the loss should be F.cross_entropy of the returned logits and the targets ({flat:.4f}), got {value:.4f}"


@single_threaded
def _causal_probe(gpt_class):
    torch.manual_seed(0)
    model = _informative(gpt_class(public_model()))
    idx = _tokens()[0]
    changed = idx.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % V
    return {"before": _forward_result(model, idx), "after": _forward_result(model, changed)}


def _causal_judge(got):
    problem = _forward_problem(got["before"], "forward(idx) with n_layer=2") or \
        _forward_problem(got["after"], "forward(idx) with n_layer=2 on other tokens")
    if problem:
        return problem
    before, after = got["before"]["logits"], got["after"]["logits"]
    if not np.allclose(before[:, :3], after[:, :3], atol=1e-5):
        return "changing the tokens at positions 3-4 changed the logits at positions 0-2: the model sees the future"
    if np.allclose(before[:, 3:], after[:, 3:], atol=1e-6):
        return "changing the tokens at positions 3-4 did not change their logits: does forward use idx?"
    return None


@single_threaded
def _forward_blocks(gpt_class):
    """n_layer=2: every Block's input and output as forward ran them, the final LayerNorm and LM head, the logits."""
    torch.manual_seed(0)
    config = public_model()
    model = _informative(gpt_class(config))
    blocks = blocks_of(model, config)
    inside = {id(m) for block in blocks for m in block.modules()}
    calls = []

    def record(index):
        def hook(module, inputs, output):
            output = output[0] if isinstance(output, tuple) else output
            calls.append({"block": index, "input": inputs[0].detach().clone(), "output": output.detach().clone()})
        return hook
    handles = [block.register_forward_hook(record(i)) for i, block in enumerate(blocks)]
    try:
        result = _forward_result(model, _tokens()[0])
    finally:
        for handle in handles:
            handle.remove()
    outside = [m for m in model.modules() if id(m) not in inside]
    final_norms = [norm for norm in layer_norms(nn.ModuleList(m for m in outside if is_norm(m)))]
    return {"blocks": len(blocks), "calls": calls, "final_norms": final_norms,
            "head": next((layer for layer in reversed(linears(model)) if layer["out"] == V), None), "result": result}


def _blocks_judge(got):
    from coursekit.judging.gpt import head_logits  # the reference's replays: judge side only

    problem = _forward_problem(got["result"], "forward(idx) with n_layer=2")
    if problem:
        return problem
    if got["blocks"] != PUBLIC.n_layer or len(got["final_norms"]) != 1 or got["head"] is None:
        return "fix check_gpt_constructor first (it finds the Blocks in an nn.ModuleList, ln_f and the LM head)"
    calls = got["calls"]
    if not calls:
        return ("forward never runs the Blocks: after the embeddings, x = block(x) for every block in "
                "self.transformer.h, then ln_f and lm_head")
    if [call["block"] for call in calls] != list(range(PUBLIC.n_layer)):
        return (f"with n_layer={PUBLIC.n_layer} forward ran the Blocks {[call['block'] for call in calls]}: run each "
                f"Block once, in order (for block in self.transformer.h: x = block(x))")
    for before, after in zip(calls, calls[1:]):
        if not np.allclose(after["input"], before["output"], atol=1e-5):
            return "each Block must get the previous Block's output: x = block(x), not block(embeddings)"
    ln_f, logits = got["final_norms"][0], got["result"]["logits"]
    if close(logits, head_logits(torch.as_tensor(calls[-1]["output"]), ln_f, got["head"])):
        return None
    if close(logits, head_logits(torch.as_tensor(calls[0]["input"]), ln_f, got["head"])):
        return ("the logits come from the embeddings, not from the Blocks' output: apply ln_f and lm_head to x after "
                "the loop over the Blocks")
    return "the logits should be lm_head(ln_f(x)) of the last Block's output x"


@single_threaded
def _embedding_dropout_probe(gpt_class):
    """n_layer=0 in training mode: the only dropout is the one on the embeddings."""
    torch.manual_seed(0)
    model = _informative(gpt_class(public_model(n_layer=0, dropout=dropout_probability())))
    runs = train_and_eval_runs(_LogitsOnly(model), _tokens()[0])
    return runs


class _LogitsOnly(nn.Module):
    """forward(idx) -> logits, for the shared train/eval runner (which expects one tensor)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, idx):
        out = self.model(idx)
        return out[0] if isinstance(out, tuple) else out


def _embedding_dropout_judge(got):
    p = dropout_probability()
    first, second = got["eval"]
    if not all(isinstance(value, np.ndarray) for value in (first, second, got["train"])):
        return "fix the errors reported by the other tests first"
    if not np.array_equal(first, second):
        return "in eval mode two calls gave different logits: use nn.Dropout modules (they follow model.eval())"
    calls = dropout_summary(got["calls"], {"n_embd": C, "T": T})
    wrong = [call["p"] for call in calls if abs(call["p"] - p) > 1e-9]
    if wrong:
        return (f"the embedding dropout uses p = {round(wrong[0], 4)} though config.dropout = {p}: "
                f"nn.Dropout(config.dropout)")
    if np.allclose(got["train"], first, atol=1e-7) or not calls:
        return (f"with config.dropout = {p} and n_layer=0, training mode gives the same logits as eval mode: forward "
                f"has no embedding dropout. x = self.transformer.drop(tok_emb + pos_emb) before the Blocks")
    return None


check_forward = Check(
    exercise="forward",
    expects=["the class GPT itself, with its forward(idx, targets=None) -> (logits, loss)"],
    accepts=[is_module_class],
    tests=[
        Test("n_layer=0: logits = lm_head(ln_f(token + position embeddings))", _forward_embeddings, _embeddings_judge,
             weight=4.0),
        Test("without targets the loss is None", _forward_loss, _loss_none_judge, weight=0.5),
        Test("with targets: cross-entropy over all B * T positions", _forward_loss, _loss_judge, weight=3.0),
        Test("n_layer=2: logits (B, T, vocab_size), no position sees the future", _causal_probe, _causal_judge,
             weight=1.5),
        Test("n_layer=2: the Blocks run in order on the embeddings, then ln_f and the LM head", _forward_blocks,
             _blocks_judge, weight=3.0),
        Test("dropout(config.dropout) on the embeddings in training", _embedding_dropout_probe,
             _embedding_dropout_judge, weight=1.0),
    ],
)


