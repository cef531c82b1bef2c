"""Checks for notebook 04's block: pre-LayerNorm attention and MLP with residual connections.

Before probing, every Linear weight and bias and every LayerNorm gain and bias gets its own random values drawn
from the test's seed (gpt_common.load_seeded_layers): at initialisation ln_1 and ln_2 are identical, and swapping
them would go unseen. The judge redraws those values from the same seed (it never trusts weights the sandbox
reports), rebuilds the block from them and tries the right wiring and the usual wrong ones.
Dropout is checked by recording every dropout call in training mode: its probability and what it was applied to.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, is_module_class
from coursekit.checks.gpt_common import (backward_advice, close, dropout_probability, find, layers_problem,
                                         output_problem, probe_config, probe_stream, sublayers)
from coursekit.checks.gpt_layer_probes import readout, redrawn, stream_sizes, values_probe
from coursekit.checks.gpt_mlp import MLP_MISTAKES
from coursekit.checks.probing import dropout_summary, eval_mode_problem, one_thread

BLOCK_MISTAKES = {
    "post-LN": ("this is the original transformer's post-LN order, x = ln(x + attn(x)). GPT-2 is pre-LN: normalise "
                "the input of each sub-layer and add its output to the untouched residual stream: "
                "x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))"),
    "no residual around attention": ("there is no residual connection around the attention: "
                                     "x = x + self.attn(self.ln_1(x)), not x = self.attn(self.ln_1(x))"),
    "no residual around the MLP": ("there is no residual connection around the MLP: x = x + self.mlp(self.ln_2(x)), "
                                   "not x = self.mlp(self.ln_2(x))"),
    "no residual at all": ("there are no residual connections: each sub-layer's output must be added to its input, "
                           "x = x + attn(ln_1(x)) and x = x + mlp(ln_2(x))"),
    "residual around the LayerNorm": ("the residual connection starts after the LayerNorm (x = ln(x); x = x + attn(x)), "
                                      "so the normalised value replaces the stream: keep x itself and add "
                                      "attn(ln_1(x)) to it"),
    "MLP first": "the MLP runs before the attention: attention first (tokens exchange information), then the MLP",
    "no LayerNorm": "the LayerNorms are not used: x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))",
    "no LayerNorm, no residual": ("the block is mlp(attn(x)): no LayerNorms and no residual connections. GPT-2's "
                                  "block is x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x))"),
    "parallel": ("attention and MLP both read the block's input (x + attn(ln_1(x)) + mlp(ln_2(x))): in GPT-2 the MLP "
                 "reads the stream after the attention was added"),
}


NORMS = 4  # LayerNorms a block's judge tries in pairs (a block has two; a spare one is tolerated)
NORM_MISUSES = {  # Block.forward normalising with its LayerNorms' parameters by hand, wrongly
    lambda norm: {"weight": norm["bias"], "bias": norm["weight"]}: (
        "Block.forward swaps each LayerNorm's gain and bias (F.layer_norm(x, shape, ln.bias, ln.weight)): the gain "
        "comes first, F.layer_norm(x, shape, ln.weight, ln.bias); simpler, call the module: self.ln_1(x)"),
    lambda norm: {"weight": norm["weight"], "bias": None}: (
        "Block.forward applies the LayerNorms' gains but not their biases: call the modules, self.ln_1(x) and "
        "self.ln_2(x), which apply both"),
    lambda norm: {"weight": None, "bias": None}: (
        "Block.forward normalises without the LayerNorms' gains and biases: call the modules, self.ln_1(x) and "
        "self.ln_2(x), which apply both"),
}


def _block_parts(got, config) -> dict | str:
    """The block's layers as the judge redraws them from the seed (never read back from the sandbox): the attention
    rebuilt from its two Linears, the MLP's "fc" and "proj", the LayerNorms' "norms"; or what is missing."""
    from coursekit.judging.gpt import attention_from  # the reference's replays: judge side only

    got, C = redrawn(got), config.n_embd
    found, norms = got["linears"], got["norms"]
    c_attn, c_proj = find(found, C, 3 * C), find(found, C, C)
    if c_attn is None or c_proj is None:
        return ("could not find the attention's layers nn.Linear(n_embd, 3 * n_embd) and nn.Linear(n_embd, n_embd) in "
                "the block: use the CausalSelfAttention given in the exercise, built from config")
    fc, proj = find(found, C, 4 * C), find(found, 4 * C, C)
    if fc is None or proj is None:
        widths = sorted({layer["out"] for layer in found if layer["in"] == C and layer["out"] not in (C, 3 * C)})
        if widths:
            return (f"the block's MLP has a hidden layer of width {widths[0]}, not 4 * n_embd = {4 * C}: build it as "
                    f"MLP(config) (check_mlp first); nothing may be fixed to the notebook's sizes")
        return "the block has no MLP: add self.mlp = MLP(config) and use it after the attention"
    if not norms:
        return ("the block has no LayerNorm: it needs two nn.LayerNorm(n_embd), ln_1 before the attention and ln_2 "
                "before the MLP")
    if len(norms) > NORMS:  # the wirings are tried for every ordered pair of LayerNorms: a few, not hundreds
        return (f"the block has {len(norms)} LayerNorms; GPT-2's block has two, ln_1 before the attention and ln_2 "
                f"before the MLP: remove the others")
    if any(norm["weight"] is None for norm in norms):
        return ("a LayerNorm has no learned gain and bias (elementwise_affine=False): use "
                "nn.LayerNorm(config.n_embd, bias=config.bias), as GPT-2 does (notebook 06 loads its gains and biases)")
    return {"attention": attention_from(c_attn, c_proj, config), "fc": fc, "proj": proj, "norms": norms}


def _block_mistake(got, config) -> str | None:
    problem = layers_problem(got["layout"])
    if problem:
        return problem
    C, x = config.n_embd, probe_stream(config)
    what = f"Block(config) with n_embd={C}, n_head={config.n_head} on x of shape {tuple(x.shape)}"
    problem = output_problem(got["result"], tuple(x.shape), what)
    if problem:
        return problem + (" (nothing may be hard-coded to the notebook's sizes: use config.n_embd, config.n_head)"
                          if got["result"]["error"] else "")
    from coursekit.judging.gpt import block_candidates  # the reference's replays: judge side only

    parts = _block_parts(got, config)
    if isinstance(parts, str):
        return parts
    out, norms = got["result"]["output"], parts["norms"]
    with torch.no_grad():
        if len(norms) == 2 and close(out, block_candidates(x, parts["attention"], parts["fc"], parts["proj"],
                                                           *norms)[""]()):
            return None  # the right wiring, checked first: most blocks pass here
    return _wiring_mistake(got, x, out, parts)


def _wiring_mistake(got, x, out, parts) -> str | None:
    """Which wiring of the block's own layers matches its output, and what is wrong with it."""
    from coursekit.judging.gpt import GELUS, block_candidates  # the reference's replays: judge side only

    norms, layers = parts["norms"], (parts["attention"], parts["fc"], parts["proj"])
    matched = {}
    with torch.no_grad():
        for gelu in GELUS:
            for a, norm_a in enumerate(norms):
                for b, norm_b in enumerate(norms):
                    for name, compute in block_candidates(x, *layers, norm_a, norm_b, gelu).items():
                        if name not in matched and close(out, compute()):
                            matched[name] = (a, b, gelu)
    if "" in matched:
        a, b, gelu_name = matched[""]
        if len(norms) == 1:
            return "the block has one LayerNorm shared by both sub-layers: give each its own (ln_1 and ln_2)"
        if a == b:
            return ("the same LayerNorm is used before the attention and before the MLP: each sub-layer needs its own "
                    "(ln_1 and ln_2), with its own gain and bias")
        if (a, b) == (1, 0) and got["named"]:
            return ("the two LayerNorms are swapped: ln_1 belongs before the attention and ln_2 before the MLP, "
                    "x = x + attn(ln_1(x)), then x = x + mlp(ln_2(x)) (GPT-2's weights load by these names)")
        if gelu_name != "tanh":
            return "the block is wired right, but its MLP uses the exact GELU: see check_mlp"
        return None
    for name, message in BLOCK_MISTAKES.items():
        if name in matched:
            return message
    with torch.no_grad():
        for misuse, message in NORM_MISUSES.items():
            first, second = (misuse(norm) for norm in (norms[0], norms[-1]))
            if close(out, block_candidates(x, *layers, first, second)[""]()):
                return message
    problem = _sublayer_mistake(got["sublayers"], x, parts)
    if isinstance(problem, str):
        return problem
    return (f"the block's output is not x + attn(ln_1(x)) followed by x + mlp(ln_2(x)), nor one of the usual wrong "
            f"wirings. Run on their own, {', '.join(problem[:-1]) + ' and ' if problem[:-1] else ''}{problem[-1]} "
            f"compute what they should, so the mistake is in how "
            f"Block.forward uses them: check it line by line (the residual additions, which LayerNorm feeds which "
            f"sub-layer, the arguments of any F.layer_norm)")


