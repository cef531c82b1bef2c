"""Checks for notebook 04's model: gpt_constructor (embeddings, Blocks, final LayerNorm, tied LM head) and
forward (logits and loss).

forward is probed on models whose every parameter was randomised (probing.randomise_parameters(weights=True)):
a fresh GPT's logits are ~0, and with logits ~0 any targets give the same loss, so a forward that used idx as
its targets would pass. The embedding dropout is checked by recording the dropout calls in training mode.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit.checks.core import (Check, Test, describe, is_module_class, is_public, probe_rng,
                                   probe_torch_generator, type_and_value)
from coursekit.checks.gpt_common import (B, PUBLIC, T, GPTConfig, apply, close, dropout_probability, layer_norm,
                                         layer_norms, linears, probe_config)
from coursekit.checks.probing import dropout_summary, randomise_parameters, single_threaded, train_and_eval_runs

C, V = PUBLIC.n_embd, PUBLIC.vocab_size


def _other_sizes() -> dict:
    """A second constructor config: n_layer=3 with the notebook's other sizes in public, random ones in grading."""
    return {"n_layer": 3, "vocab_size": 13, "block_size": 9} if is_public() else {"n_layer": 3}


def public_model(**changes) -> GPTConfig:
    """forward is probed at the public sizes (its inputs and weights are secret in grading)."""
    return replace(PUBLIC, **changes)
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
    from coursekit.gpt import GPT, GPTConfig  # the reference: judge side only

    expected = GPT(GPTConfig(**vars(config))).num_parameters()
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
             lambda cls: _structure(cls), _structure_judge(dict), weight=3.0),
        Test("GPT(config) with n_layer=3, vocab_size=13, block_size=9", lambda cls: _structure(
            cls, **_other_sizes()), _structure_judge(_other_sizes), weight=2.0),
    ],
)


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


@single_threaded
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
        return apply(got["head"], layer_norm(ln_f, x) if final_norm else x)

    positions = torch.arange(T)
    out = got["result"]["logits"]
    if close(out, logits(wte[idx] + wpe[positions])):
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
        if close(out, expected):
            return message
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
    idx = torch.as_tensor(got["idx"])
    if abs(value - F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1)).item()) < 1e-4:
        return ("the loss compares the logits with idx, the inputs; compare them with targets (the next tokens): "
                "F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))")
    if abs(value - F.cross_entropy(logits.softmax(-1).reshape(-1, V), targets.reshape(-1)).item()) < 1e-4:
        return "the loss is computed on probabilities; F.cross_entropy takes the raw logits"
    return f"the loss should be F.cross_entropy of the returned logits and the targets ({flat.item():.4f}), got {value:.4f}"


@single_threaded
def _causal_probe(gpt_class):
    torch.manual_seed(0)
    model = _informative(gpt_class(public_model()))
    idx = _tokens()[0]
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
        Test("dropout(config.dropout) on the embeddings in training", _embedding_dropout_probe,
             _embedding_dropout_judge, weight=1.0),
    ],
)


