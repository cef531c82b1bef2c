"""What the checks of notebook 04 (a GPT built and trained from scratch) share: the probe models' config, and
finding a module's parts by what they are.

The student may name and arrange submodules as they like. A probe finds the parts by what they are: nn.Linear
layers by their shapes (n_embd -> 4 * n_embd is the MLP's first layer, n_embd -> 3 * n_embd the attention's fused
projection, ...), LayerNorms and Embeddings by type and size. The values checks fill those parts from the test's
seed (load_seeded_layers, load_seeded_gpt) and hand the judge only their layout and the module's output on a
random input; the judge redraws the values (seeded_layers, seeded_gpt), recomputes the right answer with reference
code and, when it differs, replays the usual mistakes to name the one that matches. The checks: gpt_mlp.py
(mlp), gpt_blocks.py (block), gpt_model.py (gpt_constructor), gpt_forward.py (forward), gpt_generate.py (generate),
gpt_training.py (training_loop). The judges replay the right answers and the usual mistakes from
coursekit.judging.gpt (never in a sandbox).

In a grading run the probe models' sizes, inputs and dropout probabilities come from the test's seed
(`probe_config`), and the judges recompute them under the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn as nn

from coursekit.checks.core import describe, is_public, probe_rng
from coursekit.checks.probing import is_norm, probe_sizes, probe_tensor, run_module

B = 2


@dataclass
class GPTConfig:
    """The fields of coursekit.gpt.GPTConfig, for building the student's modules (the probes never load the
    reference)."""

    vocab_size: int = 11
    block_size: int = 8
    n_layer: int = 2
    n_head: int = 2
    n_embd: int = 12  # 4 * 12 = 48 and 3 * 12 = 36 tell the layers apart by shape
    dropout: float = 0.0
    bias: bool = True


PUBLIC = GPTConfig()
T = 5  # the public sequence length: T < block_size, nothing may assume full-length sequences


def probe_config(**changes) -> GPTConfig:
    """The notebook's probe config in public; in a grading run other sizes (n_embd = n_head * 4..6, block_size
    7-10, vocab 11-17), then `changes` on top.

    >>> probe_config(n_layer=0).n_layer, probe_config().n_embd
    (0, 12)
    """
    sizes = probe_sizes({"n_head": PUBLIC.n_head, "head_size": PUBLIC.n_embd // PUBLIC.n_head,
                         "block_size": PUBLIC.block_size, "vocab_size": PUBLIC.vocab_size},
                        n_head=[2, 3], head_size=[4, 5, 6], block_size=[7, 9, 10], vocab_size=[11, 13, 17])
    config = GPTConfig(vocab_size=sizes["vocab_size"], block_size=sizes["block_size"], n_layer=PUBLIC.n_layer,
                       n_head=sizes["n_head"], n_embd=sizes["n_head"] * sizes["head_size"])
    return replace(config, **changes)


def sequence_length(config: GPTConfig) -> int:
    """T < block_size: the public 5, or one drawn between 3 and block_size - 1."""
    return T if is_public() else int(probe_rng().integers(3, config.block_size))


def dropout_probability() -> float:
    """0.3 in a notebook; between 0.2 and 0.6 in a grading run (a hard-coded probability shows)."""
    return 0.3 if is_public() else round(float(probe_rng().uniform(0.2, 0.6)), 2)


def probe_stream(config: GPTConfig) -> torch.Tensor:
    """A residual stream (B, T, n_embd) from the test's generator, not centred (LayerNorms have work to do)."""
    return probe_tensor(B, sequence_length(config), config.n_embd, scale=2.0, shift=0.5)


def _linear_modules(module: nn.Module) -> list[nn.Linear]:
    found, seen = [], set()
    for submodule in module.modules():
        if isinstance(submodule, nn.Linear) and id(submodule) not in seen:
            seen.add(id(submodule))
            found.append(submodule)
    return found