def _sublayer_mistake(runs, x, parts) -> str | list[str]:
    """The first of the block's own sub-modules (each run alone on x by the probe) whose output is not what its
    layers should compute, in words; or the list of those found right."""
    from coursekit.judging.gpt import layer_norm, mlp_candidates  # the reference's replays: judge side only

    checked = []
    for norm, values in zip(runs["norms"], parts["norms"]):
        result = norm["result"]
        if result["error"] or not close(result["output"], layer_norm(values, x)):
            if norm["type"] != "LayerNorm":
                return (f"the block normalises with {norm['type']}, not a LayerNorm: GPT-2 normalises each position "
                        f"over its n_embd features, subtracting the mean, with a gain and a bias: "
                        f"nn.LayerNorm(config.n_embd)")
            if norm["eps"] is not None and abs(norm["eps"] - 1e-5) > 1e-12:
                return (f"the block's LayerNorm has eps = {norm['eps']:g}; keep the default eps = 1e-05 "
                        f"(GPT-2's weights were trained with it): nn.LayerNorm(config.n_embd)")
            return (f"the block's {norm['type']} does not compute nn.LayerNorm(n_embd) with its own gain and bias: "
                    f"use nn.LayerNorm(config.n_embd)")
    if runs["norms"]:
        checked.append("its LayerNorms")
    mlp = runs["mlp"]
    if mlp is not None:
        candidates = mlp_candidates(x.double(), parts["fc"], parts["proj"])
        matched = next((name for name, expected in candidates.items() if close(mlp["result"]["output"], expected)),
                       None) if not mlp["result"]["error"] else None
        if matched is None:
            return (f"the block's MLP ({mlp['type']}) does not compute c_proj(gelu(c_fc(x))) with its own layers: "
                    f"build it as MLP(config) and pass check_mlp first")
        if matched:
            return f"the block's MLP ({mlp['type']}): {MLP_MISTAKES[matched.split(' (')[0]]} (see check_mlp)"
        checked.append("its MLP")
    attention = runs["attention"]
    if attention is not None:
        with torch.no_grad():
            expected = parts["attention"](x)
        if attention["result"]["error"] or not close(attention["result"]["output"], expected):
            return (f"the block's attention ({attention['type']}) does not compute the given causal self-attention "
                    f"with its own layers: build it as the exercise gives, CausalSelfAttention(AttentionConfig(...))")
        checked.append("its attention")
    return checked or ["its layers"]


