"""Probe helpers for notebook 02's model checks: find a model's layers by type and shape, randomise its parameters,
build its inputs, read what generate returned. Probe-side plumbing: no answer to any exercise.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from torch.nn import functional as F

HIDDEN = 8  # the notebook's default hidden size


def layers_by_type(model: nn.Module) -> dict:
    """Linear and Embedding layers of a model by type: [shape, has bias] each, in registration order, and both
    kinds in that order as text ("in_order"), for messages.

    >>> layers_by_type(nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 5)))
    {'linear': [[5, 3, True]], 'embedding': [[5, 3]], 'in_order': ['Embedding(5, 3)', 'Linear(3, 5)']}
    """
    return {
        "linear": [[m.out_features, m.in_features, m.bias is not None] for m in model.modules()
                   if isinstance(m, nn.Linear)],
        "embedding": [[m.num_embeddings, m.embedding_dim] for m in model.modules() if isinstance(m, nn.Embedding)],
        "in_order": [f"Linear({m.in_features}, {m.out_features})" if isinstance(m, nn.Linear) else
                     f"Embedding({m.num_embeddings}, {m.embedding_dim})" for m in model.modules()
                     if isinstance(m, nn.Linear | nn.Embedding)],
    }


def embedding_settings(model: nn.Module) -> list[dict]:
    """The options of each nn.Embedding that change what it computes or how it learns (None / False: the default).

    >>> embedding_settings(nn.Embedding(5, 3, padding_idx=0))
    [{'sparse': False, 'padding_idx': 0, 'max_norm': None}]
    """
    return [{"sparse": bool(m.sparse), "padding_idx": m.padding_idx, "max_norm": m.max_norm}
            for m in model.modules() if isinstance(m, nn.Embedding)]


def find_layer(model: nn.Module, kind: str, vocab: int, hidden: int, output: bool = False) -> nn.Module:
    """The first layer (Linear(vocab, hidden) or Embedding(vocab, hidden)) or the output layer Linear(hidden, vocab)."""
    for module in model.modules():
        if output or kind == "one_hot":
            shape = (vocab, hidden) if output else (hidden, vocab)
            if isinstance(module, nn.Linear) and tuple(module.weight.shape) == shape:
                return module
        elif isinstance(module, nn.Embedding) and tuple(module.weight.shape) == (vocab, hidden):
            return module
    layer = (f"nn.Linear({hidden}, {vocab}) output" if output else
             f"nn.Linear({vocab}, {hidden})" if kind == "one_hot" else f"nn.Embedding({vocab}, {hidden})")
    raise ValueError(f"found no {layer} layer in the model built with vocab_size={vocab}, hidden_size={hidden}")


def model_inputs(kind: str, ids: torch.Tensor, vocab: int) -> torch.Tensor:
    return F.one_hot(ids, vocab).float() if kind == "one_hot" else ids


def randomise_all(model: nn.Module, generator: torch.Generator) -> None:
    """Distinct, large-ish random values for every parameter, so a wrong forward cannot hide behind ~0 logits."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))


def seeded_weights(kind: str, vocab: int, hidden: int, generator: torch.Generator) -> list[torch.Tensor]:
    """[first weight, first bias, output weight, output bias] drawn from `generator`. The probe loads them into the
    student's model and the judge draws the same ones from the same seed, so it never trusts weights read back
    from what the sandbox reports."""
    first = (hidden, vocab) if kind == "one_hot" else (vocab, hidden)
    return [torch.randn(shape, generator=generator) for shape in (first, (hidden,), (vocab, hidden), (vocab,))]


def load_weights(model: nn.Module, kind: str, vocab: int, hidden: int, weights: list[torch.Tensor]) -> None:
    """Put `weights` (see seeded_weights) into the model's first and output layers; any other parameter gets
    distinct random values too. A layer without a bias keeps none (the judges then expect the biased result)."""
    first, last = find_layer(model, kind, vocab, hidden), find_layer(model, kind, vocab, hidden, output=True)
    randomise_all(model, torch.Generator().manual_seed(1))
    with torch.no_grad():
        first.weight.copy_(weights[0])
        last.weight.copy_(weights[2])
        for layer, bias in ((first, weights[1]), (last, weights[3])):
            if isinstance(layer, nn.Linear) and layer.bias is not None:
                layer.bias.copy_(bias)


def ids_of(value) -> dict:
    """A probe's view of generate's result: its type, the type names of a list's elements, and the ids as a list of
    ints (when it is a 1-D sequence).

    >>> ids_of(torch.tensor([[3, 1]])), ids_of([2, torch.tensor(1)])["elements"]
    ({'type': 'Tensor', 'elements': [], 'ids': [3, 1]}, ['Tensor', 'int'])
    """
    kind = type(value).__name__
    elements = sorted({type(i).__name__ for i in value}) if isinstance(value, list) else []
    if isinstance(value, torch.Tensor):
        value = value.flatten().tolist() if value.ndim <= 2 and (value.ndim < 2 or value.shape[0] == 1) else None
    try:
        ids = [int(i) for i in value]
    except (TypeError, ValueError):
        ids = None
    return {"type": kind, "elements": elements, "ids": ids}


def generated(call) -> dict:
    """ids_of(call()), or the error it raised as text (the judge names the usual causes).

    >>> generated(lambda: [1, 2])["ids"], generated(lambda: 1 / 0)["error"]
    ([1, 2], 'ZeroDivisionError: division by zero')
    """
    try:
        return ids_of(call())
    except NotImplementedError:
        raise
    except Exception as error:
        return {"type": None, "elements": [], "ids": None, "error": f"{type(error).__name__}: {error}"}
