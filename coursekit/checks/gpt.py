"""Checks for notebook 04 (a GPT built and trained from scratch): mlp, block, gpt_constructor, forward, generate,
training_loop. (chars, encode and decode reuse the checks of coursekit/checks/characters.py.)

The student may name and arrange submodules as they like. A probe finds the parts by what they are: nn.Linear
layers by their shapes (n_embd -> 4 * n_embd is the MLP's first layer, n_embd -> 3 * n_embd the attention's fused
projection, ...), LayerNorms and Embeddings by type and size. It hands the judge those weights and the module's
output on a fixed input; the judge recomputes the right answer from the weights with reference code and, when
it differs, replays the usual mistakes (post-LN, a missing residual, no position embeddings, ...) to name the one
that matches. generate is tested through a fake forward that returns known logits, so its sampling can be
measured on thousands of draws; the training loop through a small spy model that records every call.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from coursekit.attention import AttentionConfig, CausalSelfAttention
from coursekit.checks.core import Check, Test, describe, is_module_class, type_and_value
from coursekit.gpt import GPT, GPTConfig

C = 12  # n_embd of every probe model: 4C = 48 and 3C = 36 tell the layers apart by shape
CONFIG = dict(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=C, dropout=0.0, bias=True)
B, T = 2, 5  # T < block_size: nothing may assume full-length sequences


def _config(**changes) -> GPTConfig:
    return GPTConfig(**{**CONFIG, **changes})


def _x(seed: int = 0, channels: int = C) -> torch.Tensor:
    return torch.randn(B, T, channels, generator=torch.Generator().manual_seed(seed)) * 2 + 0.5


def _call(module, *args):
    """module(*args) as {"output": ..., "error": None}, or the error it raised as text."""
    try:
        with torch.no_grad():
            return {"output": module(*args), "error": None}
    except Exception as error:  # the judge turns it into advice
        return {"output": None, "error": f"{type(error).__name__}: {error}"}


def _linears(module: nn.Module) -> list[dict]:
    """Every nn.Linear as {"in", "out", "weight", "bias"} (weight as stored: (out, in)), in registration order."""
    found, seen = [], set()
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear) and id(submodule) not in seen:
            seen.add(id(submodule))
            found.append({"in": submodule.in_features, "out": submodule.out_features,
                          "weight": submodule.weight.detach().clone(),
                          "bias": None if submodule.bias is None else submodule.bias.detach().clone()})
    return found


def _layer_norms(module: nn.Module) -> list[nn.Module]:
    """nn.LayerNorm modules (or home-made ones: a class called *LayerNorm* with a 1-D weight)."""
    return [m for m in module.modules() if isinstance(m, nn.LayerNorm) or (
        "layernorm" in type(m).__name__.lower() and getattr(m, "weight", None) is not None
        and m.weight.dim() == 1)]


def _randomise_layer_norms(module: nn.Module, seed: int = 1) -> list[dict]:
    """Give every LayerNorm a random gain and bias (fresh ones are 1 and 0, which hides which is which)."""
    generator = torch.Generator().manual_seed(seed)
    norms = []
    with torch.no_grad():
        for norm in _layer_norms(module):
            if norm.weight is None:  # nn.LayerNorm(n, elementwise_affine=False): nothing to learn
                norms.append({"weight": None, "bias": None})
                continue
            norm.weight.copy_(1 + 0.5 * torch.randn(norm.weight.shape, generator=generator))
            if getattr(norm, "bias", None) is not None:
                norm.bias.copy_(0.5 * torch.randn(norm.bias.shape, generator=generator))
            norms.append({"weight": norm.weight.detach().clone(),
                          "bias": None if getattr(norm, "bias", None) is None else norm.bias.detach().clone()})
    return norms


def _find(linears: list[dict], n_in: int, n_out: int) -> dict | None:
    return next((layer for layer in linears if layer["in"] == n_in and layer["out"] == n_out), None)


def _apply(layer: dict, x: torch.Tensor) -> torch.Tensor:
    weight = torch.as_tensor(layer["weight"])
    bias = None if layer["bias"] is None else torch.as_tensor(layer["bias"])
    return F.linear(x, weight, bias)


def _layer_norm(norm: dict, x: torch.Tensor) -> torch.Tensor:
    bias = None if norm["bias"] is None else torch.as_tensor(norm["bias"])
    return F.layer_norm(x, (x.size(-1),), torch.as_tensor(norm["weight"]), bias, eps=1e-5)


def _close(got, expected: torch.Tensor, atol: float = 1e-4) -> bool:
    return (isinstance(got, np.ndarray) and got.shape == tuple(expected.shape)
            and np.allclose(got, expected.detach().numpy(), atol=atol, rtol=1e-4))


def _output_problem(result: dict, shape: tuple, what: str) -> str | None:
    if result["error"]:
        return f"{what} raised {result['error']}"
    out = result["output"]
    if isinstance(out, list):
        return f"{what} should return one tensor of shape {shape}, got a {len(out)}-tuple"
    if not isinstance(out, np.ndarray) or out.shape != shape:
        return f"{what} should return a tensor of shape {shape}, got {describe(out)}"
    return None


# ---------------------------------------------------------------- dropout: on in training, off in eval


def _dropout_probe(build):
    def probe(module_class):
        torch.manual_seed(0)
        module = build(module_class, 0.5)
        x = _x()
        module.eval()
        evaluations = [_call(module, x)["output"] for _ in range(2)]
        module.train()
        torch.manual_seed(1)
        return {"eval": evaluations, "train": _call(module, x)["output"]}
    return probe


def _dropout_judge(where: str, residual_stream: bool = False):
    """residual_stream: the output is a residual stream, which dropout inside the sub-layers never zeroes."""
    def judge(got):
        first, second = got["eval"]
        if not all(isinstance(value, np.ndarray) for value in (first, second, got["train"])):
            return "fix the errors reported by the other tests first"
        if not np.array_equal(first, second):
            return ("dropout is active in eval mode: two calls on the same input after .eval() gave different "
                    "outputs. Use nn.Dropout modules (they switch off in eval mode), not F.dropout(x, p) on its own")
        if np.allclose(got["train"], first, atol=1e-7):
            return (f"with dropout=0.5 training mode gives the same output as eval mode: there is no dropout. "
                    f"{where}")
        zeros = float((got["train"] == 0).mean())
        if residual_stream and zeros > 0.2:
            return (f"with dropout=0.5, {zeros:.0%} of the block's outputs are exactly 0 in training mode: dropout is "
                    f"applied to the residual stream itself. It belongs inside the sub-layers (the attention's and the "
                    f"MLP's own dropout); the stream only ever gets their outputs added: x = x + attn(ln_1(x))")
        return None
    return judge


# ---------------------------------------------------------------- mlp


def _mlp_values(mlp_class):
    torch.manual_seed(0)
    mlp = mlp_class(_config()).eval()
    x = _x()
    return {"x": x, "linears": _linears(mlp), "result": _call(mlp, x)}


GELUS = {"exact": lambda h: F.gelu(h), "tanh": lambda h: F.gelu(h, approximate="tanh")}


def _mlp_judge(got):
    problem = _output_problem(got["result"], (B, T, C), f"MLP on x of shape {(B, T, C)}")
    if problem:
        return problem
    linears = got["linears"]
    first = next((layer for layer in linears if layer["in"] == C), None)
    if first is None:
        return f"no nn.Linear(n_embd, ...) found: the MLP starts with nn.Linear(n_embd, 4 * n_embd) = ({C}, {4 * C})"
    if first["out"] != 4 * C:
        return (f"the hidden layer has {first['out']} units; a transformer's MLP expands to 4 * n_embd = {4 * C} "
                f"(the 4x expansion), then projects back to n_embd")
    second = _find(linears, 4 * C, C)
    if second is None:
        return f"no nn.Linear(4 * n_embd, n_embd) = ({4 * C}, {C}) found to project the hidden layer back"
    x, out = torch.as_tensor(got["x"]), got["result"]["output"]
    hidden = _apply(first, x)
    if _close(out, _apply(second, GELUS["tanh"](hidden))):
        return None
    mistakes = {
        "exact": (GELUS["exact"], "the MLP uses the exact GELU, nn.GELU(); use nn.GELU(approximate=\"tanh\"), the "
                                  "version GPT-2 was trained with (notebook 06 loads GPT-2's weights into this "
                                  "layout, and the comparison with coursekit's GPT below needs the same function)"),
        "relu": (F.relu, "the activation is ReLU; GPT-2 uses GELU (nn.GELU(approximate=\"tanh\")), a smooth "
                         "version that keeps small gradients for negative inputs"),
        "none": (lambda h: h, "there is no activation between the two layers, so the MLP is one linear map: "
                              "put nn.GELU(approximate=\"tanh\") between them"),
    }
    for activation, message in mistakes.values():
        if _close(out, _apply(second, activation(hidden))):
            return message
    if any(_close(out, gelu(_apply(second, gelu(hidden)))) for gelu in GELUS.values()):
        return "there is a GELU after the second layer too: the MLP's output is c_proj(gelu(c_fc(x))), no activation after it"
    return ("the MLP does not compute c_proj(gelu(c_fc(x))) with its own layers: check the order "
            "Linear(n_embd, 4 * n_embd) -> GELU -> Linear(4 * n_embd, n_embd) -> Dropout")


check_mlp = Check(
    exercise="mlp",
    expects=["the class MLP itself, built as MLP(config)"],
    accepts=[is_module_class],
    tests=[
        Test("MLP(config) with n_embd=12: Linear(12, 48) -> GELU -> Linear(48, 12)", _mlp_values, _mlp_judge),
        Test("dropout: on in training, off in eval", _dropout_probe(lambda cls, p: cls(_config(dropout=p))),
             _dropout_judge("End the MLP with nn.Dropout(config.dropout).")),
    ],
)


# ---------------------------------------------------------------- block


def _block_values(block_class):
    torch.manual_seed(0)
    block = block_class(_config()).eval()
    norms = _randomise_layer_norms(block)
    x = _x()
    return {"x": x, "norms": norms, "linears": _linears(block), "result": _call(block, x)}


def _attention_from(linears: list[dict]):
    """The reference attention with the block's own weights, or None when they are not there."""
    c_attn, c_proj = _find(linears, C, 3 * C), _find(linears, C, C)
    if c_attn is None or c_proj is None:
        return None
    attention = CausalSelfAttention(AttentionConfig(n_embd=C, n_head=CONFIG["n_head"], block_size=CONFIG["block_size"]))
    with torch.no_grad():
        for layer, found in ((attention.c_attn, c_attn), (attention.c_proj, c_proj)):
            layer.weight.copy_(torch.as_tensor(found["weight"]))
            layer.bias.copy_(torch.zeros_like(layer.bias) if found["bias"] is None else torch.as_tensor(found["bias"]))
    return attention.eval()


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
    "parallel": ("attention and MLP both read the block's input (x + attn(ln_1(x)) + mlp(ln_2(x))): in GPT-2 the MLP "
                 "reads the stream after the attention was added"),
}


