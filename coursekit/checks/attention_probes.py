"""What notebook 03's module checks feed the student's attention classes, and what they read back.

A probe builds the student's class at the test's sizes, fills every projection matrix with values drawn from the
test's seed (biases zeroed), hands the judge their names and shapes (the judge redraws the values: it never trusts
weights the sandbox reports), and the module's output on random inputs (also of
magnitude ~100 and ~-120), or its runs in eval and training mode with every dropout call recorded. Probes compute
nothing about attention themselves: the judges (attention_judges.py) do, from the reference.

In a grading run the sizes (head size, head count, block_size, T < block_size), the inputs and the dropout
probabilities are drawn from the test's seed; the judge recomputes them under the same seed. The second values
test of each module runs at a block_size and a T above the notebook's 8 (longer()), so a size fixed to 8 is seen.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.nn import functional as F

from coursekit.checks.core import is_public, probe_rng, probe_torch_generator
from coursekit.checks.probing import (attention_sizes, large_magnitudes, probe_sizes, probe_tensor, run_module,
                                      single_threaded, train_and_eval_runs)

B = 2
HEAD_PUBLIC = {"n_head": 1, "head_size": 4, "n_embd": 12, "block_size": 8, "T": 6}  # T < block_size: cut the mask
MULTI_PUBLIC = {"n_head": 4, "head_size": 6, "block_size": 8, "T": 6}  # n_embd 24; sqrt(24) != 6


@dataclass
class AttentionConfig:
    """The fields of coursekit.attention.AttentionConfig, for building the student's CausalSelfAttention."""

    n_embd: int = 64
    n_head: int = 4
    block_size: int = 32
    attn_pdrop: float = 0.0
    resid_pdrop: float = 0.0


LONGER = {"block_size": 16, "T": 11}  # public; the notebook's block_size is 8


def longer(sizes: dict) -> dict:
    """sizes with a block_size and a T (< block_size) above the notebook's 8: 16 and 11 in public, block_size 12,
    16 or 20 and T from 9 to block_size - 1 in a grading run; a mask or a loop fixed to 8 then fails.

    >>> longer({"n_embd": 12, "block_size": 8, "T": 6})
    {'n_embd': 12, 'block_size': 16, 'T': 11}
    """
    if is_public():
        return {**sizes, **LONGER}
    block_size = int(probe_rng().choice([12, 16, 20]))
    return {**sizes, "block_size": block_size, "T": int(probe_rng().integers(9, block_size))}


def head_sizes() -> dict:
    """The single head's sizes: the notebook's in public, others (n_embd 10-16, head_size 3-6) in a grading run."""
    sizes = attention_sizes(HEAD_PUBLIC)
    sizes.update(probe_sizes({"n_embd": HEAD_PUBLIC["n_embd"]}, n_embd=[10, 14, 16]), n_head=1)
    return sizes


def other_head_sizes() -> dict:
    """A second single head at other sizes (public: AttentionHead(10, 5, 16) on T = 11), so that a size fixed to the
    notebook's is seen in the notebook too."""
    sizes = attention_sizes({"n_head": 1, "head_size": 5, "n_embd": 10, "block_size": 9, "T": 7})
    sizes.update(probe_sizes({"n_embd": 10}, n_embd=[9, 13, 15]), n_head=1)
    return longer(sizes)


def multi_sizes() -> dict:
    return attention_sizes(MULTI_PUBLIC)


def other_heads_sizes() -> dict:
    """A head count other than the first test's, and a longer block (public: n_embd 12 with 3 heads, block_size 16,
    T = 11)."""
    return longer(attention_sizes({"n_head": 3, "head_size": 4, "block_size": 8, "T": 6}))


def dropout_probability() -> float:
    """0.4 in a notebook; in a grading run a value between 0.2 and 0.6, so a hard-coded p is seen."""
    return 0.4 if is_public() else round(float(probe_rng().uniform(0.2, 0.6)), 2)


def probe_input(sizes: dict) -> torch.Tensor:
    return probe_tensor(B, sizes["T"], sizes["n_embd"])


def build_head(head_class, sizes, dropout=0.0):
    return head_class(sizes["n_embd"], sizes["head_size"], sizes["block_size"], dropout)


def build_multi(module_class, sizes, dropout=0.0):
    return module_class(sizes["n_embd"], sizes["n_head"], sizes["block_size"], dropout)


def build_causal(module_class, sizes, attn_pdrop=0.0, resid_pdrop=0.0):
    return module_class(AttentionConfig(n_embd=sizes["n_embd"], n_head=sizes["n_head"],
                                        block_size=sizes["block_size"], attn_pdrop=attn_pdrop,
                                        resid_pdrop=resid_pdrop))


