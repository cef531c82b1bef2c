"""GPT-2 small's real weights in the course's own GPT, and the model notebook 06 falls back on without them.

OpenAI's GPT-2 is published on the Hugging Face Hub as `openai-community/gpt2`: a `config.json` (the shape) and a
`model.safetensors` (124M numbers, 548 MB). Its parameter names are the ones `coursekit.gpt.GPT` uses, so loading
is a copy by name, with one twist: GPT-2's linear layers are `Conv1D` modules that store their weight as
(in_features, out_features), the transpose of `nn.Linear`'s (out_features, in_features). The four such weights of
every block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are transposed on the way in.

Loading never waits on the network: the files are looked up in the Hugging Face cache first; only when they are
missing, HF_HUB_OFFLINE is not set and the Hub answers within a few seconds are they downloaded. Otherwise
`GPT2WeightsMissing` says what is missing and the command that fetches it (`python -m coursekit gpt2 fetch`).

    >>> hyperparameters(GPTConfig())
    {'n_vocab': 50257, 'n_ctx': 1024, 'n_embd': 768, 'n_head': 12, 'n_layer': 12}
"""

from __future__ import annotations

import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from coursekit.gpt import GPT, GPTConfig
from coursekit.gpt2_encoder import GPT2Encoder

GPT2_REPO = "openai-community/gpt2"
GPT2_FILES = ("config.json", "model.safetensors")
FETCH_COMMANDS = ("python -m coursekit gpt2 fetch",
                  f"hf download {GPT2_REPO} {' '.join(GPT2_FILES)}")
# Conv1D layers: stored (in, out), nn.Linear wants (out, in).
CONV1D_WEIGHTS = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# Causal-mask buffers that older GPT-2 files carry; coursekit builds its mask on the fly.
MASK_BUFFERS = (".attn.bias", ".attn.masked_bias")
HUB_TIMEOUT_SECONDS = 3.0


class GPT2WeightsMissing(RuntimeError):
    """GPT-2's files are not on this machine and cannot be downloaded now; the message says how to fetch them."""


def hyperparameters(config: GPTConfig) -> dict[str, int]:
    """A model's shape under the names of OpenAI's GPT-2 release (hparams.json)."""
    return {"n_vocab": config.vocab_size, "n_ctx": config.block_size, "n_embd": config.n_embd,
            "n_head": config.n_head, "n_layer": config.n_layer}


def config_from_hub(settings: dict) -> GPTConfig:
    """The GPTConfig of a Hugging Face GPT-2 `config.json`; ValueError for settings coursekit's GPT cannot mirror.

    >>> config_from_hub({"vocab_size": 500, "n_positions": 64, "n_layer": 2, "n_head": 4, "n_embd": 64})
    GPTConfig(vocab_size=500, block_size=64, n_layer=2, n_head=4, n_embd=64, dropout=0.0, bias=True)
    """
    if settings.get("model_type", "gpt2") != "gpt2":
        raise ValueError(f"config.json describes a {settings['model_type']!r} model, not GPT-2 ('gpt2')")
    unsupported = {
        "activation_function": (settings.get("activation_function", "gelu_new"), ("gelu_new", "gelu_pytorch_tanh")),
        "layer_norm_epsilon": (settings.get("layer_norm_epsilon", 1e-5), (1e-5,)),
        "n_inner": (settings.get("n_inner"), (None, 4 * settings["n_embd"])),
        "scale_attn_weights": (settings.get("scale_attn_weights", True), (True,)),
        "scale_attn_by_inverse_layer_idx": (settings.get("scale_attn_by_inverse_layer_idx", False), (False,)),
        "tie_word_embeddings": (settings.get("tie_word_embeddings", True), (True,)),
    }
    for name, (value, allowed) in unsupported.items():
        if value not in allowed:
            raise ValueError(f"config.json sets {name}={value!r}; coursekit's GPT supports only {allowed}")
    return GPTConfig(vocab_size=settings["vocab_size"], block_size=settings["n_positions"],
                     n_layer=settings["n_layer"], n_head=settings["n_head"], n_embd=settings["n_embd"],
                     dropout=0.0, bias=True)