def _block_candidates(x, attn, mlp, ln_a, ln_b) -> dict:
    def correct():
        h = x + attn(ln_a(x))
        return h + mlp(ln_b(h))

    def post_ln():
        h = ln_a(x + attn(x))
        return ln_b(h + mlp(h))

    def no_attention_residual():
        h = attn(ln_a(x))
        return h + mlp(ln_b(h))

    def no_mlp_residual():
        return mlp(ln_b(x + attn(ln_a(x))))

    def around_norm():
        h = ln_a(x)
        h = h + attn(h)
        g = ln_b(h)
        return g + mlp(g)

    def mlp_first():
        h = x + mlp(ln_a(x))
        return h + attn(ln_b(h))

    def no_norm():
        h = x + attn(x)
        return h + mlp(h)

    return {"": correct, "post-LN": post_ln, "no residual around attention": no_attention_residual,
            "no residual around the MLP": no_mlp_residual, "no residual at all": lambda: mlp(ln_b(attn(ln_a(x)))),
            "residual around the LayerNorm": around_norm, "MLP first": mlp_first, "no LayerNorm": no_norm,
            "parallel": lambda: x + attn(ln_a(x)) + mlp(ln_b(x))}


def _block_judge(got):
    problem = _output_problem(got["result"], (B, T, C), f"Block(config) with n_embd={C} on x of shape {(B, T, C)}")
    if problem:
        return problem
    linears, norms = got["linears"], got["norms"]
    attention = _attention_from(linears)
    if attention is None:
        return (f"could not find the attention's layers nn.Linear(n_embd, 3 * n_embd) and nn.Linear(n_embd, n_embd) in "
                f"the block: use the CausalSelfAttention given in the exercise, built from config")
    fc, proj = _find(linears, C, 4 * C), _find(linears, 4 * C, C)
    if fc is None or proj is None:
        return f"could not find the MLP's layers ({C} -> {4 * C} -> {C}) in the block: use your MLP(config) (check_mlp first)"
    if not norms:
        return ("the block has no LayerNorm: it needs two nn.LayerNorm(n_embd), ln_1 before the attention and ln_2 "
                "before the MLP")
    if any(norm["weight"] is None for norm in norms):
        return ("a LayerNorm has no learned gain and bias (elementwise_affine=False): use "
                "nn.LayerNorm(config.n_embd, bias=config.bias), as GPT-2 does (notebook 06 loads its gains and biases)")
    x, out = torch.as_tensor(got["x"]), got["result"]["output"]
    layer_norms = [lambda h, n=n: _layer_norm(n, h) for n in norms]
    found = {}
    with torch.no_grad():
        for gelu in GELUS.values():
            def mlp(h, gelu=gelu):
                return _apply(proj, gelu(_apply(fc, h)))
            for a, ln_a in enumerate(layer_norms):
                for b, ln_b in enumerate(layer_norms):
                    for name, compute in _block_candidates(x, attention, mlp, ln_a, ln_b).items():
                        if name not in found and _close(out, compute()):
                            found[name] = (a, b)
    if "" in found:
        a, b = found[""]
        if a == b and len(norms) > 1:
            return ("the same LayerNorm is used before the attention and before the MLP: each sub-layer needs its own "
                    "(ln_1 and ln_2), with its own gain and bias")
        if len(norms) == 1:
            return "the block has one LayerNorm shared by both sub-layers: give each its own (ln_1 and ln_2)"
        return None
    for name, message in BLOCK_MISTAKES.items():
        if name in found:
            return message
    return ("the block's output is not x + attn(ln_1(x)) followed by x + mlp(ln_2(x)) with its own layers "
            "(and none of the usual mistakes matches). If check_mlp passed, check the wiring line by line")