def norm_role(name: str) -> int:
    """0 for the LayerNorm before the attention (ln_1, attn_norm, ...), 1 before the MLP (ln_2, norm_mlp, ...),
    2 when the name does not say.

    >>> [norm_role(n) for n in ("h.0.ln_1", "norm_mlp", "norm_attention", "ln_f")]
    [0, 1, 0, 2]
    """
    last = name.lower().split(".")[-1]
    if last.endswith("ln_1") or "att" in last:
        return 0
    if last.endswith("ln_2") or "mlp" in last or "ff" in last:
        return 1
    return 2


def norms_named_by_role(module: nn.Module) -> bool:
    """True when the module's LayerNorms' names say which is before the attention and which before the MLP."""
    roles = [norm_role(name) for name, m in module.named_modules() if is_norm(m)]
    return 0 in roles and 1 in roles


def _norm_modules(module: nn.Module) -> list[nn.Module]:
    """The LayerNorms, the one named for the attention first, then the MLP's (see norm_role), the others in
    registration order."""
    named = [(name, m) for name, m in module.named_modules() if is_norm(m)]
    named.sort(key=lambda pair: norm_role(pair[0]))
    return [m for _, m in named]


def _gain_and_bias(norm: nn.Module) -> tuple:
    return getattr(norm, "weight", None), getattr(norm, "bias", None)


def layer_norms(module: nn.Module) -> list[dict]:
    """Every LayerNorm's gain and bias (None when it has none), in _norm_modules' order."""
    return [{"weight": None if gain is None else gain.detach().clone(), "bias": None if bias is None else
             bias.detach().clone()} for gain, bias in map(_gain_and_bias, _norm_modules(module))]


def _layers_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int(probe_rng().integers(2**62)) ^ 0x1A7E5)


LAYER_VALUES = 2**20  # values the judge redraws for one module's layers: the probe models hold a few thousand


def layers_problem(layout: dict) -> str | None:
    """Why a reported layout (see load_seeded_layers) is not one a judge redraws, or None: checked on its sizes
    alone, before anything is drawn, so a claim of a thousand 4096 x 4096 layers fails at once.

    >>> layers_problem({"linears": [[12, 48, True]], "norms": [[12, True, True]]}) is None
    True
    >>> layers_problem({"linears": [[4096, 4096, True]] * 64, "norms": []})[:70]
    'the module has 64 nn.Linear and 0 LayerNorm layers with 1,074,003,968 '
    """
    sizes = [int(n) for n_in, n_out, _ in layout["linears"] for n in (n_in, n_out)]
    sizes += [int(n) for n, _, _ in layout["norms"]]
    values = sum(int(n_out) * (int(n_in) + 1) for n_in, n_out, _ in layout["linears"])
    values += sum(2 * int(n) for n, _, _ in layout["norms"])
    if len(sizes) <= 256 and all(0 < n <= 4096 for n in sizes) and values <= LAYER_VALUES:
        return None
    return (f"the module has {len(layout['linears'])} nn.Linear and {len(layout['norms'])} LayerNorm layers with "
            f"{values:,} values in all; the probe model built from config holds a few thousand: nothing may be sized "
            f"by hand (use config.n_embd)")


def seeded_layers(layout: dict) -> dict:
    """{"linears": [{"in", "out", "weight" (out, in), "bias"}], "norms": [{"weight", "bias"}]} for a module whose layout
    (see load_seeded_layers) the sandbox reported, with the values load_seeded_layers put there: the judge redraws
    them from the test's seed and never trusts weights read back from the sandbox.

    >>> drawn = seeded_layers({"linears": [[3, 2, False]], "norms": [[2, True, True]]})
    >>> tuple(drawn["linears"][0]["weight"].shape), drawn["linears"][0]["bias"], drawn["norms"][0]["bias"].shape
    ((2, 3), None, torch.Size([2]))
    """
    problem = layers_problem(layout)
    if problem:
        raise ValueError(problem)
    generator = _layers_generator()

    def draw(*shape, scale=1.0, shift=0.0):
        return torch.randn(*shape, generator=generator) * scale + shift
    linears = [{"in": int(n_in), "out": int(n_out), "weight": draw(int(n_out), int(n_in), scale=int(n_in) ** -0.5),
                "bias": draw(int(n_out), scale=0.5) if has_bias else None}
               for n_in, n_out, has_bias in layout["linears"]]
    norms = [{"weight": draw(int(n), scale=0.5, shift=1.0) if has_gain else None,
              "bias": draw(int(n), scale=0.5) if has_bias else None} for n, has_gain, has_bias in layout["norms"]]
    return {"linears": linears, "norms": norms}


