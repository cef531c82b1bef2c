"""Check for notebook 04's gpt_constructor: embeddings, Blocks, final LayerNorm, tied LM head, embedding dropout.

The probe builds GPT(config) at the notebook's sizes and at others (n_layer=3, another vocabulary and block_size;
secret sizes in a grading run) and reads its structure: embeddings by size, attention and MLP layers by shape,
LayerNorms, the LM head and whether it shares the token embedding's matrix, the parameter count (the judge
compares it with the reference layout's), the dropouts' probabilities, and the initialisation: the std of every
fresh weight matrix and its biases (GPT-2's N(0, 0.02^2) and zeros). forward is checked in gpt_forward.py.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from coursekit.checks.core import Check, Test, is_module_class, is_public
from coursekit.checks.gpt_common import blocks_of, dropout_probability, holds_attention, layer_norms, probe_config
from coursekit.checks.probing import single_threaded


def _other_sizes() -> dict:
    """A second constructor config: n_layer=3 with the notebook's other sizes in public, random ones in grading."""
    return {"n_layer": 3, "vocab_size": 13, "block_size": 9} if is_public() else {"n_layer": 3}


# ---------------------------------------------------------------- gpt_constructor


@single_threaded
def _structure(gpt_class, **changes) -> dict:
    torch.manual_seed(0)
    config = probe_config(**changes)
    model = gpt_class(config)
    embeddings = [m for m in model.modules() if isinstance(m, nn.Embedding)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    token = next((m for m in embeddings if m.num_embeddings == config.vocab_size), None)
    heads = [m for m in linears if m.in_features == config.n_embd and m.out_features == config.vocab_size]
    return {
        "config": {"vocab_size": config.vocab_size, "block_size": config.block_size, "n_layer": config.n_layer},
        "has_config": getattr(model, "config", None) is config,
        "embeddings": [[m.num_embeddings, m.embedding_dim] for m in embeddings],
        "layer_norms": len(layer_norms(model)),
        "attention_layers": sum(1 for m in linears if (m.in_features, m.out_features) == (config.n_embd, 3 * config.n_embd)),
        "mlp_layers": sum(1 for m in linears if (m.in_features, m.out_features) == (config.n_embd, 4 * config.n_embd)),
        "linear_shapes": [[m.in_features, m.out_features] for m in linears],
        "heads": len(heads),
        "head_bias": bool(heads and heads[-1].bias is not None),
        "tied": bool(heads and token is not None and heads[-1].weight is token.weight),
        "parameters": sum(p.numel() for p in model.parameters()),
        "block_container": next((type(m).__name__ for m in model.modules() if len(list(m.children())) and
                                 all(holds_attention(child, config) for child in m.children())), None),
    }


def _structure_judge(changes_of):
    """changes_of() gives the config changes under the test's seed (the same ones the probe used)."""
    return lambda got: _structure_mistake(got, probe_config(**changes_of()))


@single_threaded
def _structure_mistake(got, config) -> str | None:
    V, block_size, n_layer, C = config.vocab_size, config.block_size, config.n_layer, config.n_embd
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
        other = [rows for rows, width in embeddings if width == C and rows != V]
        if other:
            return (f"{where}: the position embedding has {other[0]} rows; it needs exactly one per position, "
                    f"nn.Embedding(block_size, n_embd) = ({block_size}, {C})")
        return (f"{where}: no position embeddings: attention alone does not know the order of the tokens; add "
                f"nn.Embedding(block_size, n_embd) = ({block_size}, {C})")
    if got["attention_layers"] != n_layer or got["mlp_layers"] != n_layer:
        return (f"{where}: found {got['attention_layers']} attention layer(s) and {got['mlp_layers']} MLP(s), expected "
                f"n_layer={n_layer} Blocks: build them in a loop, nn.ModuleList([Block(config) for _ in "
                f"range(config.n_layer)])")
    if got["block_container"] not in ("ModuleList", "Sequential"):
        return (f"{where}: the Blocks are held in an nn.{got['block_container']}; forward runs them with "
                f"`for block in self.transformer.h` (an nn.ModuleDict yields its keys, strings): "
                f"h=nn.ModuleList([Block(config) for _ in range(config.n_layer)])")
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
    from coursekit.judging.gpt import num_parameters  # the reference's replays: judge side only

    expected = num_parameters(config)
    if got["parameters"] != expected:
        extra = got["parameters"] - expected
        hint = " (the LM head has a bias: use bias=False)" if got["head_bias"] and extra == V else \
            " (a LayerNorm has no gain and bias: use nn.LayerNorm(n_embd), elementwise_affine left on)" \
            if extra < 0 and extra % (2 * C) == 0 else ""
        return (f"{where}: the model has {got['parameters']:,} parameters, GPT-2's layout has {expected:,} "
                f"({extra:+,}){hint}")
    return None


@single_threaded
def _dropout_modules(gpt_class) -> dict:
    """The p of every nn.Dropout outside the Blocks and inside them, for a config with
    dropout=dropout_probability()."""
    torch.manual_seed(0)
    config = probe_config(dropout=dropout_probability())
    model = gpt_class(config)
    inside = {id(m) for block in blocks_of(model, config) for m in block.modules()}
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    return {"outside": [m.p for m in dropouts if id(m) not in inside],
            "inside": [m.p for m in dropouts if id(m) in inside]}


def _dropout_modules_judge(got):
    p = dropout_probability()
    outside, inside = got["outside"], got["inside"]
    if not outside:
        return ("GPT(config) has no nn.Dropout outside its Blocks: add drop=nn.Dropout(config.dropout) to "
                "self.transformer, for the sum of the token and position embeddings")
    if not any(abs(value - p) < 1e-9 for value in outside):
        return (f"the embedding dropout has p = {round(outside[0], 4)} though config.dropout = {p}: "
                f"nn.Dropout(config.dropout)")
    wrong = [value for value in inside if abs(value - p) > 1e-9]
    if wrong:
        return (f"the Blocks' dropouts have p = {round(wrong[0], 4)} though config.dropout = {p}: build every Block "
                f"from the model's own config, Block(config), so its attention and MLP drop too")
    return None


# ---------------------------------------------------------------- the initialisation


STD = 0.02  # GPT-2's: init_weights draws every Linear and Embedding weight from N(0, 0.02^2)


@single_threaded
def _initial_weights(gpt_class) -> list[dict]:
    """Every nn.Linear and nn.Embedding of a fresh GPT(config) (a tied matrix once, with the names of the layers
    sharing it): its name, type, shape, the std of its weights and the largest |bias|."""
    torch.manual_seed(0)
    model, found = gpt_class(probe_config()), []
    layers = [(name, m) for name, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Embedding))]
    for index, (name, module) in enumerate(layers):
        sharing = [other for other, m in layers if m is not module and m.weight is module.weight]
        if not any(m.weight is module.weight for _, m in layers[:index]):
            bias = getattr(module, "bias", None)
            found.append({"name": name, "tied": sharing, "type": type(module).__name__,
                          "shape": list(module.weight.shape),
                          "std": float(module.weight.detach().double().std()),
                          "bias": None if bias is None else float(bias.detach().abs().max())})
    return found