def coursekit_name(stored: str) -> str | None:
    """coursekit's name for a tensor of a GPT-2 file, or None for a mask buffer or the tied LM head.

    >>> coursekit_name("h.0.attn.c_attn.weight"), coursekit_name("transformer.wte.weight"), coursekit_name("h.3.attn.bias")
    ('transformer.h.0.attn.c_attn.weight', 'transformer.wte.weight', None)
    """
    if stored.endswith(MASK_BUFFERS) or stored == "lm_head.weight":  # lm_head is wte (weight tying)
        return None
    return "transformer." + stored.removeprefix("transformer.")


def load_weights(config: GPTConfig, weights_file: str | Path) -> GPT:
    """A GPT with the tensors of a GPT-2 safetensors file, holding one copy of the weights in memory.

    The model is built on the meta device (shapes, no memory), then each parameter is read from the file and put
    in place, so memory never holds random weights and real weights side by side. The file is opened once per
    tensor: its memory map (counted by the OS as memory of this process) holds at most one tensor at a time.
    """
    from safetensors import safe_open

    weights_file = str(weights_file)
    with torch.device("meta"):
        model = GPT(config)
    wanted = dict(model.named_parameters())  # the tied lm_head.weight is listed once, as transformer.wte.weight
    with safe_open(weights_file, framework="pt") as file:
        stored = {coursekit_name(key): key for key in file.keys() if coursekit_name(key)}
    missing, unexpected = sorted(set(wanted) - set(stored)), sorted(set(stored) - set(wanted))
    if missing or unexpected:
        raise ValueError(f"{weights_file} does not fit a GPT of shape {hyperparameters(config)}: "
                         f"missing {missing[:4]}, unexpected {unexpected[:4]}")
    for name, parameter in wanted.items():
        with safe_open(weights_file, framework="pt") as file:
            tensor = file.get_tensor(stored[name])
        if name.endswith(CONV1D_WEIGHTS):
            tensor = tensor.t()  # Conv1D (in, out) -> nn.Linear (out, in)
        if tensor.shape != parameter.shape:
            raise ValueError(f"{stored[name]} in {weights_file} has shape {tuple(tensor.shape)}, "
                             f"coursekit expects {tuple(parameter.shape)} for {name}")
        module_name, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(module_name), attribute,
                nn.Parameter(tensor.to(torch.float32).contiguous(), requires_grad=parameter.requires_grad))
    model.lm_head.weight = model.transformer.wte.weight  # tie again: the meta tensor was replaced
    return model.eval()


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE asks for no network access (read now, not when huggingface_hub was imported)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def hub_problem(timeout: float = HUB_TIMEOUT_SECONDS) -> str | None:
    """Why the Hugging Face Hub cannot be reached now (one request, at most `timeout` seconds), or None."""
    from huggingface_hub import constants

    try:
        urllib.request.urlopen(urllib.request.Request(constants.ENDPOINT, method="HEAD"), timeout=timeout)
        return None
    except Exception as error:
        return f"{constants.ENDPOINT} could not be reached ({getattr(error, 'reason', error)})"