def load_seeded_layers(module: nn.Module) -> dict:
    """Fill every nn.Linear's weight and bias and every LayerNorm's gain and bias with values drawn from the test's
    seed; returns the layout ({"linears": [[in, out, has bias]], "norms": [[size, has gain, has bias]]}) from
    which seeded_layers redraws them.

    >>> layer = nn.Sequential(nn.Linear(3, 2))
    >>> torch.equal(layer[0].weight, seeded_layers(load_seeded_layers(layer))["linears"][0]["weight"])
    True
    """
    modules, norms = _linear_modules(module), _norm_modules(module)
    layout = {"linears": [[m.in_features, m.out_features, m.bias is not None] for m in modules],
              "norms": [[(gain if gain is not None else bias).numel() if (gain is not None or bias is not None)
                         else 1, gain is not None, bias is not None] for gain, bias in map(_gain_and_bias, norms)]}
    drawn = seeded_layers(layout)
    with torch.no_grad():
        for m, values in zip(modules, drawn["linears"]):
            m.weight.copy_(values["weight"])
            if m.bias is not None:
                m.bias.copy_(values["bias"])
        for (gain, bias), values in zip(map(_gain_and_bias, norms), drawn["norms"]):
            for parameter, value in ((gain, values["weight"]), (bias, values["bias"])):
                if parameter is not None:
                    parameter.copy_(value)
    return layout


def _tables_generator() -> torch.Generator:
    return torch.Generator().manual_seed(int(probe_rng().integers(2**62)) ^ 0xE3BED)


def seeded_gpt(layout: dict) -> dict:
    """seeded_layers(layout) and "embeddings" (the nn.Embedding tables, N(0, 1) entries from the test's seed) as
    load_seeded_gpt put them in a GPT; a Linear tied to a table (the LM head, "tied": [[linear, table]]) holds that
    table. The judge's twin of load_seeded_gpt: it never trusts values the sandbox reports.

    >>> drawn = seeded_gpt({"linears": [[3, 5, False]], "norms": [], "embeddings": [[5, 3]], "tied": [[0, 0]],
    ...                     "final_norms": []})
    >>> drawn["linears"][0]["weight"] is drawn["embeddings"][0], tuple(drawn["embeddings"][0].shape)
    (True, (5, 3))
    """
    drawn = seeded_layers(layout)
    tables = [[int(n) for n in table] for table in layout["embeddings"]]
    tied = [[int(i) for i in pair] for pair in layout["tied"]]
    shapes = [[layer["out"], layer["in"]] for layer in drawn["linears"]]
    sizes_ok = len(tables) <= 8 and all(len(table) == 2 and 0 < n <= 4096 for table in tables for n in table) and \
        sum(rows * dim for rows, dim in tables) <= 2**22
    ties_ok = all(len(pair) == 2 and 0 <= pair[0] < len(shapes) and 0 <= pair[1] < len(tables) and
                  shapes[pair[0]] == tables[pair[1]] for pair in tied)
    if not (sizes_ok and ties_ok and all(0 <= int(i) < len(drawn["norms"]) for i in layout["final_norms"])):
        raise ValueError("the reported layers are not this exercise's")
    generator = _tables_generator()
    embeddings = [torch.randn(n, dim, generator=generator) for n, dim in tables]
    for linear, table in tied:
        drawn["linears"][linear]["weight"] = embeddings[table]
    return {**drawn, "embeddings": embeddings}


