"""The shape of a GPT: one small dataclass that model code, training plumbing and checkpoints all share.

It lives on its own so that plumbing (checkpoints, training presets) and notebooks can describe a model without
importing the reference model, coursekit.gpt, which holds the answers to notebook 04's exercises.

>>> GPTConfig(vocab_size=65, n_layer=2).n_embd
768
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class GPTConfig:
    vocab_size: int = 50257  # GPT-2's BPE vocabulary
    block_size: int = 1024  # longest sequence the model can see (number of position embeddings)
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True  # biases in Linear layers and LayerNorms, as in GPT-2