def _block_sizes(block_class):
    torch.manual_seed(0)
    config = _config(n_embd=16, n_head=4)
    return _call(block_class(config).eval(), _x(channels=16))


check_block = Check(
    exercise="block",
    expects=["the class Block itself, built as Block(config)"],
    accepts=[is_module_class],
    tests=[
        Test("Block(config) with n_embd=12: pre-LayerNorm, residual connections, attention then MLP",
             _block_values, _block_judge),
        Test("another size (n_embd=16, n_head=4)", _block_sizes,
             lambda got: _output_problem(got, (B, T, 16), "Block(config) with n_embd=16, n_head=4 (nothing may be "
                                                          "hard-coded; use config.n_embd)")),
        Test("dropout: on in training, off in eval", _dropout_probe(lambda cls, p: cls(_config(dropout=p))),
             _dropout_judge("Pass config.dropout to the attention and to your MLP.", residual_stream=True)),
    ],
)


# ---------------------------------------------------------------- gpt_constructor


def _structure(gpt_class, **changes) -> dict:
    torch.manual_seed(0)
    config = _config(**changes)
    model = gpt_class(config)
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    token = next((m for m in embeddings if m.num_embeddings == config.vocab_size), None)
    heads = [m for m in linears if m.in_features == config.n_embd and m.out_features == config.vocab_size]
    return {
        "config": {"vocab_size": config.vocab_size, "block_size": config.block_size, "n_layer": config.n_layer},
        "has_config": getattr(model, "config", None) is config,
        "embeddings": [[m.num_embeddings, m.embedding_dim] for m in embeddings],
        "layer_norms": len(_layer_norms(model)),
        "attention_layers": sum(1 for m in linears if (m.in_features, m.out_features) == (config.n_embd, 3 * config.n_embd)),
        "mlp_layers": sum(1 for m in linears if (m.in_features, m.out_features) == (config.n_embd, 4 * config.n_embd)),
        "linear_shapes": [[m.in_features, m.out_features] for m in linears],
        "heads": len(heads),
        "head_bias": bool(heads and heads[-1].bias is not None),
        "tied": bool(heads and token is not None and heads[-1].weight is token.weight),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def _structure_judge(got) -> str | None:
    config = got["config"]
    V, block_size, n_layer = config["vocab_size"], config["block_size"], config["n_layer"]
    where = f"GPT(config) with vocab_size={V}, block_size={block_size}, n_layer={n_layer}, n_embd={C}"
    if not got["has_config"]:
        return f"{where}: keep the config as self.config (generate and the Trainer read self.config.block_size)"
    embeddings = got["embeddings"]
    if [V, C] not in embeddings:
        return f"{where}: no token embedding nn.Embedding(vocab_size, n_embd) = ({V}, {C}); found embeddings {embeddings}"
    if [block_size, C] not in embeddings:
        if embeddings.count([V, C]) > 1:
            return (f"{where}: the position embedding has vocab_size rows; it needs one row per position: "
                    f"nn.Embedding(block_size, n_embd) = ({block_size}, {C})")
        return (f"{where}: no position embeddings: attention alone does not know the order of the tokens; add "
                f"nn.Embedding(block_size, n_embd) = ({block_size}, {C})")
    if got["attention_layers"] != n_layer or got["mlp_layers"] != n_layer:
        return (f"{where}: found {got['attention_layers']} attention layer(s) and {got['mlp_layers']} MLP(s), expected "
                f"n_layer={n_layer} Blocks: build them in a loop, nn.ModuleList([Block(config) for _ in "
                f"range(config.n_layer)])")
    if got["layer_norms"] == 2 * n_layer:
        return f"{where}: the final LayerNorm is missing: add nn.LayerNorm(n_embd) (ln_f) after the last Block"
    if got["layer_norms"] != 2 * n_layer + 1:
        return (f"{where}: found {got['layer_norms']} LayerNorms, expected 2 per Block plus a final one "
                f"= {2 * n_layer + 1}")
    if got["heads"] == 0:
        shapes = [shape for shape in got["linear_shapes"] if shape[0] == C and shape[1] not in (3 * C, 4 * C, C)]
        found = f" (found nn.Linear{tuple(shapes[-1])})" if shapes else ""
        return (f"{where}: no LM head: it maps each position's n_embd features to one logit per token, "
                f"nn.Linear(n_embd, vocab_size, bias=False) = ({C}, {V}){found}")
    if not got["tied"]:
        return (f"{where}: the LM head is not tied to the token embedding: after creating both, set "
                f"self.lm_head.weight = self.transformer.wte.weight (one (vocab_size, n_embd) matrix for both)")
    expected = GPT(GPTConfig(**{**CONFIG, **config})).num_parameters()
    if got["parameters"] != expected:
        extra = got["parameters"] - expected
        hint = " (the LM head has a bias: use bias=False)" if got["head_bias"] and extra == V else ""
        return (f"{where}: the model has {got['parameters']:,} parameters, GPT-2's layout has {expected:,} "
                f"({extra:+,}){hint}")
    return None


check_gpt_constructor = Check(
    exercise="gpt_constructor",
    expects=["the class GPT itself, built as GPT(config)"],
    accepts=[is_module_class],
    tests=[
        Test("GPT(config) with n_layer=2: embeddings, Blocks, final LayerNorm, tied LM head",
             lambda cls: _structure(cls), _structure_judge),
        Test("GPT(config) with n_layer=3, vocab_size=13, block_size=9", lambda cls: _structure(
            cls, n_layer=3, vocab_size=13, block_size=9), _structure_judge),
    ],
)


# ---------------------------------------------------------------- forward

V = CONFIG["vocab_size"]


def _idx(seed: int = 0, length: int = T) -> torch.Tensor:
    return torch.randint(V, (B, length), generator=torch.Generator().manual_seed(seed))


def _forward_result(model, *args) -> dict:
    result = _call(model, *args)
    out = result["output"]
    if result["error"] is None and not (isinstance(out, tuple) and len(out) == 2):
        return {"error": None, "pair": False, "returned": describe(out)}
    if result["error"]:
        return {"error": result["error"], "pair": False}
    logits, loss = out
    return {"error": None, "pair": True, "logits": logits if isinstance(logits, torch.Tensor) else describe(logits),
            "loss": type_and_value(loss)}


def _forward_embeddings(gpt_class):
    """No Blocks (n_layer=0): the logits are lm_head(ln_f(wte[idx] + wpe[positions])), computable from the weights."""
    torch.manual_seed(0)
    model = gpt_class(_config(n_layer=0)).eval()
    norms = _randomise_layer_norms(model)
    embeddings = {m.num_embeddings: m.weight.detach().clone() for m in model.modules() if isinstance(m, nn.Embedding)}
    idx = _idx()
    return {"idx": idx, "norms": norms, "token": embeddings.get(V), "position": embeddings.get(CONFIG["block_size"]),
            "head": next((layer for layer in reversed(_linears(model)) if layer["out"] == V), None),
            "result": _forward_result(model, idx)}


def _forward_problem(result, what: str) -> str | None:
    if result["error"]:
        if "index out of range" in result["error"]:
            return (f"{what} raised {result['error']}: the positions must be torch.arange(T) for the T tokens of idx "
                    f"(T <= block_size), not the token ids")
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


def _embeddings_judge(got):
    what = f"forward(idx) on idx of shape {(B, T)} with n_layer=0"
    problem = _forward_problem(got["result"], what)
    if problem:
        return problem
    if got["token"] is None or got["position"] is None or got["head"] is None or len(got["norms"]) != 1:
        return "fix check_gpt_constructor first (it finds the embeddings, final LayerNorm and LM head)"
    idx = torch.as_tensor(got["idx"])
    wte, wpe = torch.as_tensor(got["token"]), torch.as_tensor(got["position"])
    ln_f = got["norms"][0]

    def logits(x, final_norm=True):
        return _apply(got["head"], _layer_norm(ln_f, x) if final_norm else x)

    positions = torch.arange(T)
    out = got["result"]["logits"]
    if _close(out, logits(wte[idx] + wpe[positions])):
        return None
    block_size = wpe.size(0)
    mistakes = [
        (logits(wte[idx]), "the position embeddings are not added: x = wte(idx) + wpe(torch.arange(T))"),
        (logits(wte[idx] + wpe[positions + 1]), "the positions start at 1; they are torch.arange(T) = 0 .. T - 1"),
        (logits(wte[idx] + wpe[block_size - T:]), "the positions are the last T of block_size; a sequence of T "
                                                  "tokens uses positions 0 .. T - 1 (torch.arange(T))"),
        (logits(wte[idx] + wpe[positions], final_norm=False), "the final LayerNorm (ln_f) is not applied before "
                                                              "the LM head"),
        (logits(wte[idx] + wpe[positions]).softmax(-1), "forward returns probabilities; return the raw logits "
                                                        "(F.cross_entropy and sampling apply the softmax themselves)"),
    ]
    if int(idx.max()) < block_size:
        mistakes.append((logits(wte[idx] + wpe[idx]), "the position embeddings are looked up with the token ids; "
                                                      "look them up with the positions torch.arange(T)"))
    for expected, message in mistakes:
        if _close(out, expected):
            return message
    return ("with n_layer=0 the logits should be lm_head(ln_f(wte(idx) + wpe(arange(T)))), and they are not "
            "(none of the usual mistakes matches)")


def _forward_loss(gpt_class):
    torch.manual_seed(0)
    model = gpt_class(_config()).eval()
    idx = _idx()
    targets = _idx(seed=1, length=T + 1)[:, 1:]  # a slice, like y = windows[:, 1:]: not contiguous in memory
    return {"targets": targets, "without": _forward_result(model, idx), "with": _forward_result(model, idx, targets)}


def _loss_none_judge(got):
    result = got["without"]
    problem = _forward_problem(result, f"forward(idx) without targets")
    if problem:
        return problem
    if result["loss"]["type"] != "NoneType":
        return (f"forward(idx) without targets should return (logits, None): there is nothing to compare with, got a "
                f"loss of type {result['loss']['type']}")
    return None


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
    logits, targets = torch.as_tensor(result["logits"]).double(), torch.as_tensor(got["targets"])
    flat = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    value = float(np.asarray(loss["value"]).reshape(-1)[0])
    if abs(value - flat.item()) < 1e-4:
        return None
    if abs(value - flat.item() * B * T) < 1e-3:
        return "the loss is the sum over positions; F.cross_entropy's default mean is what we want"
    shifted = F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1))
    if abs(value - shifted.item()) < 1e-4:
        return ("forward shifts the targets again: the targets passed in are already the next tokens (y[t] = x[t + 1]), "
                "so compare logits[:, t] with targets[:, t]")
    if abs(value - F.cross_entropy(logits.softmax(-1).reshape(-1, V), targets.reshape(-1)).item()) < 1e-4:
        return "the loss is computed on probabilities; F.cross_entropy takes the raw logits"
    return f"the loss should be F.cross_entropy of the returned logits and the targets ({flat.item():.4f}), got {value:.4f}"