def load_seeded_gpt(model: nn.Module, blocks: list[nn.Module] = ()) -> dict:
    """load_seeded_layers(model), then every nn.Embedding's table drawn from the test's seed (a head tied to the
    token table gets the table's values, whichever of the two owns the matrix); returns the layout, with
    "embeddings" ([[rows, dim]]), "tied" ([[linear, table]] by position in the layout) and "final_norms" (the
    positions of the LayerNorms outside `blocks`: ln_f), from which seeded_gpt redraws the same values.

    >>> model = nn.ModuleDict({"lm_head": nn.Linear(3, 5, bias=False), "wte": nn.Embedding(5, 3)})
    >>> model.wte.weight = model.lm_head.weight
    >>> layout = load_seeded_gpt(model)
    >>> layout["embeddings"], layout["tied"], torch.equal(seeded_gpt(layout)["linears"][0]["weight"], model.wte.weight)
    ([[5, 3]], [[0, 0]], True)
    """
    layout = load_seeded_layers(model)
    tables, layers = _embedding_modules(model), _linear_modules(model)
    inside = {id(m) for block in blocks for m in block.modules()}
    layout.update(embeddings=[list(m.weight.shape) for m in tables],
                  tied=[[i, j] for i, linear in enumerate(layers) for j, table in enumerate(tables)
                        if linear.weight is table.weight],
                  final_norms=[i for i, m in enumerate(_norm_modules(model)) if id(m) not in inside])
    with torch.no_grad():
        for table, values in zip(tables, seeded_gpt(layout)["embeddings"]):
            table.weight.copy_(values)
    return layout


def _embedding_modules(module: nn.Module) -> list[nn.Embedding]:
    return [m for m in module.modules() if isinstance(m, nn.Embedding)]


def holds_attention(module: nn.Module, config) -> bool:
    """Whether the module holds an attention layer (nn.Linear(n_embd, 3 * n_embd)): a Block does."""
    return any(isinstance(m, nn.Linear) and (m.in_features, m.out_features) == (config.n_embd, 3 * config.n_embd)
               for m in module.modules())


def blocks_of(model: nn.Module, config) -> list[nn.Module]:
    """The Blocks: the items of an nn.ModuleList (or nn.Sequential) that each hold an attention layer."""
    for module in model.modules():
        if isinstance(module, (nn.ModuleList, nn.Sequential)) and len(module) and \
                all(holds_attention(block, config) for block in module):
            return list(module)
    return []


def find(found: list[dict], n_in: int, n_out: int) -> dict | None:
    return next((layer for layer in found if layer["in"] == n_in and layer["out"] == n_out), None)


def close(got, expected: torch.Tensor, atol: float = 1e-4) -> bool:
    return (isinstance(got, np.ndarray) and got.shape == tuple(expected.shape)
            and np.allclose(got, expected.detach().numpy(), atol=atol, rtol=1e-4))


def output_problem(result: dict, shape: tuple, what: str) -> str | None:
    if result["error"]:
        return f"{what} raised {result['error']}"
    out = result["output"]
    if isinstance(out, list):
        return f"{what} should return one tensor of shape {shape}, got {result.get('returned', 'a sequence')}"
    if not isinstance(out, np.ndarray) or out.shape != shape:
        return f"{what} should return a tensor of shape {shape}, got {result.get('returned') or describe(out)}"
    return None


def described_run(module: nn.Module, *args) -> dict:
    """probing.run_module, with "returned": what the output is, described in the sandbox, where its type is still
    the student's (a judge sees tensors as numpy arrays, tuples as lists).

    >>> described_run(nn.Linear(2, 1), torch.ones(1, 2))["returned"]
    'Tensor of shape (1, 1) and dtype torch.float32'
    >>> described_run(lambda x: (x, x), torch.ones(2))["returned"]
    'a tuple of length 2'
    """
    result = run_module(module, *args)
    out = result["output"]
    result["returned"] = f"a {type(out).__name__} of length {len(out)}" if isinstance(out, (list, tuple)) else \
        describe(out)
    return result