def _projection_parameters(module: nn.Module) -> list[tuple[str, nn.Parameter, str]]:
    """Every 2-D weight as (name, parameter, kind), in registration order: kind "linear" for an nn.Linear's (out, in)
    weight, "mask" for a raw parameter of 0s and 1s (a causal mask registered as a parameter, left as it is),
    "matrix" for any other raw parameter (used as x @ W)."""
    found = []
    for module_name, submodule in module.named_modules():
        if isinstance(submodule, nn.Linear):
            found.append((module_name, submodule.weight, "linear"))
            continue
        for name, parameter in submodule.named_parameters(recurse=False):
            if parameter.dim() == 2:
                zeros_and_ones = bool(((parameter == 0) | (parameter == 1)).all())
                found.append((f"{module_name}.{name}".strip("."), parameter, "mask" if zeros_and_ones else "matrix"))
    return found


def weights_generator() -> torch.Generator:
    """The stream the probe fills the module's matrices from and the judge redraws them from (not the inputs')."""
    return torch.Generator().manual_seed(probe_torch_generator().initial_seed() ^ 0x5EED)


MATRICES = 64  # 2-D weights a judge reads from one attention module (a few heads' q, k, v, a projection, masks)


def seeded_matrices(layout: list) -> list[torch.Tensor]:
    """The matrices load_seeded_weights puts into a module whose layout is `layout` ([name, shape, kind] per 2-D
    weight), each as an (in, out) matrix M applied as x @ M (an nn.Linear stores (out, in): its M is W.T); a
    "mask" is given back as a lower-triangular matrix of ones.

    The judge redraws them from the test's seed: it trusts only the layout the sandbox reports, never weights
    read back, so reporting other weights than the module used changes nothing.

    >>> layout = [["0", [2, 3], "linear"]]
    >>> [tuple(m.shape) for m in seeded_matrices(layout)], torch.equal(*seeded_matrices(layout * 2))
    ([(3, 2)], False)
    """
    shapes = [[int(size) for size in shape] for _, shape, _ in layout]
    values = sum(rows * columns for rows, columns in shapes)
    if len(shapes) > MATRICES or values > 2**20:  # checked before anything is drawn: the readings grow with the count
        raise ValueError(f"the module has {len(shapes)} weight matrices with {values:,} values in all; an attention "
                         f"layer built from these sizes has at most {MATRICES} (query, key, value per head, a "
                         f"projection, masks) of a few hundred values each")
    generator, matrices = weights_generator(), []
    for _, shape, kind in layout:
        rows, columns = (int(size) for size in shape)
        if not (0 < rows <= 4096 and 0 < columns <= 4096) or kind not in ("linear", "matrix", "mask"):
            raise ValueError(f"a weight of shape {shape} is not a projection of this exercise")
        if kind == "mask":
            matrices.append(torch.ones(rows, columns).tril())
            continue
        drawn = torch.randn(rows, columns, generator=generator) / (columns if kind == "linear" else rows) ** 0.5
        matrices.append(drawn.T if kind == "linear" else drawn)
    return matrices


def load_seeded_weights(module: nn.Module) -> list:
    """Fill every 2-D weight of `module` (but a mask) from weights_generator(); returns its layout (see
    seeded_matrices).

    >>> layer = nn.Sequential(nn.Linear(3, 2))
    >>> torch.equal(layer[0].weight.T, seeded_matrices(load_seeded_weights(layer))[0])
    True
    """
    found = _projection_parameters(module)
    layout = [[name, list(parameter.shape), kind] for name, parameter, kind in found]
    with torch.no_grad():
        for (_, parameter, kind), matrix in zip(found, seeded_matrices(layout)):
            if kind != "mask":
                parameter.copy_(matrix.T if kind == "linear" else matrix)
    return layout


def zero_biases(module: nn.Module) -> None:
    """Biases do not change what attention is; zeroing them lets the judge compare with bias-free formulas."""
    with torch.no_grad():
        for parameter in module.parameters():
            if parameter.dim() == 1:
                parameter.zero_()


def large_inputs(x: torch.Tensor) -> list[torch.Tensor]:
    """x shifted to reach 100 and -120 (probing.large_magnitudes), and scaled to reach +-100: a shift keeps the
    rows of the scores nearly constant, a scale spreads them over thousands of both signs (exp overflows either
    way unless each row's maximum is subtracted)."""
    return [*large_magnitudes(x), x * (100.0 / x.abs().max())]


def mask_tensors(module: nn.Module) -> list[tuple[str, list[int], str]]:
    """(name, shape, kind) of every mask the module keeps besides its parameters: a tensor of two or more dimensions,
    square in the last two, holding only 0 and 1, True and False, or 0 and -inf; kind "buffer" (registered) or
    "attribute" (a plain tensor attribute, which .to(device) and state_dict() do not see). Kept attention weights
    are not masks.

    >>> head = nn.Module(); head.register_buffer("mask", torch.ones(4, 4)); head.cache = torch.ones(1, 1, 3, 3)
    >>> head.weights = torch.full((2, 3, 3), 1 / 3)
    >>> mask_tensors(head)
    [('mask', [4, 4], 'buffer'), ('cache', [1, 1, 3, 3], 'attribute')]
    """
    found = []
    for module_name, submodule in module.named_modules():
        tensors = [(name, tensor, "buffer") for name, tensor in submodule.named_buffers(recurse=False)]
        tensors += [(name, value, "attribute") for name, value in vars(submodule).items()
                    if isinstance(value, torch.Tensor) and not isinstance(value, nn.Parameter)]
        for name, tensor, kind in tensors:
            values = tensor.detach().float()
            if tensor.dim() >= 2 and tensor.shape[-1] == tensor.shape[-2] and \
                    bool(((values == 0) | (values == 1)).all() or ((values == 0) | (values == float("-inf"))).all()):
                found.append((f"{module_name}.{name}".strip("."), list(tensor.shape), kind))
    return found