def _causal_probe(gpt_class):
    torch.manual_seed(0)
    model = gpt_class(_config()).eval()
    idx = _idx()
    changed = idx.clone()
    changed[:, 3:] = (changed[:, 3:] + 1) % V
    return {"before": _forward_result(model, idx), "after": _forward_result(model, changed)}


def _causal_judge(got):
    problem = _forward_problem(got["before"], "forward(idx) with n_layer=2")
    if problem:
        return problem
    before, after = got["before"]["logits"], got["after"]["logits"]
    if not np.allclose(before[:, :3], after[:, :3], atol=1e-5):
        return "changing the tokens at positions 3-4 changed the logits at positions 0-2: the model sees the future"
    if np.allclose(before[:, 3:], after[:, 3:], atol=1e-6):
        return "changing the tokens at positions 3-4 did not change their logits: does forward use idx?"
    return None


check_forward = Check(
    exercise="forward",
    expects=["the class GPT itself, with its forward(idx, targets=None) -> (logits, loss)"],
    accepts=[is_module_class],
    tests=[
        Test("n_layer=0: logits = lm_head(ln_f(token + position embeddings))", _forward_embeddings, _embeddings_judge),
        Test("without targets the loss is None", _forward_loss, _loss_none_judge),
        Test("with targets: cross-entropy over all B * T positions", _forward_loss, _loss_judge),
        Test("n_layer=2: logits (B, T, vocab_size), no position sees the future", _causal_probe, _causal_judge),
    ],
)