def backward_error(loss_of) -> str | None:
    """Compute loss_of() with autograd on and backpropagate it: None, or the error it raised as text (a judge turns
    it into advice with backward_advice).

    >>> layer = nn.Linear(2, 1)
    >>> backward_error(lambda: layer(torch.ones(1, 2)).sum()) is None, layer.weight.grad is not None
    (True, True)
    >>> backward_error(lambda: layer(torch.ones(1, 2)).sum().detach())[:12]
    'RuntimeError'
    """
    try:
        with torch.enable_grad():
            loss_of().backward()
    except Exception as error:  # the judge turns it into advice
        return f"{type(error).__name__}: {error}"
    return None


def backward_advice(error: str, what: str) -> str:
    """For judges: what a backward_error of `what` (e.g. "the block") means and what to do.

    >>> backward_advice("RuntimeError: element 0 of tensors does not require grad", "forward")[:40]
    'loss.backward() fails: the loss of forwa'
    """
    if "inplace" in error or "in-place" in error:
        return (f"loss.backward() fails through {what}: the residual stream is changed in place (x += ...), but "
                f"autograd kept x for the LayerNorm's backward pass. Write x = x + self.attn(self.ln_1(x)) (a new "
                f"tensor). The error: {error}")
    if "does not require grad" in error:
        return (f"loss.backward() fails: the loss of {what} has no gradient history, so nothing would learn. Part of "
                f"it runs without autograd (torch.no_grad(), .detach() or .data): keep every step from the embeddings "
                f"to the loss differentiable. The error: {error}")
    return f"backpropagating through {what} failed: {error}"


def parameter_gradients(model: nn.Module) -> dict:
    """After a backward pass: the gradient of every nn.Embedding table and every LayerNorm gain and bias (None when
    none reached it), in the order of load_seeded_gpt's layout, and for every parameter (by name, each shared one
    once) whether its gradient is "none", "zero" or "nonzero"."""
    def grad(parameter):
        return None if parameter is None or parameter.grad is None else parameter.grad.detach().clone()
    return {"embedding_gradients": [grad(m.weight) for m in _embedding_modules(model)],
            "norm_gradients": [[grad(gain), grad(bias)] for gain, bias in map(_gain_and_bias, _norm_modules(model))],
            "parameters": {name: "none" if p.grad is None else "zero" if not bool(p.grad.abs().sum() > 0) else
                           "nonzero" for name, p in model.named_parameters()}}


def sublayers(block: nn.Module, config) -> dict:
    """A block's own sub-modules, found by the layers they hold: "norms" (in _norm_modules' order), "attention" (the
    smallest sub-module holding nn.Linear(n_embd, 3 * n_embd) and nn.Linear(n_embd, n_embd)) and "mlp" (the
    smallest holding nn.Linear(n_embd, 4 * n_embd) and nn.Linear(4 * n_embd, n_embd)); None when the block itself
    is the smallest (its layers are inline).

    >>> parts = sublayers(nn.ModuleDict({"mlp": nn.Sequential(nn.Linear(2, 8), nn.Linear(8, 2))}), GPTConfig(n_embd=2))
    >>> type(parts["mlp"]).__name__, parts["attention"], parts["norms"]
    ('Sequential', None, [])
    """
    C = config.n_embd

    def smallest(*shapes):
        holding = [m for m in block.modules() if m is not block and all(
            any((layer.in_features, layer.out_features) == shape for layer in _linear_modules(m)) for shape in shapes)]
        return min(holding, key=lambda m: sum(1 for _ in m.modules()), default=None)
    return {"norms": _norm_modules(block), "attention": smallest((C, 3 * C), (C, C)),
            "mlp": smallest((C, 4 * C), (4 * C, C))}