def values_probe(build, sizes_of):
    """The module's layout with seeded weights (load_seeded_weights), its mask-like tensors (mask_tensors), its
    output on a random x, on that x's first row alone (B = 1) and on large-magnitude xs, and
    whether forward changed the x it was given."""
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        module = build(module_class, sizes).eval()
        zero_biases(module)
        x = probe_input(sizes)
        given = x.clone()
        try:
            with torch.no_grad():
                module(given)
        except Exception:  # the run below reports the error
            pass
        return {"layout": load_seeded_weights(module), "masks": mask_tensors(module), "result": run_module(module, x),
                "single": run_module(module, x[:1]),  # a batch of one: a .squeeze() would drop its axis
                "large": [run_module(module, big)["output"] for big in large_inputs(x)],
                "input_changed": not torch.equal(given, x)}
    return single_threaded(probe)


HUGE_BATCH, HUGE_SCALE = 16, 1000.0  # scores of about +-1e6: below -1e4 for some query's every visible key


def future_probe(build, sizes_of):
    """The module's outputs on x, on x with its second half changed, and on x with its first token changed; and on
    a batch of 16 xs scaled by 1000 (scores of about +-1e6), before and after its second half changed: a finite
    mask value such as -1e4 is then above some query's every visible score, and the future takes its weight."""
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        module = build(module_class, sizes).eval()
        x = probe_input(sizes)
        cut = sizes["T"] // 2

        def changed(x):
            changed_future, changed_first = x.clone(), x.clone()
            changed_future[:, cut:] = -x[:, cut:].flip(1)  # other tokens at positions cut .. T - 1
            changed_first[:, 0] = -x[:, 0]
            return changed_future, changed_first

        huge = probe_tensor(HUGE_BATCH, sizes["T"], sizes["n_embd"], scale=HUGE_SCALE)
        return {"cut": cut, "before": run_module(module, x), "after": run_module(module, changed(x)[0]),
                "first": run_module(module, changed(x)[1]), "huge_before": run_module(module, huge)["output"],
                "huge_after": run_module(module, changed(huge)[0])["output"]}
    return single_threaded(probe)


def distinct_widths(sizes_of):
    """sizes_of with T moved off head_size and n_embd (within 3 .. block_size - 1), so that a dropout call's
    input is told apart by its width: (T, T) scores and weights, head_size-wide heads, n_embd-wide output."""
    def sizes():
        found = sizes_of()
        taken = {found["head_size"], found["n_embd"]}
        candidates = [t for t in range(3, found["block_size"]) if t not in taken]
        return {**found, "T": min(candidates, key=lambda t: (abs(t - found["T"]), t))}
    return sizes


@contextlib.contextmanager
def dropout_keeping_everything():
    """Inside, F.dropout (so nn.Dropout too) in training mode drops nothing and scales every entry by 1/(1-p): a draw
    dropout may make. Yields the list of those calls' outputs."""
    outputs = []
    original = F.dropout

    def dropout(input, p=0.5, training=True, inplace=False):
        if not (training and 0 < p < 1):
            return input
        outputs.append(input / (1 - p))
        return outputs[-1]

    F.dropout = dropout
    try:
        yield outputs
    finally:
        F.dropout = original


def kept_everything_runs(module: nn.Module, x: torch.Tensor) -> dict:
    """The module without biases on x: in eval mode, and in training mode with dropout_keeping_everything, and
    whether the training run's output is a dropout call's output itself (dropout as the last step)."""
    zero_biases(module)
    evaluated = run_module(module.eval(), x)["output"]
    module.train()
    with dropout_keeping_everything() as outputs, torch.no_grad():
        try:
            trained = module(x.clone())
        except Exception:  # the recorded runs report it
            trained = None
    module.eval()
    return {"eval": evaluated, "train": trained,
            "dropout_last": any(trained is output for output in outputs)}


def dropout_probe(build, sizes_of, **probabilities):
    """The module's eval and training runs (dropout calls recorded; train_and_eval_runs), and the same without
    biases with dropout keeping every entry (kept_everything_runs); probabilities: which dropout arguments get
    dropout_probability() (the others 0). Judge with the same sizes_of (distinct_widths of the test's sizes)."""
    def probe(module_class):
        sizes = sizes_of()
        torch.manual_seed(0)
        p = dropout_probability()
        module = build(module_class, sizes, **{name: p if on else 0.0 for name, on in probabilities.items()})
        runs = train_and_eval_runs(module, probe_input(sizes))
        return {**runs, "kept_everything": kept_everything_runs(module, probe_input(sizes))}
    return single_threaded(probe)