# ---------------------------------------------------------------- generate

# Token ids in order of likelihood: the most likely token is 4, then 9, ... The vocabulary order is not the rank
# order, so a filter that forgets to map sorted positions back to token ids keeps the wrong tokens.
RANKING = torch.tensor([4, 9, 1, 7, 0, 10, 3, 6, 2, 8, 5])


def _in_vocabulary_order(ranked: torch.Tensor) -> torch.Tensor:
    """Values given best first, placed at the token ids RANKING names."""
    return torch.empty_like(ranked).scatter_(0, RANKING, ranked)


BASE_LOGITS = _in_vocabulary_order(torch.tensor([2.0, 1.2, 0.9, 0.3, 0.0, -0.3, -0.5, -1.0, -1.5, -2.0, -3.0]))
NUCLEUS_PROBS = _in_vocabulary_order(torch.tensor([0.36, 0.22, 0.16, 0.10, 0.06, 0.04, 0.025, 0.015, 0.01, 0.006,
                                                   0.004]))
SAMPLES_B, SAMPLES_N = 500, 8  # 4000 draws per setting


def _fake_forward(model, last_logits: torch.Tensor, calls: list):
    """Replace model.forward: every position predicts token 9 except the last, which predicts from last_logits."""
    def forward(idx, targets=None):
        calls.append(idx.detach().clone())
        logits = torch.full((idx.size(0), idx.size(1), V), -5.0)
        logits[:, :, 9] = 5.0
        logits[:, -1] = last_logits
        return logits, None
    model.forward = forward
    return model


def _generate(gpt_class, last_logits, seed=0, **settings):
    torch.manual_seed(seed)
    calls = []
    model = _fake_forward(gpt_class(_config()).eval(), last_logits, calls)
    prompt = torch.zeros(SAMPLES_B, 1, dtype=torch.long)
    try:
        out = model.generate(prompt, SAMPLES_N, generator=torch.Generator().manual_seed(seed), **settings)
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}", "counts": None}
    if not isinstance(out, torch.Tensor) or out.shape != (SAMPLES_B, SAMPLES_N + 1):
        return {"error": f"returned {describe(out)}, expected shape {(SAMPLES_B, SAMPLES_N + 1)}", "counts": None}
    new = out[:, 1:].reshape(-1)
    return {"error": None, "counts": torch.bincount(new.clamp(0, V - 1), minlength=V)}


def _crop_probe(gpt_class):
    torch.manual_seed(0)
    calls = []
    model = _fake_forward(gpt_class(_config()).eval(), torch.tensor([0.0] * 3 + [20.0] + [0.0] * 7), calls)
    prompt = _idx(length=5)
    try:
        out = model.generate(prompt, 7, generator=torch.Generator().manual_seed(0))
    except Exception as error:
        return {"error": f"{type(error).__name__}: {error}"}
    return {"error": None, "prompt": prompt, "out": out if isinstance(out, torch.Tensor) else describe(out),
            "calls": calls}


def _crop_judge(got):
    what = "generate(idx of shape (2, 5), max_new_tokens=7) with block_size=8"
    if got["error"]:
        return f"{what} raised {got['error']}"
    out, prompt, calls = got["out"], got["prompt"], got["calls"]
    if not isinstance(out, np.ndarray) or out.shape != (B, 12):
        return f"{what} should return the prompt and the 7 new tokens, shape (2, 12), got {describe(out)}"
    if not np.array_equal(out[:, :5], prompt):
        return "the returned sequence should start with the prompt idx, followed by the new tokens (torch.cat)"
    if len(calls) != 7:
        return f"the model should be called once per new token (7 times), got {len(calls)} calls"
    for step, seen in enumerate(calls):
        length = 5 + step
        if seen.shape[1] > 8:
            return (f"at step {step} the model was given {seen.shape[1]} tokens, more than block_size=8 (it has only "
                    f"8 position embeddings): crop the context to the last block_size tokens, idx[:, -block_size:]")
        expected = out[:, max(0, length - 8):length]
        if not np.array_equal(seen, expected):
            if np.array_equal(seen, out[:, :min(length, 8)]):
                return ("the context is cropped to the first block_size tokens; the next token depends on the most "
                        "recent ones: idx[:, -block_size:]")
            return f"at step {step} the model should see the last min(T, block_size) tokens of the sequence so far"
    if not (out[:, 5:] == 3).all():
        if (out[:, 5:] == 9).all():
            return ("the new token is sampled from the logits of the first position; the prediction of the next token is "
                    "at the last position: logits[:, -1, :]")
        if (out[:, 5:] == 0).all():
            return ("every new token is 0, the position of the most likely token in sorted order, not its id (3): "
                    "after sampling among sorted probabilities return order.gather(-1, choice), or sample from the "
                    "probabilities in vocabulary order")
        return "the new tokens do not follow the last position's logits (which put almost all mass on token 3)"
    return None


def _distance(counts: np.ndarray, probs: torch.Tensor) -> float:
    return 0.5 * float(np.abs(counts / counts.sum() - probs.numpy()).sum())  # total variation distance


TOLERANCE = 0.04  # 4000 draws: sampling noise is around 0.015


def _stat_judge(name: str, expected_probs, wrong: dict):
    def judge(got):
        if got["error"]:
            return f"generate(..., {name}) raised {got['error']}"
        counts = got["counts"]
        expected = expected_probs()
        if _distance(counts, expected) < TOLERANCE:
            return None
        for message, probs in wrong.items():
            if _distance(counts, probs()) < TOLERANCE:
                return message
        top = np.argsort(-expected.numpy())[:4]
        return (f"with {name} the sampled frequencies of tokens {top.tolist()} are "
                f"{[round(float(count) / counts.sum(), 3) for count in counts[top]]}, expected about "
                f"{[round(float(probability), 3) for probability in expected[top]]}")
    return judge


def _softmax(logits):
    return lambda: torch.softmax(logits, -1)


def _only(logits, keep):
    return lambda: torch.softmax(logits.masked_fill(~keep, float("-inf")), -1)