def find_files(source: str | Path = GPT2_REPO, download: bool = True, cache_dir: str | Path | None = None,
               files: tuple[str, ...] = GPT2_FILES) -> dict[str, Path]:
    """Local paths of a model's files: from a folder, or from a Hub repository (cache first, then download)."""
    folder = Path(source)
    if folder.is_dir():
        found = {name: folder / name for name in files if (folder / name).is_file()}
        if len(found) < len(files):
            missing = [name for name in files if name not in found]
            raise GPT2WeightsMissing(f"{folder} has no {' and no '.join(missing)}; a model folder saved with "
                                     f"save_pretrained holds {' and '.join(files)}.")
        return found
    from huggingface_hub import hf_hub_download

    def fetch(name: str, local_only: bool) -> Path | None:
        try:
            return Path(hf_hub_download(str(source), name, cache_dir=cache_dir, local_files_only=local_only))
        except Exception:
            return None

    found = {name: fetch(name, local_only=True) for name in files}
    missing = [name for name, path in found.items() if path is None]
    why = ""
    if missing and download:
        if hub_is_offline():
            why = " HF_HUB_OFFLINE is set, so nothing is downloaded."
        elif problem := hub_problem():
            why = f" {problem}, so nothing is downloaded."
        else:
            found.update({name: fetch(name, local_only=False) for name in missing})
            missing = [name for name, path in found.items() if path is None]
            why = " Downloading them from the Hub failed."
    if missing:
        from huggingface_hub import constants

        raise GPT2WeightsMissing(
            f"{' and '.join(missing)} of {source} {'is' if len(missing) == 1 else 'are'} not in the Hugging Face "
            f"cache ({cache_dir or constants.HF_HUB_CACHE}).{why}\n"
            f"Fetch GPT-2 (548 MB) on a machine with internet access with:\n    {FETCH_COMMANDS[0]}\n"
            f"or  {FETCH_COMMANDS[1]}")
    return found


def load_gpt2(source: str | Path = GPT2_REPO, download: bool = True, cache_dir: str | Path | None = None) -> GPT:
    """GPT-2 in coursekit's GPT class, from a Hub repository (default: GPT-2 small) or a save_pretrained folder.

    Raises GPT2WeightsMissing, with the command that fetches them, when the files are neither cached nor
    downloadable now.
    """
    files = find_files(source, download=download, cache_dir=cache_dir)
    config = config_from_hub(json.loads(files["config.json"].read_text(encoding="utf-8")))
    return load_weights(config, files["model.safetensors"])


def gpt2_tokenizer() -> GPT2Encoder:
    """GPT-2's tokenizer (coursekit's from-scratch one, from the verified encoder.json and vocab.bpe)."""
    return GPT2Encoder.from_files()


def parameter_tree(model: nn.Module, detailed_blocks: int = 1) -> str:
    """Each parameter's name, shape and count; blocks (transformer.h.N) get one line with their total, and the
    first `detailed_blocks` of them are listed in full. Tied parameters are counted once.

    >>> print(parameter_tree(GPT(GPTConfig(vocab_size=10, block_size=4, n_layer=2, n_head=2, n_embd=4))))
    transformer.wte.weight               (10, 4)                40
    transformer.wpe.weight               (4, 4)                 16
    transformer.h.0                      block                 244
      ln_1.weight                        (4,)                    4
      ln_1.bias                          (4,)                    4
      attn.c_attn.weight                 (12, 4)                48
      attn.c_attn.bias                   (12,)                  12
      attn.c_proj.weight                 (4, 4)                 16
      attn.c_proj.bias                   (4,)                    4
      ln_2.weight                        (4,)                    4
      ln_2.bias                          (4,)                    4
      mlp.c_fc.weight                    (16, 4)                64
      mlp.c_fc.bias                      (16,)                  16
      mlp.c_proj.weight                  (4, 16)                64
      mlp.c_proj.bias                    (4,)                    4
    transformer.h.1                      block                 244
    transformer.ln_f.weight              (4,)                    4
    transformer.ln_f.bias                (4,)                    4
    lm_head.weight                       (10, 4)       tied to transformer.wte.weight
    total                                                      552
    """
    rows: list[tuple[str, str, str]] = []  # (name, shape, count or note)
    block_rows: dict[str, list[tuple[str, str, str]]] = {}
    block_totals: dict[str, int] = {}
    first_name: dict[int, str] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        shape = str(tuple(parameter.shape))
        if first_name.setdefault(id(parameter), name) != name:
            rows.append((name, shape, f"tied to {first_name[id(parameter)]}"))
            continue
        block = re.match(r"(.*\.h\.\d+)\.(.*)", name)  # a parameter inside transformer.h.N
        if block is None:
            rows.append((name, shape, f"{parameter.numel():,}"))
            continue
        block_name, inner_name = block.groups()
        if block_name not in block_totals:
            rows.append((block_name, "block", ""))  # its total is filled in below
            block_rows[block_name], block_totals[block_name] = [], 0
        block_totals[block_name] += parameter.numel()
        block_rows[block_name].append(("  " + inner_name, shape, f"{parameter.numel():,}"))
    lines = []
    for name, shape, count in rows:
        if name in block_totals:
            count = f"{block_totals[name]:,}"
        lines.append(f"{name:36} {shape:13} {count:>11}")
        if name in block_totals and list(block_totals).index(name) < detailed_blocks:
            lines.extend(f"{inner:36} {inner_shape:13} {inner_count:>11}"
                         for inner, inner_shape, inner_count in block_rows[name])
    total = sum(parameter.numel() for parameter in model.parameters())  # parameters() lists a tied tensor once
    lines.append(f"{'total':36} {'':13} {total:>11,}")
    return "\n".join(line.rstrip() for line in lines)


