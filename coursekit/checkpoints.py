"""Saving and loading trained GPTs: weights as safetensors, everything needed to rebuild and use them as JSON.

A checkpoint is a folder `cache_dir()/checkpoints/<name>/` with two files:
- model.safetensors: the parameters (the tied embedding / LM-head matrix stored once);
- checkpoint.json: the GPTConfig, which tokenizer turns text into the model's token ids, and training metadata
  (steps, final losses, ...), so a notebook can say what it loaded.

safetensors holds only tensors and cannot run code when loaded, unlike pickle-based torch.save files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from safetensors.torch import load_model, save_file

from coursekit.data import cache_dir, cache_dirs
from coursekit.gpt_config import GPTConfig

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "checkpoint.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing or does not fit the model it is loaded into; the message says what to do."""


def checkpoint_dir(name: str) -> Path:
    """Where save_checkpoint(model, name) writes: cache_dir()/checkpoints/<name>."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise ValueError(f"checkpoint name must be a plain folder name like 'char-gpt', got {name!r}")
    return cache_dir() / "checkpoints" / name


def save_checkpoint(model, name: str, tokenizer: str | dict, metadata: dict | None = None) -> Path:
    """Save model's parameters and config under checkpoint_dir(name); returns that folder.

    model is any module with GPT-2's parameter names and a `config` GPTConfig: coursekit.gpt.GPT, or the GPT you
    wrote in notebook 04. Only parameters are saved (a tied matrix once, under its first name); buffers such as
    attention masks are rebuilt by the model that loads the checkpoint.

    tokenizer identifies how text becomes token ids, e.g. "char" or {"name": "bpe-512", "sha256": "..."};
    metadata is any JSON-serialisable training information (steps, losses, preset name, ...).
    """
    directory = checkpoint_dir(name)
    directory.mkdir(parents=True, exist_ok=True)
    parameters = {name: parameter.detach().cpu().contiguous() for name, parameter in model.named_parameters()}
    save_file(parameters, str(directory / WEIGHTS_FILE))
    description = {"config": dataclasses.asdict(model.config), "tokenizer": tokenizer, "training": metadata or {}}
    (directory / METADATA_FILE).write_text(json.dumps(description, indent=2), encoding="utf-8")
    return directory


def find_checkpoint(name: str) -> Path:
    """The folder of checkpoint `name`, searched in every data directory (cache_dirs()); error if absent."""
    checkpoint_dir(name)  # validates the name
    candidates = [directory / "checkpoints" / name for directory in cache_dirs()]
    for candidate in candidates:
        if (candidate / METADATA_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    searched = ", ".join(str(candidate) for candidate in candidates)
    raise CheckpointError(
        f"No checkpoint named {name!r} (looked for {METADATA_FILE} and {WEIGHTS_FILE} in: {searched}).\n"
        f"Create it by training a model and calling coursekit.checkpoints.save_checkpoint(model, {name!r}, "
        f"tokenizer=...), e.g. at the end of the training notebook."
    )


def read_checkpoint_info(name: str) -> dict:
    """The JSON description of a checkpoint: {"config": {...}, "tokenizer": ..., "training": {...}}."""
    return json.loads((find_checkpoint(name) / METADATA_FILE).read_text(encoding="utf-8"))


def config_differences(saved: GPTConfig, wanted: GPTConfig) -> list[str]:
    """Architecture fields on which two configs disagree, described for an error message.

    dropout is left out: it changes training, not the parameters, so any value can load any checkpoint.

    >>> config_differences(GPTConfig(n_layer=4, dropout=0.2), GPTConfig(n_layer=6))
    ['n_layer: checkpoint has 4, your config has 6']
    """
    return [
        f"{field.name}: checkpoint has {getattr(saved, field.name)!r}, your config has {getattr(wanted, field.name)!r}"
        for field in dataclasses.fields(GPTConfig)
        if field.name != "dropout" and getattr(saved, field.name) != getattr(wanted, field.name)
    ]


def load_checkpoint(name: str, config: GPTConfig | None = None, device="cpu"):
    """Rebuild the GPT saved as `name`; returns (model in eval mode, the checkpoint's JSON description).

    Pass config to build the model from your own config: if its architecture differs from the checkpoint's,
    CheckpointError lists every mismatched field.
    """
    from coursekit.gpt import GPT  # here, not at the top: saving must not need the reference model (notebook 04)

    directory = find_checkpoint(name)
    info = read_checkpoint_info(name)
    saved = GPTConfig(**info["config"])
    if config is not None and config_differences(saved, config):
        raise CheckpointError(
            f"Checkpoint {name!r} ({directory}) does not fit the requested GPTConfig:\n  "
            + "\n  ".join(config_differences(saved, config))
            + "\nBuild the model from the checkpoint's own config (load_checkpoint(name) without config), "
            "or retrain with yours."
        )
    model = GPT(config or saved)
    load_model(model, str(directory / WEIGHTS_FILE), device=str(device))
    return model.to(device).eval(), info
