"""Notebook 04's computations replayed from a module's own weights (as the checks' probes found them: Linears as
{"weight", "bias"} dicts, LayerNorms as {"weight", "bias"} dicts): the right one and the usual mistakes, keyed by
the mistake's name ("" is the right one), so a judge can name the mistake whose output matches the student's.

The attention inside a Block is coursekit.attention's CausalSelfAttention (notebook 03's answer) loaded with the
block's own weights; the parameter count comes from coursekit.gpt's GPT.

>>> layer = {"weight": torch.eye(2), "bias": None}
>>> mlp_candidates(torch.ones(1, 2), layer, layer)["no activation"].tolist()
[[1.0, 1.0]]
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from coursekit.attention import AttentionConfig, CausalSelfAttention
from coursekit.gpt import GPT, GPTConfig

GELUS = {"tanh": lambda h: F.gelu(h, approximate="tanh"), "exact": lambda h: F.gelu(h)}


def apply(layer: dict, x: torch.Tensor) -> torch.Tensor:
    weight = torch.as_tensor(layer["weight"]).to(x.dtype)
    bias = None if layer["bias"] is None else torch.as_tensor(layer["bias"]).to(x.dtype)
    return F.linear(x, weight, bias)


def layer_norm(norm: dict, x: torch.Tensor) -> torch.Tensor:
    gain, bias = (None if norm[key] is None else torch.as_tensor(norm[key]).to(x.dtype) for key in ("weight", "bias"))
    return F.layer_norm(x, (x.size(-1),), gain, bias, eps=1e-5)


def num_parameters(config) -> int:
    """How many parameters GPT-2's layout has at this config (the reference model's count)."""
    return GPT(GPTConfig(**vars(config))).num_parameters()


def mlp_candidates(x, first: dict, second: dict) -> dict:
    """The MLP's output from its two Linears: right ("") and with each usual mistake."""
    hidden = apply(first, x)
    candidates = {"": apply(second, GELUS["tanh"](hidden)), "exact GELU": apply(second, GELUS["exact"](hidden)),
                  "ReLU": apply(second, F.relu(hidden)), "no activation": apply(second, hidden)}
    for name, gelu in GELUS.items():
        candidates[f"GELU after the second layer ({name})"] = gelu(apply(second, gelu(hidden)))
        candidates[f"residual inside the MLP ({name})"] = x + apply(second, gelu(hidden))
    return candidates


def attention_from(c_attn: dict, c_proj: dict, config) -> CausalSelfAttention:
    """Notebook 03's CausalSelfAttention with the block's own fused projection and output projection."""
    attention = CausalSelfAttention(AttentionConfig(n_embd=config.n_embd, n_head=config.n_head,
                                                    block_size=config.block_size))
    with torch.no_grad():
        for layer, weights in ((attention.c_attn, c_attn), (attention.c_proj, c_proj)):
            layer.weight.copy_(torch.as_tensor(weights["weight"]))
            layer.bias.copy_(torch.zeros_like(layer.bias) if weights["bias"] is None else
                             torch.as_tensor(weights["bias"]))
    return attention.eval()


def block_candidates(x, attention, fc: dict, proj: dict, norm_a: dict, norm_b: dict, gelu: str = "tanh") -> dict:
    """The block's output from its own parts, norm_a before the attention and norm_b before the MLP: right ("")
    and with each usual wiring mistake, as functions (most judges need only the first)."""
    def attn(h):
        return attention(h)

    def mlp(h):
        return apply(proj, GELUS[gelu](apply(fc, h)))

    def ln_a(h):
        return layer_norm(norm_a, h)

    def ln_b(h):
        return layer_norm(norm_b, h)

    def correct():
        h = x + attn(ln_a(x))
        return h + mlp(ln_b(h))

    def post_ln():
        h = ln_a(x + attn(x))
        return ln_b(h + mlp(h))

    def no_attention_residual():
        h = attn(ln_a(x))
        return h + mlp(ln_b(h))

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
            "no residual around the MLP": lambda: mlp(ln_b(x + attn(ln_a(x)))),
            "no residual at all": lambda: mlp(ln_b(attn(ln_a(x)))),
            "residual around the LayerNorm": around_norm, "MLP first": mlp_first, "no LayerNorm": no_norm,
            "parallel": lambda: x + attn(ln_a(x)) + mlp(ln_b(x)),
            "no LayerNorm, no residual": lambda: mlp(attn(x))}


def head_logits(x, ln_f: dict, head: dict) -> torch.Tensor:
    """The logits of a residual stream x: lm_head(ln_f(x))."""
    return apply(head, layer_norm(ln_f, x))


def embedded(idx, wte, wpe) -> torch.Tensor:
    """The residual stream forward hands the first Block: token plus position embeddings, wte[idx] + wpe[0 .. T-1]."""
    return wte[idx] + wpe[torch.arange(idx.size(1))]


def embedding_candidates(idx, wte, wpe, ln_f: dict, head: dict) -> dict:
    """forward's logits with no Blocks (n_layer=0): right ("") and with each usual mistake."""
    T, block_size = idx.size(1), wpe.size(0)
    positions = torch.arange(T)

    def logits(x, final_norm=True):
        return head_logits(x, ln_f, head) if final_norm else apply(head, x)

    x = embedded(idx, wte, wpe)
    candidates = {"": logits(x), "no positions": logits(wte[idx]),
                  "positions from 1": logits(wte[idx] + wpe[positions + 1]),
                  "last positions": logits(wte[idx] + wpe[block_size - T:]),
                  "no final LayerNorm": logits(x, final_norm=False), "probabilities": logits(x).softmax(-1)}
    if int(idx.max()) < block_size:
        candidates["positions from ids"] = logits(wte[idx] + wpe[idx])
    return candidates


def loss_candidates(logits, idx, targets) -> dict:
    """The loss of logits (B, T, V) for targets (B, T): right ("") and with each usual mistake."""
    B, T, V = logits.shape
    right = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    return {"": right.item(), "sum": right.item() * B * T,
            "shifted again": F.cross_entropy(logits[:, :-1].reshape(-1, V), targets[:, 1:].reshape(-1)).item(),
            "inputs as targets": F.cross_entropy(logits.reshape(-1, V), idx.reshape(-1)).item(),
            "probabilities": F.cross_entropy(logits.softmax(-1).reshape(-1, V), targets.reshape(-1)).item()}


def embedding_gradients(idx, targets, wte, wpe, ln_f: dict, head: dict) -> dict:
    """The gradients of the n_layer=0 loss (LM head tied to wte) with respect to wte, wpe and ln_f's gain and bias
    (those it has), keyed "wte", "wpe", "ln_f weight" and "ln_f bias"."""
    leaves = {"wte": wte, "wpe": wpe, "ln_f weight": ln_f["weight"], "ln_f bias": ln_f["bias"]}
    leaves = {name: torch.as_tensor(leaf).clone().requires_grad_(True) for name, leaf in leaves.items()
              if leaf is not None}
    norm = {"weight": leaves.get("ln_f weight"), "bias": leaves.get("ln_f bias")}
    with torch.enable_grad():
        logits = head_logits(embedded(idx, leaves["wte"], leaves["wpe"]), norm,
                             {"weight": leaves["wte"], "bias": head["bias"]})
        F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1)).backward()
    return {name: leaf.grad for name, leaf in leaves.items()}
