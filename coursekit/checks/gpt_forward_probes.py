"""Probes of notebook 04's forward check (gpt_forward.py), and the inputs they share with its judges.

Each probe builds the student's GPT at the public sizes, fills every nn.Linear, LayerNorm and nn.Embedding with
values drawn from the test's seed (gpt_common.load_seeded_gpt) and runs forward on tokens drawn from the same seed
(`tokens`). It returns the model's layout and what forward returned, never the weights or the tokens: the judges
(gpt_forward_judges.py) redraw both.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from coursekit.checks.core import describe, probe_torch_generator, type_and_value
from coursekit.checks.gpt_common import (B, PUBLIC, T, GPTConfig, backward_error, blocks_of, dropout_probability,
                                         load_seeded_gpt, parameter_gradients)
from coursekit.checks.probing import active, recorded_dropout, single_threaded, train_and_eval_runs

C, V = PUBLIC.n_embd, PUBLIC.vocab_size
CHANGED_FROM = 3  # the causal test changes the tokens from this position on


def public_model(**changes) -> GPTConfig:
    """forward is probed at the public sizes (its inputs and weights are secret in grading)."""
    return replace(PUBLIC, **changes)


def tokens() -> tuple[torch.Tensor, torch.Tensor]:
    """idx (B, T) and targets (B, T) from the test's generator (the same for its probe and its judge); targets is a
    slice (windows[:, 1:], as a training batch often is), not contiguous in memory."""
    drawn = torch.randint(V, (B, 2 * T + 1), generator=probe_torch_generator())
    return drawn[:, :T], drawn[:, T:][:, 1:]


def changed_tokens(idx: torch.Tensor) -> torch.Tensor:
    """idx with every token from position CHANGED_FROM on replaced by the next id: the causal test's second input."""
    changed = idx.clone()
    changed[:, CHANGED_FROM:] = (changed[:, CHANGED_FROM:] + 1) % V
    return changed


def _seeded_model(gpt_class, config: GPTConfig) -> tuple[nn.Module, list[nn.Module], dict]:
    """The student's GPT(config) in eval mode with seeded values, its Blocks and its layout."""
    torch.manual_seed(0)
    model = gpt_class(config).eval()
    blocks = blocks_of(model, config)
    return model, blocks, load_seeded_gpt(model, blocks)


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
def embeddings_probe(gpt_class):
    """No Blocks (n_layer=0): the logits are lm_head(ln_f(wte[idx] + wpe[positions])), computable from the weights."""
    model, _, layout = _seeded_model(gpt_class, public_model(n_layer=0))
    return {"layout": layout, "result": _forward_result(model, tokens()[0])}


@single_threaded
def loss_probe(gpt_class):
    """forward with and without targets, with no Blocks (n_layer=0: the judge knows the right logits)."""
    model, _, layout = _seeded_model(gpt_class, public_model(n_layer=0))
    idx, targets = tokens()
    return {"layout": layout, "without": _forward_result(model, idx), "with": _forward_result(model, idx, targets)}


@single_threaded
def blocks_probe(gpt_class):
    """n_layer=2, on idx and on changed_tokens(idx): every Block's input and output as forward ran them, and what
    forward returned."""
    model, blocks, layout = _seeded_model(gpt_class, public_model())
    idx = tokens()[0]
    return {"layout": layout, "blocks": len(blocks),
            "runs": [_recorded_run(model, blocks, inputs) for inputs in (idx, changed_tokens(idx))]}


def _recorded_run(model, blocks, idx) -> dict:
    calls = []

    def record(index):
        def hook(module, inputs, output):
            output = output[0] if isinstance(output, tuple) else output
            calls.append({"block": index, "input": inputs[0].detach().clone(), "output": output.detach().clone()})
        return hook
    handles = [block.register_forward_hook(record(i)) for i, block in enumerate(blocks)]
    try:
        result = _forward_result(model, idx)
    finally:
        for handle in handles:
            handle.remove()
    return {"calls": calls, "result": result}


@single_threaded
def embedding_dropout_probe(gpt_class):
    """n_layer=0 in training mode: the only dropout is the one on the embeddings. Besides the runs in both modes,
    what each dropout call dropped and returned ("dropped", the first four), so the judge sees where it sits."""
    model, _, layout = _seeded_model(gpt_class, public_model(n_layer=0, dropout=dropout_probability()))
    idx = tokens()[0]
    runs = train_and_eval_runs(_LogitsOnly(model), idx)
    model.train()
    torch.manual_seed(0)
    with recorded_dropout() as calls:
        _forward_result(model, idx)
    model.eval()
    return {"layout": layout, "runs": runs,
            "dropped": [{"input": call["input"], "output": call["output"]} for call in active(calls)[:4]]}


@single_threaded
def gradient_probe(gpt_class):
    """loss.backward() after forward(idx, targets), with n_layer=0 (the judge recomputes the embeddings' and ln_f's
    gradients) and with n_layer=2 (which parameters got a gradient): the error it raised, or the gradients."""
    idx, targets = tokens()
    runs = []
    for n_layer in (0, PUBLIC.n_layer):
        model, _, layout = _seeded_model(gpt_class, public_model(n_layer=n_layer))
        error = backward_error(lambda: model(idx, targets)[1])
        runs.append({"layout": layout, "error": error, **({} if error else parameter_gradients(model))})
    return {**runs[0], "blocks": runs[1]}


class _LogitsOnly(nn.Module):
    """forward(idx) -> logits, for the shared train/eval runner (which expects one tensor)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, idx):
        out = self.model(idx)
        return out[0] if isinstance(out, tuple) else out