# ---------------------------------------------------------------- GPT-2, or the course's own model without it

@dataclass
class LanguageModel:
    """A model with its tokenizer (encode(text) -> ids, decode(ids) -> text), what it is (name, and a short form for
    plot titles), and its kind of tokens: "gpt2" (GPT-2 itself), "bpe" (a course model on notebook 01's 512 BPE
    tokens) or "char" (characters)."""

    model: GPT
    tokenizer: object
    name: str
    short_name: str
    kind: str

    @property
    def is_gpt2(self) -> bool:
        return self.kind == "gpt2"

    def banner(self) -> None:
        """In fallback mode, a warning that the numbers below are not GPT-2's (nothing when this is GPT-2)."""
        if self.is_gpt2:
            return
        text = (f"FALLBACK MODE: GPT-2's weights are not on this machine. The numbers below come from {self.name}, "
                f"not from GPT-2. Run `{FETCH_COMMANDS[0]}` and re-run the notebook to see GPT-2's.")
        html = f'<div style="background:#fff3cd;border:2px solid #e0a800;padding:8px;color:#000">⚠️ {text}</div>'
        try:
            from IPython.display import display

            display({"text/plain": "⚠️ " + text, "text/html": html}, raw=True)
        except ImportError:
            print("⚠️ " + text)


def load_gpt2_or_fallback(source: str | Path = GPT2_REPO, download: bool = True,
                          cache_dir: str | Path | None = None) -> LanguageModel:
    """GPT-2 small with its tokenizer; without its weights, says why and returns the best course model instead
    (`coursekit.course_models.course_model`)."""
    try:
        model = load_gpt2(source, download=download, cache_dir=cache_dir)
        return LanguageModel(model, gpt2_tokenizer(), f"GPT-2 small ({source})", "GPT-2 small", kind="gpt2")
    except GPT2WeightsMissing as error:
        print(f"GPT-2 could not be loaded: {error}\n")
    from coursekit.course_models import course_model  # it imports this module

    fallback = course_model()
    print(f"Using {fallback.name} instead.")
    return fallback


def fetch_gpt2(repo: str = GPT2_REPO) -> dict[str, Path]:
    """Download GPT-2's files into the Hugging Face cache (for `python -m coursekit gpt2 fetch`)."""
    from huggingface_hub import hf_hub_download

    problem = "HF_HUB_OFFLINE is set" if hub_is_offline() else hub_problem()
    if problem:
        raise GPT2WeightsMissing(f"Cannot download {repo}: {problem}. Run this on a machine with internet access.")
    return {name: Path(hf_hub_download(repo, name, etag_timeout=10)) for name in GPT2_FILES}