def _block_judge(changes: dict):
    def judge(got):
        with one_thread():
            return _block_mistake(got, probe_config(**changes))
    return judge


def _block_gradient_judge(got):
    config = probe_config()
    with one_thread():
        if _block_mistake(got, config):
            return "fix the block's output first (see the first test)"
        gradient = got["gradient"]
        if isinstance(gradient, str):
            return backward_advice(gradient, "the block")
        return _gradient_mistake(got, config, gradient)


def _gradient_mistake(got, config, gradient) -> str | None:
    from coursekit.judging.gpt import block_candidates  # the reference's replays: judge side only

    parts = _block_parts(got, config)  # a dict: the block's output was right
    norms, layers = parts["norms"], (parts["attention"], parts["fc"], parts["proj"])
    for first, second in ((norms[0], norms[-1]), (norms[-1], norms[0])):
        x = probe_stream(config).requires_grad_(True)
        with torch.enable_grad():
            (block_candidates(x, *layers, first, second)[""]() * readout(x)).sum().backward()
        if close(gradient, x.grad, atol=1e-3):
            return None
    return ("the block's output is right but its gradient is not: part of it is cut off from autograd (a .detach(), "
            ".data or torch.no_grad() on the residual stream or a sub-layer's output), so the layers before the "
            "block would not learn through it. Keep every step differentiable: x = x + self.attn(self.ln_1(x))")


