"""What notebook 03's spec fixes beyond the outputs, probed and judged: a training step's backward pass (it must run,
which nn.Dropout(inplace=True) on the weights prevents, and reach x and every parameter), which projections have
biases (none in a head; MultiHeadAttention's proj and CausalSelfAttention's c_attn and c_proj have theirs), the mask
a registered buffer, and CausalSelfAttention written out, without F.scaled_dot_product_attention.

Probes return plain data (names, sizes, flags, error texts); judges turn it into the mistake. Nothing here computes
attention.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit.checks.attention_probes import dropout_probability, mask_tensors, probe_input
from coursekit.checks.probing import probe_tensor, recorded_dropout, single_threaded


def gradients_probe(build, sizes_of, **probabilities):
    """One training step's backward pass (dropout on, probabilities as in dropout_probe): the error the forward or
    loss.backward() raised, whether a dropout ran in place, whether x got a gradient, and the parameters (that
    require one) left without."""
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        p = dropout_probability()
        module = build(module_class, sizes, **{name: p if on else 0.0 for name, on in probabilities.items()}).train()
        x = probe_input(sizes).requires_grad_()
        error = None
        with recorded_dropout() as calls:
            try:
                out = module(x)
                out = out[0] if isinstance(out, tuple) else out
                (out * probe_tensor(*out.shape)).sum().backward()
            except Exception as raised:  # the judge names the in-place operation
                error = f"{type(raised).__name__}: {raised}"
        return {"error": error, "inplace_dropout": any(call["inplace"] and call["p"] > 0 for call in calls),
                "input_gradient": x.grad is not None and bool(torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0),
                "without_gradient": [name for name, parameter in module.named_parameters()
                                     if parameter.requires_grad and parameter.grad is None]}
    return single_threaded(probe)


@contextlib.contextmanager
def recorded_fused_attention():
    """Inside, every call of F.scaled_dot_product_attention is counted (and still computed)."""
    calls = []
    original = F.scaled_dot_product_attention

    def fused(*args, **kwargs):
        calls.append(True)
        return original(*args, **kwargs)

    F.scaled_dot_product_attention = fused
    try:
        yield calls
    finally:
        F.scaled_dot_product_attention = original


FUSED_NODES = ("ScaledDotProduct", "SafeSoftmax")  # autograd nodes only F.scaled_dot_product_attention creates


def graph_nodes(tensor) -> set[str]:
    """The class names of the autograd nodes behind `tensor` (its whole backward graph).

    >>> sorted(graph_nodes((torch.ones(2, requires_grad=True) * 2).sum()))
    ['AccumulateGrad', 'MulBackward0', 'SumBackward0']
    """
    seen, stack = set(), [getattr(tensor, "grad_fn", None)]
    while stack:
        node = stack.pop()
        if node is not None and node not in seen:
            seen.add(node)
            stack.extend(child for child, _ in node.next_functions)
    return {type(node).__name__ for node in seen}


def spec_probe(build, sizes_of):
    """What the spec fixes beyond the outputs: the 1-D parameters (biases) as [name, size], the nn.Linear layers
    built with bias=False as [name, in, out], the masks kept as plain attributes, not buffers, and whether forward
    used F.scaled_dot_product_attention (called through F, or seen in the output's autograd graph, however it was
    imported)."""
    def probe(module_class):
        sizes = sizes_of()
        module = build(module_class, sizes).eval()
        with recorded_fused_attention() as fused:
            try:
                out = module(probe_input(sizes).requires_grad_())
            except Exception:  # the values tests report it
                out = None
        fused.extend(name for name in graph_nodes(out[0] if isinstance(out, tuple) else out)
                     if name.startswith(FUSED_NODES))
        return {"biases": [[name, parameter.numel()] for name, parameter in module.named_parameters()
                           if parameter.dim() == 1],
                "without_bias": [[name, layer.in_features, layer.out_features] for name, layer in module.named_modules()
                                 if isinstance(layer, nn.Linear) and layer.bias is None],
                "plain_masks": [[name, shape] for name, shape, kind in mask_tensors(module) if kind == "attribute"],
                "fused_attention": bool(fused)}
    return single_threaded(probe)


def gradients_judge(got):
    """A training step's backward pass must run and reach x and every parameter."""
    if got["error"]:
        if got["inplace_dropout"]:
            return (f"in training mode loss.backward() fails ({got['error'][:160]}): nn.Dropout(..., inplace=True) "
                    f"overwrites the softmax's output, which the backward pass needs. Use nn.Dropout(p), without "
                    f"inplace=True")
        if "inplace" in got["error"]:
            return (f"in training mode loss.backward() fails ({got['error'][:160]}): an in-place operation "
                    f"(masked_fill_, mul_, +=, x[...] = ...) changed a tensor the backward pass needs; use the "
                    f"out-of-place version (masked_fill, *, +)")
        return f"in training mode, with dropout on, the forward pass or loss.backward() raised {got['error'][:300]}"
    if not got["input_gradient"]:
        return ("in training mode no gradient reaches the input x: something cuts the computation from x (.detach(), "
                "torch.no_grad(), .data, a NumPy round trip); the output must be differentiable in x")
    if got["without_gradient"]:
        return (f"in training mode the parameters {got['without_gradient']} get no gradient: they take no part in the "
                f"output (or only through .detach() or .data), so training would never change them")
    return None


