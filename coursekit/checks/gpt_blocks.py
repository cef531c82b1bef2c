"""Checks for notebook 04's building blocks: mlp (Linear -> GELU -> Linear -> Dropout) and block (pre-LayerNorm
attention and MLP with residual connections).

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
from coursekit.checks.gpt_common import (backward_advice, backward_error, close, described_run, dropout_probability,
                                         find, layers_problem, load_seeded_layers, norms_named_by_role, output_problem,
                                         probe_config, probe_stream, seeded_layers, sequence_length, sublayers)
from coursekit.checks.probing import (active, dropout_summary, eval_mode_problem, one_thread, randomise_parameters,
                                      recorded_dropout, run_module, train_and_eval_runs)

# ---------------------------------------------------------------- probes shared by mlp and block


def _values_probe(changes: dict, dropout: bool = False, gradient: bool = False):
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
            got["gradient"] = _stream_gradient(module, x)
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


def _stream_gradient(module, x: torch.Tensor):
    leaf = x.clone().requires_grad_(True)

    def loss():
        out = module(leaf * 1.0)  # a stream computed by earlier layers, as in a GPT (not a leaf)
        return ((out[0] if isinstance(out, tuple) else out) * readout(x)).sum()
    error = backward_error(loss)
    if error:
        return error
    return leaf.grad if leaf.grad is not None else "no gradient reached the block's input"


def _sizes(config) -> dict:
    return {"n_embd": config.n_embd, "T": sequence_length(config), "head_size": config.n_embd // config.n_head}


# ---------------------------------------------------------------- mlp


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


def _redrawn(got) -> dict:
    """got with the layers' values redrawn from the seed (seeded_layers), never taken from the sandbox."""
    return {**got, **seeded_layers(got["layout"])}


def _mlp_mistake(got, config) -> str | None:
    problem = layers_problem(got["layout"])
    if problem:
        return problem
    got = _redrawn(got)
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


def _norm_bias_judge(got):
    with one_thread():
        if _block_mistake(got, probe_config()):
            return "fix the block's output first (see the first test)"
    if any(not has_bias for _, has_gain, has_bias in got["layout"]["norms"] if has_gain):
        return ("a LayerNorm has no bias, though config.bias = True: use nn.LayerNorm(config.n_embd, bias=config.bias), "
                "as GPT-2 does (notebook 06 loads its gains and biases)")
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
    calls = dropout_summary(runs["calls"], _sizes(config))
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
        Test("MLP(config) with n_embd=12: Linear(12, 48) -> GELU -> Linear(48, 12)", _values_probe({}),
             _mlp_judge({}), weight=4.0),
        Test("another size (n_embd=20)", _values_probe({"n_embd": 20, "n_head": 4}),
             _mlp_judge({"n_embd": 20, "n_head": 4}), weight=1.0),
        Test("dropout(config.dropout) on the output in training, off in eval", _values_probe({}, dropout=True),
             _mlp_dropout_judge, weight=1.0, needs_right_outputs=True),
        Test("both Linears have biases (config.bias = True)", _values_probe({}), _mlp_bias_judge, weight=0.5,
             needs_right_outputs=True),
    ],
)


# ---------------------------------------------------------------- block


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

    got, C = _redrawn(got), config.n_embd
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
    calls = dropout_summary(runs["calls"], _sizes(config))
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


check_block = Check(
    exercise="block",
    expects=["the class Block itself, built as Block(config)"],
    accepts=[is_module_class],
    tests=[
        Test("Block(config) with n_embd=12: pre-LayerNorm, residual connections, attention then MLP",
             _values_probe({}), _block_judge({}), weight=14.0),
        Test("another size (n_embd=16, n_head=4)", _values_probe({"n_embd": 16, "n_head": 4}),
             _block_judge({"n_embd": 16, "n_head": 4}), weight=4.0),
        Test("dropout in training inside the sub-layers, with config.dropout; off in eval",
             _values_probe({}, dropout=True), _block_dropout_judge, weight=2.0, needs_right_outputs=True),
        Test("the LayerNorms have gains and biases (config.bias = True)", _values_probe({}), _norm_bias_judge,
             weight=0.5, needs_right_outputs=True),
        Test("gradients flow through the block to its input (loss.backward() works)",
             _values_probe({}, gradient=True), _block_gradient_judge, weight=1.5, needs_right_outputs=True),
    ],
)