def _greedy(logits):
    return lambda: F.one_hot(logits.argmax(), V).float()


def _keep_first(n):
    """The n most likely tokens."""
    return torch.zeros(V, dtype=torch.bool).index_fill_(0, RANKING[:n], True)


def _sorted_positions_as_ids(keep):
    """The bug of a filter that never maps back: it keeps token ids 0 .. n - 1, the positions in sorted order."""
    return torch.arange(V) < int(keep.sum())


TOP_K = 3
_keep_top = _keep_first(TOP_K)
_nucleus_logits = NUCLEUS_PROBS.log()
_nucleus = _keep_first(3)  # 0.36 + 0.22 < 0.7 <= 0.36 + 0.22 + 0.16


def _generator_probe(gpt_class):
    """Two runs whose global seeds differ but whose generators are seeded alike must give the same tokens."""
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        model = _fake_forward(gpt_class(_config()).eval(), BASE_LOGITS, [])
        torch.manual_seed(global_seed)
        try:
            out = model.generate(torch.zeros(4, 1, dtype=torch.long), 8, generator=torch.Generator().manual_seed(0))
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}
        runs.append(out if isinstance(out, torch.Tensor) else describe(out))
    return {"error": None, "runs": runs}


def _generator_judge(got):
    if got["error"]:
        return f"generate(..., generator=torch.Generator().manual_seed(0)) raised {got['error']}"
    first, second = got["runs"]
    if not (isinstance(first, np.ndarray) and isinstance(second, np.ndarray)):
        return "fix the errors reported by the other tests first"
    if not np.array_equal(first, second):
        return ("two calls with generators seeded alike gave different tokens: the generator is ignored. Pass it on, "
                "torch.multinomial(probs, num_samples=1, generator=generator), so runs are reproducible")
    return None


check_generate = Check(
    exercise="generate",
    expects=["the class GPT itself, with its generate(idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, "
             "generator=None)"],
    accepts=[is_module_class],
    tests=[
        Test("the context is cropped to the last block_size tokens; the next token comes from the last position",
             _crop_probe, _crop_judge),
        Test("temperature 0.5 sharpens the distribution (4000 draws)",
             lambda cls: _generate(cls, BASE_LOGITS, temperature=0.5),
             _stat_judge("temperature=0.5", _softmax(BASE_LOGITS / 0.5), {
                 "temperature is ignored: divide the logits by temperature before the softmax": _softmax(BASE_LOGITS),
                 "the logits are multiplied by the temperature; divide them by it": _softmax(BASE_LOGITS * 0.5),
                 "generate always picks the most likely token: sample with torch.multinomial(probs, 1)":
                     _greedy(BASE_LOGITS)})),
        Test("temperature 2 flattens the distribution (4000 draws)",
             lambda cls: _generate(cls, BASE_LOGITS, temperature=2.0),
             _stat_judge("temperature=2.0", _softmax(BASE_LOGITS / 2.0), {
                 "temperature is ignored: divide the logits by temperature before the softmax": _softmax(BASE_LOGITS),
                 "the logits are multiplied by the temperature; divide them by it": _softmax(BASE_LOGITS * 2.0)})),
        Test(f"top_k={TOP_K} samples only the {TOP_K} most likely tokens, in proportion",
             lambda cls: _generate(cls, BASE_LOGITS, top_k=TOP_K),
             _stat_judge(f"top_k={TOP_K}", _only(BASE_LOGITS, _keep_top), {
                 "top_k is ignored: set every logit below the k-th largest to -inf before the softmax":
                     _softmax(BASE_LOGITS),
                 "top_k keeps k + 1 tokens: keep logits >= the k-th largest (torch.topk(logits, k).values[:, [-1]])":
                     _only(BASE_LOGITS, _keep_first(TOP_K + 1)),
                 "top_k keeps k - 1 tokens: keep logits >= the k-th largest (torch.topk(logits, k).values[:, [-1]])":
                     _only(BASE_LOGITS, _keep_first(TOP_K - 1)),
                 "top_k keeps the k least likely tokens: torch.topk returns the largest by default":
                     _only(BASE_LOGITS, ~_keep_first(V - TOP_K)),
                 ("top_k sets the other logits to 0 instead of -inf: exp(0) = 1, so those tokens are still sampled; "
                  "fill them with float('-inf')"): _softmax(BASE_LOGITS.masked_fill(~_keep_top, 0.0)),
                 ("top_k keeps tokens 0 .. k - 1, positions in sorted order, not the k most likely token ids: map "
                  "back with torch.topk(...).indices (or compare logits with the k-th largest value)"):
                     _only(BASE_LOGITS, _sorted_positions_as_ids(_keep_top)),
                 ("top-k was applied after the softmax and the result went through a softmax again, which flattens "
                  "it: filter the logits (-inf outside the top k), then apply the softmax once"):
                     _softmax(torch.softmax(BASE_LOGITS, -1).masked_fill(~_keep_top, float("-inf")))})),
        Test("top_k=1 is greedy decoding", lambda cls: _generate(cls, BASE_LOGITS, top_k=1),
             _stat_judge("top_k=1", _greedy(BASE_LOGITS), {})),
        Test("top_p=0.7 samples only from the nucleus (the fewest tokens holding >= 70%), in proportion",
             lambda cls: _generate(cls, _nucleus_logits, top_p=0.7),
             _stat_judge("top_p=0.7", _only(_nucleus_logits, _nucleus), {
                 "top_p is ignored: keep the most likely tokens until their probabilities add up to top_p":
                     _softmax(_nucleus_logits),
                 ("the nucleus misses the token that crosses top_p: keep a token when the probability *before* it "
                  "(cumsum - probs) is still < top_p, so the kept tokens hold at least top_p"):
                     _only(_nucleus_logits, _keep_first(2)),
                 "the nucleus keeps one token too many: drop a token once the tokens before it hold >= top_p":
                     _only(_nucleus_logits, _keep_first(4)),
                 ("the nucleus is computed in sorted order but applied to token ids 0 .. n - 1: map the mask back to "
                  "vocabulary order (mask.scatter(-1, order, mask), with order from torch.sort), or sample among the "
                  "sorted probabilities and return order.gather(-1, choice)"):
                     _only(_nucleus_logits, _sorted_positions_as_ids(_nucleus))})),
        Test("sampling uses the generator it is given", _generator_probe, _generator_judge),
    ],
)


# ---------------------------------------------------------------- training_loop

TRAIN_TOKENS, VOCAB_SPY, BLOCK_SPY = 8, 16, 6  # training data uses tokens 0-7, validation data 8-15
STEPS, BATCH, INTERVAL, LEARNING_RATE, CLIP = 12, 4, 5, 3e-3, 0.5


