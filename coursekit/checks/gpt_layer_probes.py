"""Probes shared by notebook 04's mlp and block checks (gpt_mlp.py, gpt_blocks.py): the module built from a probe
config, its layers filled with values drawn from the test's seed, its output on a random stream, each of its
sub-layers run alone, its dropout calls in training mode and the gradient that reaches its input.
"""

from __future__ import annotations

import torch

from coursekit.checks.gpt_common import (backward_error, described_run, dropout_probability, load_seeded_layers,
                                         norms_named_by_role, probe_config, probe_stream, seeded_layers,
                                         sequence_length, sublayers)
from coursekit.checks.probing import (active, one_thread, randomise_parameters, recorded_dropout, run_module,
                                      train_and_eval_runs)


def values_probe(changes: dict, dropout: bool = False, gradient: bool = False):
    """The module built from probe_config(**changes), its Linears and LayerNorms filled from the test's seed
    (load_seeded_layers; the judge redraws them), their layout and its output on a random stream; with dropout, also
    its runs in eval and training mode; with gradient, the gradient of (output * readout(x)).sum() with respect to
    the stream x."""
    def probe(module_class):
        with one_thread():
            return _probe(module_class)

    def _probe(module_class):
        config = probe_config(**changes, dropout=dropout_probability() if dropout else 0.0)
        torch.manual_seed(0)
        module = randomise_parameters(module_class(config)).eval()
        x = probe_stream(config)
        got = {"layout": load_seeded_layers(module), "named": norms_named_by_role(module),
               "result": described_run(module, x), "changes_input": _changes_input(module, x),
               "sublayers": _sublayer_runs(module, config, x, dropout)}
        if dropout:
            got["runs"] = train_and_eval_runs(module, x)
        if gradient:
            got["gradient"] = stream_gradient(module, x)
        return got
    return probe


def _sublayer_runs(module, config, x: torch.Tensor, dropout: bool) -> dict:
    """Each of the module's own sub-modules (gpt_common.sublayers) run alone on x: its type and result (LayerNorms
    also their eps); with dropout, how many dropout calls the attention and the MLP make in training mode."""
    parts = sublayers(module, config)
    runs = {"norms": [{"type": type(norm).__name__, "result": run_module(norm, x),
                       "eps": float(norm.eps) if isinstance(getattr(norm, "eps", None), (int, float)) else None}
                      for norm in parts["norms"]]}
    for name in ("attention", "mlp"):
        part = parts[name]
        runs[name] = None if part is None else {"type": type(part).__name__, "result": run_module(part, x)}
        if part is not None and dropout:
            part.train()
            torch.manual_seed(0)
            with recorded_dropout() as calls:
                run_module(part, x)
            part.eval()
            runs[name]["dropouts"] = len(active(calls))
    return runs


def _changes_input(module, x: torch.Tensor) -> bool:
    """Whether module(x) changes x in place (on a copy, without gradients)."""
    given = x.clone()
    try:
        with torch.no_grad():
            module(given)
    except Exception:  # the output test reports the error
        return False
    return not torch.equal(given, x)


def readout(x: torch.Tensor) -> torch.Tensor:
    """Fixed weights on the block's output, so that its gradient tests every path: a function of the input."""
    return torch.sin(7.0 * x.detach()) + 0.25


def stream_gradient(module, x: torch.Tensor):
    leaf = x.clone().requires_grad_(True)

    def loss():
        out = module(leaf * 1.0)  # a stream computed by earlier layers, as in a GPT (not a leaf)
        return ((out[0] if isinstance(out, tuple) else out) * readout(x)).sum()
    error = backward_error(loss)
    if error:
        return error
    return leaf.grad if leaf.grad is not None else "no gradient reached the block's input"


def stream_sizes(config) -> dict:
    return {"n_embd": config.n_embd, "T": sequence_length(config), "head_size": config.n_embd // config.n_head}


def redrawn(got) -> dict:
    """got with the layers' values redrawn from the seed (seeded_layers), never taken from the sandbox."""
    return {**got, **seeded_layers(got["layout"])}
