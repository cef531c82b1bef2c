"""Checks for notebook 04's mlp: Linear(n_embd, 4 * n_embd) -> GELU -> Linear(4 * n_embd, n_embd) -> Dropout.

Before probing, every Linear weight and bias gets its own random values drawn from the test's seed
(gpt_common.load_seeded_layers). The judge redraws those values from the same seed (it never trusts weights the
sandbox reports), computes the MLP from them and tries the usual wrong ones (gpt_layer_probes.py has the probes).
"""

from __future__ import annotations

import numpy as np

from coursekit.checks.core import Check, Test, is_module_class
from coursekit.checks.gpt_common import (close, dropout_probability, find, layers_problem, output_problem, probe_config,
                                         probe_stream)
from coursekit.checks.gpt_layer_probes import redrawn, stream_sizes, values_probe
from coursekit.checks.probing import dropout_summary, eval_mode_problem

MLP_MISTAKES = {
    "": None,
    "exact GELU": ("the MLP uses the exact GELU, nn.GELU(); use nn.GELU(approximate=\"tanh\"), the version GPT-2 was "
                   "trained with (notebook 06 loads GPT-2's weights into this layout)"),
    "ReLU": ("the activation is ReLU; GPT-2 uses GELU (nn.GELU(approximate=\"tanh\")), a smooth version that keeps "
             "small gradients for negative inputs"),
    "no activation": ("there is no activation between the two layers, so the MLP is one linear map: put "
                      "nn.GELU(approximate=\"tanh\") between them"),
    "GELU after the second layer": ("there is a GELU after the second layer too: the MLP's output is "
                                    "c_proj(gelu(c_fc(x))), no activation after it"),
    "residual inside the MLP": "the MLP adds its input to its output: the residual connection belongs to the Block, not the MLP",
}


def _mlp_mistake(got, config) -> str | None:
    problem = layers_problem(got["layout"])
    if problem:
        return problem
    got = redrawn(got)
    C, x = config.n_embd, probe_stream(config).double()
    problem = output_problem(got["result"], tuple(x.shape), f"MLP on x of shape {tuple(x.shape)}")
    if problem:
        return problem
    found = got["linears"]
    first = next((layer for layer in found if layer["in"] == C), None)
    if first is None:
        return f"no nn.Linear(n_embd, ...) found: the MLP starts with nn.Linear(n_embd, 4 * n_embd) = ({C}, {4 * C})"
    if first["out"] != 4 * C:
        return (f"the hidden layer has {first['out']} units; a transformer's MLP expands to 4 * n_embd = {4 * C} "
                f"(the 4x expansion), then projects back to n_embd")
    second = find(found, 4 * C, C)
    if second is None:
        return f"no nn.Linear(4 * n_embd, n_embd) = ({4 * C}, {C}) found to project the hidden layer back"
    from coursekit.judging.gpt import mlp_candidates  # the reference's replays: judge side only

    out = got["result"]["output"]
    candidates = mlp_candidates(x, first, second)
    for name, expected in candidates.items():
        if close(out, expected):
            if name or not got["changes_input"]:
                return MLP_MISTAKES[name.split(" (")[0]]
            return ("the MLP changes its input x in place (e.g. x.zero_(), x.mul_() or x += ...): the Block still "
                    "needs x for the residual connection, x + mlp(ln_2(x)); compute new tensors and leave x as it was")
    return ("the MLP does not compute c_proj(gelu(c_fc(x))) with its own layers: check the order "
            "Linear(n_embd, 4 * n_embd) -> GELU -> Linear(4 * n_embd, n_embd) -> Dropout")


def _mlp_bias_judge(got):
    if _mlp_mistake(got, probe_config()):
        return "fix the MLP's output first (see the first test)"
    without = [f"nn.Linear({n_in}, {n_out})" for n_in, n_out, has_bias in got["layout"]["linears"] if not has_bias]
    if without:
        return (f"{without[0]} has no bias, though config.bias = True: GPT-2's MLP layers have biases "
                f"(nn.Linear(..., bias=config.bias); notebook 06 loads them)")
    return None


def _mlp_judge(changes: dict):
    return lambda got: _mlp_mistake(got, probe_config(**changes))


def _mlp_dropout_judge(got):
    config = probe_config(dropout=dropout_probability())
    runs = got["runs"]
    problem = eval_mode_problem(runs) or (_mlp_mistake(got, config) and "fix the MLP's output first (see the first "
                                                                      "test)")
    if problem:
        return problem
    calls = dropout_summary(runs["calls"], stream_sizes(config))
    wrong = [call["p"] for call in calls if abs(call["p"] - config.dropout) > 1e-9]
    if wrong:
        return (f"the MLP's dropout uses p = {round(wrong[0], 4)} though config.dropout = {config.dropout}: "
                f"nn.Dropout(config.dropout), never a fixed probability")
    if np.allclose(runs["train"], runs["eval"][0], atol=1e-7):
        return (f"with config.dropout = {config.dropout} training mode gives the same output as eval mode: end the "
                f"MLP with nn.Dropout(config.dropout)")
    if any(call["site"] == "hidden" for call in calls):
        return ("the dropout sits on the hidden layer (4 * n_embd wide); GPT-2's MLP drops its output: "
                "dropout(c_proj(gelu(c_fc(x))))")
    if float((runs["train"] == 0).mean()) < config.dropout / 2:
        return "the dropout is not the MLP's last step: apply it to the output of the second Linear"
    return None


check_mlp = Check(
    exercise="mlp",
    expects=["the class MLP itself, built as MLP(config)"],
    accepts=[is_module_class],
    tests=[
        Test("MLP(config) with n_embd=12: Linear(12, 48) -> GELU -> Linear(48, 12)", values_probe({}),
             _mlp_judge({}), weight=4.0),
        Test("another size (n_embd=20)", values_probe({"n_embd": 20, "n_head": 4}),
             _mlp_judge({"n_embd": 20, "n_head": 4}), weight=1.0),
        Test("dropout(config.dropout) on the output in training, off in eval", values_probe({}, dropout=True),
             _mlp_dropout_judge, weight=1.0, needs_right_outputs=True),
        Test("both Linears have biases (config.bias = True)", values_probe({}), _mlp_bias_judge, weight=0.5,
             needs_right_outputs=True),
    ],
)