def _batch_probe(get_batch):
    data = torch.arange(100)
    x, y = get_batch(data, 64, 8, torch.Generator().manual_seed(0))
    again = get_batch(data, 64, 8, torch.Generator().manual_seed(0))[0]
    small = torch.arange(10)
    starts = set()
    for seed in range(40):
        xs, _ = get_batch(small, 8, 8, torch.Generator().manual_seed(seed))
        starts.update(int(row[0]) for row in xs)
    return {"x": type_and_value(x), "y": type_and_value(y), "again": type_and_value(again), "starts": sorted(starts)}


def _batch_judge(got):
    what = "get_batch(torch.arange(100), batch_size=64, block_size=8, generator)"
    x, y = got["x"]["value"], got["y"]["value"]
    if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
        return f"{what} should return two tensors x, y, got {got['x']['type']} and {got['y']['type']}"
    if x.shape != (64, 8) or y.shape != (64, 8):
        return f"{what}: x and y should both have shape (batch_size, block_size) = (64, 8), got {x.shape} and {y.shape}"
    if not (x[:, 1:] == x[:, :-1] + 1).all():
        return f"{what}: each row of x should be block_size consecutive tokens, data[i : i + block_size]"
    if (y == x).all():
        return "y equals x: the targets are the next tokens, y = data[i + 1 : i + block_size + 1]"
    if (y == x + 2).all():
        return "y is shifted by two; the target of x[t] is the token right after it: y = data[i + 1 : i + block_size + 1]"
    if (y == x - 1).all():
        return "y is shifted the wrong way (the previous token); y = data[i + 1 : i + block_size + 1]"
    if not (y == x + 1).all():
        return "y should be x shifted by one token: y[:, t] is the token after x[:, t]"
    if not np.array_equal(x, got["again"]["value"]):
        return "two calls with identically seeded generators gave different batches: pass generator to torch.randint"
    if len(set(x[:, 0].tolist())) < 20:
        return "the windows barely vary: draw batch_size random start positions with torch.randint"
    if got["starts"] != [0, 1]:
        return (f"for data of length 10 and block_size 8 the windows can start at 0 or 1 (x = data[i:i+8], "
                f"y = data[i+1:i+9]); yours started at {got['starts']}: torch.randint(len(data) - block_size, ...)")
    return None


class SpyModel(nn.Module):
    """A bigram model that records every call (mode, gradients on, inputs) and every fresh gradient."""

    def __init__(self):
        super().__init__()
        self.config = GPTConfig(vocab_size=VOCAB_SPY, block_size=BLOCK_SPY, n_layer=1, n_head=1, n_embd=8)
        self.embedding = nn.Embedding(VOCAB_SPY, 8)
        self.head = nn.Linear(8, VOCAB_SPY)
        self.calls, self.fresh = [], []
        for parameter in self.parameters():
            parameter.register_hook(lambda grad, p=parameter: self.fresh.append((p, grad.detach().clone())))

    def forward(self, idx, targets=None):
        logits = self.head(self.embedding(idx))
        loss = None if targets is None else 50 * F.cross_entropy(logits.reshape(-1, VOCAB_SPY), targets.reshape(-1))
        call = {"training": self.training, "grad": torch.is_grad_enabled(), "x": idx.detach().clone(),
                "y": None if targets is None else targets.detach().clone(),
                "loss": None if loss is None else loss.item(), "backward": False}
        if loss is not None and loss.requires_grad:
            loss.register_hook(lambda grad: call.update(backward=True))  # runs when loss.backward() reaches it
        self.calls.append(call)
        return logits, loss


def _train_probe(get_batch, train):
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    train_data = torch.randint(TRAIN_TOKENS, (400,), generator=generator)
    val_data = TRAIN_TOKENS + torch.randint(VOCAB_SPY - TRAIN_TOKENS, (200,), generator=generator)
    model = SpyModel()
    before = [p.detach().clone() for p in model.parameters()]
    steps = []

    def before_step(optimizer, args, kwargs):
        params = [p for group in optimizer.param_groups for p in group["params"]]
        grads = [p.grad for p in model.parameters()]
        fresh = {id(p): g for p, g in model.fresh}  # the last backward's gradient of each parameter
        total = math.sqrt(sum(float((g ** 2).sum()) for g in grads if g is not None))
        new = [fresh.get(id(p)) for p in model.parameters()]
        fresh_norm = math.sqrt(sum(float((g ** 2).sum()) for g in new if g is not None))
        # With zero_grad before every backward, .grad is the last backward's gradient (times the clipping factor).
        scale = total / fresh_norm if fresh_norm else 0.0
        residual = math.sqrt(sum(float(((g - scale * f) ** 2).sum()) for g, f in zip(grads, new)
                                 if g is not None and f is not None))
        steps.append({"optimizer": type(optimizer).__name__, "owns_model": all(any(p is q for q in params)
                                                                                 for p in model.parameters()),
                      "lr": float(optimizer.param_groups[0]["lr"]), "norm": total, "fresh_norm": fresh_norm,
                      "residual": residual / total if total else 0.0})
        model.fresh.clear()

    handle = register_optimizer_step_pre_hook(before_step)
    try:
        returned = train(model, train_data, val_data, max_steps=STEPS, batch_size=BATCH, learning_rate=LEARNING_RATE,
                         eval_interval=INTERVAL, eval_batches=2, grad_clip=CLIP)
    finally:
        handle.remove()
    calls = model.calls
    changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    return {"calls": calls, "steps": steps, "changed": changed, "returned": type_and_value(returned)}


def _training_calls(got):
    """The calls whose loss was backpropagated."""
    return [c for c in got["calls"] if c["backward"]]


def _is_val(call) -> bool:
    return bool((np.asarray(call["x"]) >= TRAIN_TOKENS).all())


def _batches_judge(got):
    calls = _training_calls(got)
    if not calls:
        return ("no loss was ever backpropagated: for each batch compute logits, loss = model(x, y), then "
                "loss.backward()")
    if any(_is_val(c) for c in calls):
        return "the model is trained on val_data: draw the training batches from train_data"
    for call in calls:
        x, y = np.asarray(call["x"]), call["y"]
        if x.shape != (BATCH, BLOCK_SPY):
            return (f"training batches should have shape (batch_size, model.config.block_size) = {(BATCH, BLOCK_SPY)}, "
                    f"got {x.shape}")
        if y is None:
            return "the model is called without targets during training: model(x, y) returns the loss"
        if not np.array_equal(np.asarray(y)[:, :-1], x[:, 1:]):
            return "the targets are not the inputs shifted by one token (y[:, t] should be x[:, t + 1]): check get_batch"
    if len(calls) != STEPS:
        return f"with max_steps={STEPS} the model should be trained on {STEPS} batches, got {len(calls)}"
    return None