def _plain_mask_problem(got) -> str | None:
    if got["plain_masks"]:
        name, shape = got["plain_masks"][0]
        return (f"{name} (shape {tuple(shape)}, the mask) is a plain tensor attribute, not a registered buffer: "
                f"model.to(device) and state_dict() do not see it. Register it as the notebook says: "
                f"self.register_buffer('mask', torch.tril(torch.ones(block_size, block_size)))")
    return None


def head_spec_judge(got):
    """AttentionHead: bias-free projections, the mask a buffer."""
    if got["biases"]:
        names = [name for name, _ in got["biases"]]
        return (f"the head has bias parameters {names}: the exercise asks for nn.Linear(n_embd, head_size, "
                f"bias=False) (attention heads in GPT-style code have no biases in their query, key and value)")
    return _plain_mask_problem(got)


def projection_spec_judge(sizes_of, fused: bool):
    """MultiHeadAttention (fused=False) and CausalSelfAttention (fused=True): the projections the notebook builds
    with a bias have one; the mask is a buffer; CausalSelfAttention writes the attention itself."""
    def judge(got):
        n_embd = sizes_of()["n_embd"]
        if fused and got["fused_attention"]:
            return ("CausalSelfAttention calls F.scaled_dot_product_attention, which this exercise asks you not to "
                    "use (the notebook compares your module with it afterwards): write the attention yourself, "
                    "scores = q @ k.transpose(-2, -1) / sqrt(head_size), the mask, softmax, attn_dropout, then @ v")
        for name, inputs, outputs in got["without_bias"]:
            if (inputs, outputs) == (n_embd, 3 * n_embd):
                return (f"{name} = nn.Linear({inputs}, {outputs}, bias=False) has no bias: the notebook builds "
                        f"c_attn = nn.Linear(n_embd, 3 * n_embd) with its bias (the default, bias=True), as GPT-2's "
                        f"c_attn has one (notebook 06 loads it)")
        if not any(size == n_embd for _, size in got["biases"]):  # the heads' projections have none
            square = [f"{name} = nn.Linear({inputs}, {outputs}, bias=False)" for name, inputs, outputs
                      in got["without_bias"] if (inputs, outputs) == (n_embd, n_embd)]
            spec = "c_proj = nn.Linear(n_embd, n_embd)" if fused else "self.proj = nn.Linear(n_embd, n_embd)"
            return (f"the output projection has no bias ({', '.join(square) or 'no bias of n_embd values found'}): "
                    f"the notebook builds {spec} with its bias (the default, bias=True); the notebooks' "
                    f"load_state_dict cells expect it")
        return _plain_mask_problem(got)
    return judge
