"""Training plumbing: token-id datasets, random batches, loss/accuracy estimates, a small Trainer and its plots.

The data is one long 1-D tensor of token ids (characters or BPE tokens, it makes no difference here). A batch is
`batch_size` random windows of `block_size + 1` consecutive tokens: the input is each window minus its last token,
the target the same window shifted by one, so every position learns to predict the token that follows it.

Everything random takes a seed or a torch.Generator, so running the same thing twice gives the same numbers.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
from tqdm.auto import tqdm

from coursekit.gpt_config import GPTConfig


class CharTokenizer:
    """Characters as tokens: the vocabulary is the sorted set of characters in the training text.

    >>> tokenizer = CharTokenizer("hello")
    >>> tokenizer.encode("hole"), tokenizer.decode([3, 1, 2])
    ([1, 3, 2, 0], 'ohl')
    """

    def __init__(self, text: str):
        self.characters = sorted(set(text))
        self.index = {character: i for i, character in enumerate(self.characters)}

    @property
    def vocab_size(self) -> int:
        return len(self.characters)

    def encode(self, text: str) -> list[int]:
        return [self.index[character] for character in text]

    def decode(self, ids) -> str:
        return "".join(self.characters[int(i)] for i in ids)


def train_val_split(data: torch.Tensor, train_fraction: float = 0.9) -> tuple[torch.Tensor, torch.Tensor]:
    """First 90% for training, the rest for validation (contiguous, so no window straddles both).

    >>> train_val_split(torch.arange(10))
    (tensor([0, 1, 2, 3, 4, 5, 6, 7, 8]), tensor([9]))
    """
    n_train = int(train_fraction * len(data))
    return data[:n_train], data[n_train:]


def get_batch(data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None):
    """Random windows of data: inputs x and next-token targets y, both (batch_size, block_size).

    >>> x, y = get_batch(torch.arange(100), 2, 4, torch.Generator().manual_seed(0))
    >>> x.shape, bool((y == x + 1).all())
    (torch.Size([2, 4]), True)
    """
    if len(data) <= block_size:
        raise ValueError(f"data has {len(data)} tokens, need more than block_size={block_size} to cut one window")
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)  # (B,)
    windows = data[starts[:, None] + torch.arange(block_size + 1)].long()  # one gather: (B, block_size + 1)
    return windows[:, :-1], windows[:, 1:]


@torch.no_grad()
def estimate_metrics(model, splits: dict[str, torch.Tensor], batch_size: int, num_batches: int,
                     seed: int = 0, block_size: int | None = None) -> dict[str, float]:
    """Mean loss and next-token accuracy on num_batches random batches of each split, e.g. {"val_loss": ...}.

    The batches come from a generator seeded with `seed`, so every evaluation of a run sees the same windows and
    the curves compare like with like. Dropout is switched off while measuring.
    """
    block_size = block_size or model.config.block_size
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    metrics = {}
    for split, data in splits.items():
        generator = torch.Generator().manual_seed(seed)
        losses, accuracies = [], []
        for _ in range(num_batches):
            x, y = get_batch(data, batch_size, block_size, generator)
            x, y = x.to(device), y.to(device)
            logits, loss = model(x, y)
            losses.append(loss.item())
            accuracies.append((logits.argmax(dim=-1) == y).float().mean().item())
        metrics[f"{split}_loss"] = sum(losses) / num_batches
        metrics[f"{split}_accuracy"] = sum(accuracies) / num_batches
    model.train(was_training)
    return metrics


@dataclass
class TrainingConfig:
    max_steps: int = 2000
    batch_size: int = 12
    learning_rate: float = 1e-3
    warmup_steps: int = 100  # linear warm-up from 0: early gradients are large and noisy
    decay_learning_rate: bool = True  # cosine decay from learning_rate to min_learning_rate at max_steps
    min_learning_rate: float = 1e-4
    weight_decay: float = 0.1  # applied to matrices only, never to biases or LayerNorm gains
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0  # max global gradient norm; 0 switches clipping off
    eval_interval: int = 250  # evaluate at step 0, every eval_interval steps, and at the end
    eval_batches: int = 20
    seed: int = 1337


def learning_rate_at(step: int, config: TrainingConfig) -> float:
    """Linear warm-up, then (optionally) cosine decay down to min_learning_rate at max_steps.

    >>> config = TrainingConfig(max_steps=100, learning_rate=1.0, min_learning_rate=0.0, warmup_steps=10)
    >>> learning_rate_at(4, config), learning_rate_at(10, config), round(learning_rate_at(55, config), 3)
    (0.5, 1.0, 0.5)
    """
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    if not config.decay_learning_rate:
        return config.learning_rate
    progress = min(1.0, (step - config.warmup_steps) / max(1, config.max_steps - config.warmup_steps))
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
    return config.min_learning_rate + cosine * (config.learning_rate - config.min_learning_rate)


class Trainer:
    """Train a model that returns (logits, loss) with AdamW on random batches of train_data.

    on_batch_end(step, loss) is called after every optimiser step, on_eval(step, metrics) after every evaluation.
    `history` collects the per-step losses and learning rates and the evaluation metrics, for plot_history.
    """

    def __init__(self, model, train_data: torch.Tensor, val_data: torch.Tensor, config: TrainingConfig,
                 on_batch_end: Callable[[int, float], None] | None = None,
                 on_eval: Callable[[int, dict], None] | None = None, progress: bool = True):
        self.model = model
        self.splits = {"train": train_data, "val": val_data}
        self.config = config
        self.on_batch_end = on_batch_end
        self.on_eval = on_eval
        self.progress = progress
        self.history: dict[str, list] = {"step": [], "loss": [], "learning_rate": [], "eval_step": []}
        self.evaluation_seconds = 0.0  # time spent evaluating: it is not spent training
        parameters = [p for p in model.parameters() if p.requires_grad]
        groups = [
            {"params": [p for p in parameters if p.dim() >= 2], "weight_decay": config.weight_decay},
            {"params": [p for p in parameters if p.dim() < 2], "weight_decay": 0.0},
        ]
        device = next(model.parameters()).device
        # The fused kernel updates all parameters in one pass instead of a loop of small ops per tensor.
        self.optimizer = torch.optim.AdamW(groups, lr=config.learning_rate, betas=config.betas,
                                           fused=device.type in ("cpu", "cuda"))

    def evaluate(self, step: int) -> dict[str, float]:
        start = time.perf_counter()
        metrics = estimate_metrics(self.model, self.splits, self.config.batch_size, self.config.eval_batches,
                                   seed=self.config.seed)
        self.evaluation_seconds += time.perf_counter() - start
        self.history["eval_step"].append(step)
        for key, value in metrics.items():
            self.history.setdefault(key, []).append(value)
        if self.on_eval:
            self.on_eval(step, metrics)
        return metrics

    def train(self) -> dict[str, list]:
        config, model = self.config, self.model
        torch.manual_seed(config.seed)  # dropout masks
        generator = torch.Generator().manual_seed(config.seed)  # batch positions
        device = next(model.parameters()).device
        block_size = model.config.block_size
        model.train()
        bar = tqdm(range(config.max_steps), disable=not self.progress, desc="training")
        for step in bar:
            if step % config.eval_interval == 0:
                bar.set_postfix(val_loss=f"{self.evaluate(step)['val_loss']:.3f}")
            learning_rate = learning_rate_at(step, config)
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
            x, y = get_batch(self.splits["train"], config.batch_size, block_size, generator)
            _, loss = model(x.to(device), y.to(device))
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            self.optimizer.step()
            loss_value = loss.item()
            self.history["step"].append(step)
            self.history["loss"].append(loss_value)
            self.history["learning_rate"].append(learning_rate)
            if self.on_batch_end:
                self.on_batch_end(step, loss_value)
        self.evaluate(config.max_steps)  # the final model
        return self.history


def plot_history(history: dict[str, list]):
    """Two panels: loss (per batch, and train/val at each evaluation) and next-token accuracy. Returns the figure."""
    import matplotlib.pyplot as plt

    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(11, 4))
    loss_axes.plot(history["step"], history["loss"], color="lightgray", linewidth=0.8, label="batch")
    for split in ("train", "val"):
        loss_axes.plot(history["eval_step"], history[f"{split}_loss"], marker="o", label=split)
        accuracy_axes.plot(history["eval_step"], history[f"{split}_accuracy"], marker="o", label=split)
    loss_axes.set(xlabel="step", ylabel="cross-entropy loss (nats)", title="Loss")
    accuracy_axes.set(xlabel="step", ylabel="next-token accuracy", title="Accuracy")
    for axes in (loss_axes, accuracy_axes):
        axes.legend()
        axes.grid(alpha=0.3)
    figure.tight_layout()
    return figure


@dataclass(frozen=True)
class Preset:
    """A model shape and training recipe that are known to work together."""

    description: str
    tokenizer: str  # "char" (CharTokenizer on tinyshakespeare) or "bpe-512" (a 512-token BPE vocabulary)
    model: GPTConfig
    training: TrainingConfig = field(default_factory=TrainingConfig)


PRESETS = {
    "cpu-char": Preset(
        description="char-level tinyshakespeare on a CPU: under 2 minutes on 2 quiet cores, val loss about 1.78 "
        "(benchmarks/train_char_gpt.py, recipe 'tuned')",
        tokenizer="char",
        model=GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0, bias=False),
        training=TrainingConfig(max_steps=2000, batch_size=12, learning_rate=5e-3, min_learning_rate=5e-4),
    ),
    "gpu-bpe512": Preset(
        description="BPE-512 tinyshakespeare on a GPU (not timed here: no GPU on the course's build machines)",
        tokenizer="bpe-512",
        model=GPTConfig(vocab_size=512, block_size=256, n_layer=8, n_head=16, n_embd=128, dropout=0.2),
        training=TrainingConfig(max_steps=2000, batch_size=32, learning_rate=1e-3, warmup_steps=100),
    ),
}