def _optimizer_judge(got):
    steps = got["steps"]
    if steps and all(step["norm"] == 0 for step in steps):
        return ("the gradients are zero at optimizer.step(): call optimizer.zero_grad() before loss.backward(), not "
                "between backward and step")
    if not steps or not got["changed"]:
        return "the parameters never change: call optimizer.step() after loss.backward()"
    if not all(step["owns_model"] for step in steps):
        return "the optimizer does not hold the model's parameters: torch.optim.AdamW(model.parameters(), ...)"
    if steps[0]["optimizer"] != "AdamW":
        return f"use torch.optim.AdamW (Adam with decoupled weight decay), got {steps[0]['optimizer']}"
    if any(abs(step["lr"] - LEARNING_RATE) > 1e-12 for step in steps):
        return (f"the learning rate should be the learning_rate argument ({LEARNING_RATE} in this test), got "
                f"{steps[0]['lr']}")
    if len(steps) != STEPS:
        return f"with max_steps={STEPS} there should be {STEPS} optimizer steps, got {len(steps)}"
    return None


def _zero_grad_judge(got):
    steps = got["steps"]
    if len(steps) < 2:
        return "fix the optimizer first (see the other tests)"
    if any(step["residual"] > 1e-4 for step in steps[1:]):
        return ("the gradients add up across steps: call optimizer.zero_grad() before loss.backward() in every step "
                "(PyTorch accumulates .grad)")
    return None


def _clip_judge(got):
    steps = got["steps"]
    if not steps:
        return "fix the optimizer first (see the other tests)"
    for step in steps:
        if step["fresh_norm"] > 2 * CLIP and abs(step["norm"] - CLIP) > 1e-3 * CLIP:
            if abs(step["norm"] - step["fresh_norm"]) < 1e-6 * step["fresh_norm"]:
                return (f"the gradients are not clipped: torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip) "
                        f"between loss.backward() and optimizer.step() (gradient norm {step['norm']:.3g} with "
                        f"grad_clip={CLIP})")
            return (f"the gradient norm at optimizer.step() is {step['norm']:.3g}, expected grad_clip={CLIP}: clip the "
                    f"global norm with torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)")
    return None


def _evaluation_groups(calls) -> list[list[dict]]:
    """Runs of consecutive calls that were not backpropagated: one group per evaluation."""
    groups, current = [], []
    for call in calls:
        if call["backward"]:
            if current:
                groups.append(current)
            current = []
        else:
            current.append(call)
    if current:
        groups.append(current)
    return groups


def _evaluation_judge(got):
    calls = got["calls"]
    val_calls = [c for c in calls if _is_val(c)]
    if not val_calls:
        return "train never evaluates on val_data: every eval_interval steps, average the loss of a few val batches"
    if any(c["grad"] for c in val_calls):
        return "the evaluation runs with gradients on: wrap it in torch.no_grad() (faster, and nothing to backpropagate)"
    if any(c["training"] for c in val_calls):
        return "the evaluation runs in training mode: call model.eval() before evaluating (it switches dropout off)"
    first_eval = next(i for i, c in enumerate(calls) if _is_val(c))
    if any(not c["training"] for c in calls[first_eval:] if c["backward"]):
        return "after an evaluation the model keeps training in eval mode: call model.train() again when it is done"
    groups = _evaluation_groups(calls)
    if len(groups) < STEPS // INTERVAL:
        return (f"with max_steps={STEPS} and eval_interval={INTERVAL} there should be an evaluation at steps 0, "
                f"{INTERVAL}, {2 * INTERVAL}, ... and at the end; got {len(groups)}")
    return None


def _history_judge(got):
    returned = got["returned"]
    value = returned["value"]
    if returned["type"] != "dict" or not isinstance(value, dict):
        return f"train should return a dict with the lists 'loss', 'eval_step' and 'val_loss', got a {returned['type']}"
    missing = [key for key in ("loss", "eval_step", "val_loss") if key not in value]
    if missing:
        return f"the returned dict is missing {missing}: return {{'loss': ..., 'eval_step': ..., 'val_loss': ...}}"
    losses = value["loss"]
    if not isinstance(losses, list) or len(losses) != STEPS:
        return f"history['loss'] should hold one loss per step ({STEPS} here), got {describe(losses)}"
    if not all(isinstance(loss, float) for loss in losses):
        return "history['loss'] should hold Python floats: append loss.item(), not the tensor"
    training = _training_calls(got)
    if len(training) == STEPS and not np.allclose(losses, [c["loss"] for c in training], rtol=1e-5):
        return "history['loss'] should be the loss of each training batch, in order"
    groups = [[c for c in group if _is_val(c)] for group in _evaluation_groups(got["calls"])]
    groups = [group for group in groups if group]
    val_losses, eval_steps = value["val_loss"], value["eval_step"]
    if not isinstance(val_losses, list) or not all(isinstance(v, float) for v in val_losses):
        return "history['val_loss'] should be a list of floats, one per evaluation"
    if not isinstance(eval_steps, list) or len(eval_steps) != len(val_losses):
        return "history['eval_step'] should list the step of each evaluation, one per entry of history['val_loss']"
    expected = [float(np.mean([c["loss"] for c in group])) for group in groups]
    if len(expected) == len(val_losses) and not np.allclose(val_losses, expected, rtol=1e-4):
        return "each history['val_loss'] entry should be the mean loss over that evaluation's val batches"
    if len(expected) != len(val_losses):
        return f"history['val_loss'] has {len(val_losses)} entries but the model was evaluated {len(expected)} times"
    return None


def _train_test(name, judge):
    return Test(name, _train_probe, judge)


check_training_loop = Check(
    exercise="training_loop",
    expects=["a function get_batch(data, batch_size, block_size, generator=None) -> (x, y)",
             "a function train(model, train_data, val_data, max_steps, batch_size, learning_rate, eval_interval, "
             "eval_batches, grad_clip) -> history dict"],
    accepts=[callable, callable],
    tests=[
        Test("get_batch: random windows x and next-token targets y", lambda get_batch, train: _batch_probe(get_batch),
             _batch_judge),
        _train_test("train: batches of train_data with shifted targets, one per step", _batches_judge),
        _train_test("train: AdamW with lr=learning_rate steps the parameters", _optimizer_judge),
        _train_test("train: gradients are zeroed before every backward", _zero_grad_judge),
        _train_test(f"train: gradients are clipped to grad_clip={CLIP}", _clip_judge),
        _train_test("train: evaluation on val_data every eval_interval steps, in eval mode, without gradients",
                    _evaluation_judge),
        _train_test("train: returns the history of losses", _history_judge),
    ],
)