def _block_dropout_judge(got):
    config = probe_config(dropout=dropout_probability())
    runs, p = got["runs"], config.dropout
    problem = eval_mode_problem(runs)
    with one_thread():
        problem = problem or (_block_mistake(got, config) and "fix the block's output first (see the first test)")
    if problem:
        return problem
    calls = dropout_summary(runs["calls"], stream_sizes(config))
    wrong = [call["p"] for call in calls if abs(call["p"] - p) > 1e-9]
    if wrong:
        return (f"a dropout inside the block uses p = {round(wrong[0], 4)} though config.dropout = {p}: every "
                f"sub-module gets config.dropout (MLP(config), the attention's attn_pdrop and resid_pdrop)")
    zeros = float((runs["train"] == 0).mean())
    if zeros > 0.2:
        return (f"with dropout={p}, {zeros:.0%} of the block's outputs are exactly 0 in training mode: dropout is "
                f"applied to the residual stream itself. It belongs inside the sub-layers (the attention's and the "
                f"MLP's own dropout); the stream only ever gets their outputs added: x = x + attn(ln_1(x))")
    sites = [call["site"] for call in calls]
    if sites.count("stream") > 2:
        return (f"found {sites.count('stream')} dropouts on n_embd-wide tensors inside the block, expected 2 (the "
                f"attention's output projection and the MLP's output): drop the extra one (dropout before a "
                f"LayerNorm or on its output is not GPT-2's)")
    if np.allclose(runs["train"], runs["eval"][0], atol=1e-7) or (calls and sites.count("stream") < 2):
        found = (f"with config.dropout = {p} the block's sub-layers do not all use dropout in training mode (found "
                 f"{sites.count('stream')} dropout(s) on sub-layer outputs, expected 2: the attention's and the MLP's)")
        attention, mlp = (got["sublayers"][name] for name in ("attention", "mlp"))
        if attention is not None and attention["dropouts"] == 0:
            return (f"{found}: the attention drops nothing; build it as the exercise gives, with "
                    f"attn_pdrop=config.dropout and resid_pdrop=config.dropout")
        if mlp is not None and mlp["dropouts"] == 0:
            return f"{found}: the MLP drops nothing; build it as MLP(config), so it receives config.dropout"
        return (f"{found}: build the attention (attn_pdrop and resid_pdrop) and the MLP (MLP(config)) from "
                f"config.dropout")
    return None


def _norm_bias_judge(got):
    with one_thread():
        if _block_mistake(got, probe_config()):
            return "fix the block's output first (see the first test)"
    if any(not has_bias for _, has_gain, has_bias in got["layout"]["norms"] if has_gain):
        return ("a LayerNorm has no bias, though config.bias = True: use nn.LayerNorm(config.n_embd, bias=config.bias), "
                "as GPT-2 does (notebook 06 loads its gains and biases)")
    return None


check_block = Check(
    exercise="block",
    expects=["the class Block itself, built as Block(config)"],
    accepts=[is_module_class],
    tests=[
        Test("Block(config) with n_embd=12: pre-LayerNorm, residual connections, attention then MLP",
             values_probe({}), _block_judge({}), weight=14.0),
        Test("another size (n_embd=16, n_head=4)", values_probe({"n_embd": 16, "n_head": 4}),
             _block_judge({"n_embd": 16, "n_head": 4}), weight=4.0),
        Test("dropout in training inside the sub-layers, with config.dropout; off in eval",
             values_probe({}, dropout=True), _block_dropout_judge, weight=2.0, needs_right_outputs=True),
        Test("the LayerNorms have gains and biases (config.bias = True)", values_probe({}), _norm_bias_judge,
             weight=0.5, needs_right_outputs=True),
        Test("gradients flow through the block to its input (loss.backward() works)",
             values_probe({}, gradient=True), _block_gradient_judge, weight=1.5, needs_right_outputs=True),
    ],
)