def _initialisation_judge(got):
    config = probe_config()
    if not got:
        return "GPT(config) has no nn.Linear or nn.Embedding layers"
    keep = ("keep the given self.apply(init_weights) as the last line of __init__, after every layer is built, and "
            "change no weights after it")
    for layer in got:
        rows, columns = layer["shape"]
        built = f"nn.Embedding({rows}, {columns})" if layer["type"] == "Embedding" else f"nn.Linear({columns}, {rows})"
        built += "".join(f", tied to {other}" for other in layer["tied"])
        # a projection back into the residual stream may be scaled down by sqrt(2 * n_layer), as nanoGPT does
        low = STD * (2 * config.n_layer) ** -0.5 if layer["type"] != "Embedding" and rows == config.n_embd else STD
        if not 0.5 * low <= layer["std"] <= 1.75 * STD:
            return (f"{layer['name']} ({built}) starts with weights of std {layer['std']:.3g}; GPT-2's "
                    f"initialisation (init_weights) draws them from N(0, 0.02^2), std {STD}: {keep}")
        if layer["bias"]:
            return (f"{layer['name']} ({built}) starts with a bias up to {layer['bias']:.3g}; init_weights sets every "
                    f"bias to 0: {keep}")
    return None


check_gpt_constructor = Check(
    exercise="gpt_constructor",
    expects=["the class GPT itself, built as GPT(config)"],
    accepts=[is_module_class],
    tests=[
        Test("GPT(config) with n_layer=2: embeddings, Blocks, final LayerNorm, tied LM head",
             lambda cls: _structure(cls), _structure_judge(dict), weight=3.0),
        Test("GPT(config) with n_layer=3, vocab_size=13, block_size=9", lambda cls: _structure(
            cls, **_other_sizes()), _structure_judge(_other_sizes), weight=2.0),
        Test("an embedding dropout nn.Dropout(config.dropout) outside the Blocks, config.dropout inside them",
             _dropout_modules, _dropout_modules_judge, weight=0.5, needs_right_outputs=True),
        Test("the weights start as GPT-2's: N(0, 0.02^2), biases 0 (self.apply(init_weights) last)",
             _initial_weights, _initialisation_judge, weight=0.5, needs_right_outputs=True),
    ],
)


