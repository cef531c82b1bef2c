"""Plotting plumbing for the notebooks: loss curves and attention heatmaps.

(The Trainer's two-panel history plot lives next to the Trainer, in coursekit/training.py.)

Every function takes plain tensors, arrays or lists, checks their shapes first and says which shape it expected,
then returns the matplotlib Figure so a notebook can show it or save it.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch


def _as_array(value, name: str, expected: str) -> np.ndarray:
    """value as a float numpy array, or a ValueError naming what was expected."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().double().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} should be {expected}, got {type(value).__name__}") from None
    return array


def _figure_and_axis(ax, figsize: tuple[float, float]):
    """(figure, axis) to draw on: the given axis and its figure, or a new figure of this size."""
    import matplotlib.pyplot as plt

    if ax is None:
        return plt.subplots(figsize=figsize)
    return ax.figure, ax


def moving_average(values: Sequence[float], window: int) -> np.ndarray:
    """Mean of each value and the window - 1 before it (fewer at the start), so curves keep their length.

    >>> moving_average([1.0, 3.0, 5.0, 7.0], window=2)
    array([1., 2., 4., 6.])
    """
    values = np.asarray(values, dtype=np.float64)
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - window)
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def plot_losses(curves: Mapping[str, Sequence[float]], baselines: Mapping[str, float] | None = None,
                smoothing: int = 25, title: str = "Training loss", ax=None, unit: str = "character"):
    """One line per training run (its losses, one per step) and a dashed line per baseline; returns the Figure.

    curves:    {"one-hot MLP": losses, ...}, each a 1-D list, array or tensor of per-step losses.
    baselines: {"count table (best bigram)": 2.45, ...}, drawn as horizontal lines for comparison.
    smoothing: the per-step losses are drawn faintly, their moving average over this many steps boldly.
    unit:      what one prediction is, for the y label: the loss is in nats per character, per digit, ...

    >>> plot_losses({"run": [2.0, 1.5, 1.0]}, smoothing=2, unit="digit").axes[0].get_ylabel()
    'cross-entropy (nats per digit)'
    """
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError("curves should be a non-empty dict {name: per-step losses}, e.g. {'one-hot MLP': losses}; "
                         f"got {type(curves).__name__}")
    figure, ax = _figure_and_axis(ax, figsize=(8, 4))
    for name, losses in curves.items():
        values = _as_array(losses, f"curves[{name!r}]", "a 1-D sequence of losses, one per step")
        if values.ndim != 1 or len(values) == 0:
            raise ValueError(f"curves[{name!r}] should be a 1-D sequence of losses with shape (num_steps,), "
                             f"got shape {values.shape}")
        line, = ax.plot(values, alpha=0.25, linewidth=0.8)
        ax.plot(moving_average(values, smoothing), color=line.get_color(), linewidth=2, label=name)
    styles = ["--", ":", "-.", (0, (5, 5))]
    for index, (name, value) in enumerate((baselines or {}).items()):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"baselines[{name!r}] should be one number (a loss), got {type(value).__name__}")
        ax.axhline(value, linestyle=styles[index % len(styles)], color="dimgray", linewidth=1.2,
                   label=f"{name}: {value:.3f}")
    ax.set(xlabel="step", ylabel=f"cross-entropy (nats per {unit})", title=title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    figure.tight_layout()
    return figure


def attention_heatmap(weights, tokens: Sequence[str], title: str | None = None, head_titles: Sequence[str] | None = None,
                      annotate: bool | None = None, ax=None):
    """Attention weights as a heatmap: row = the query (who is looking), column = the key (who is looked at).

    weights: (T, T) for one head, or (n_head, T, T) for one panel per head; T must equal len(tokens).
    annotate: write each weight in its cell (default: when T <= 12).
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    visible = {" ": "␣", "\n": "\\n", "\t": "\\t"}  # whitespace tokens need a visible label
    tokens = [visible.get(str(token), str(token)) for token in tokens]
    T = len(tokens)
    values = _as_array(weights, "weights", f"a tensor of shape ({T}, {T}) or (n_head, {T}, {T})")
    if values.ndim == 2:
        values = values[None]
    if values.ndim != 3 or values.shape[1:] != (T, T):
        hint = " (for a batch, pick one sequence first: weights[0])" if values.ndim == 4 else ""
        raise ValueError(f"weights should have shape ({T}, {T}) or (n_head, {T}, {T}) for {T} tokens, "
                         f"got {tuple(np.shape(weights))}{hint}")
    n_panels = values.shape[0]
    if head_titles is not None and len(head_titles) != n_panels:
        raise ValueError(f"head_titles should have one title per head ({n_panels}), got {len(head_titles)}")
    if ax is not None and n_panels != 1:
        raise ValueError(f"ax draws one panel, but weights has {n_panels} heads: leave ax=None for a grid")
    annotate = T <= 12 if annotate is None else annotate
    if ax is None:
        # One square panel per head and a narrow column for a shared colour bar, so every panel has the same size.
        figure, axes = plt.subplots(1, n_panels + 1, figsize=(0.45 * T * n_panels + 1.5, 0.45 * T + 1.2),
                                    gridspec_kw={"width_ratios": [1.0] * n_panels + [0.05]}, squeeze=False)
        axes, colorbar_axes = list(axes[0][:-1]), axes[0][-1]
    else:
        figure, axes, colorbar_axes = ax.figure, [ax], None
    for index, (panel, axis) in enumerate(zip(values, axes)):
        last = index == n_panels - 1
        sns.heatmap(panel, ax=axis, vmin=0.0, vmax=1.0, cmap="viridis", square=True, cbar=last,
                    cbar_ax=colorbar_axes if last else None,
                    annot=annotate, fmt=".2f", annot_kws={"fontsize": 7}, xticklabels=tokens, yticklabels=tokens)
        axis.set_xlabel("key (attended to)")
        axis.set_ylabel("query (attending)" if index == 0 else "")
        axis.tick_params(axis="y", rotation=0)
        if head_titles is not None:
            axis.set_title(head_titles[index])
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    return figure


def plot_sweep(settings: Sequence[float], curves: Mapping[str, Sequence[float]], xlabel: str, ylabel: str,
               baselines: Mapping[str, float] | None = None, title: str | None = None, log_x: bool = True, ax=None):
    """An experiment's result: one marked line per measured quantity against the setting that was varied.

    settings: the values tried, e.g. hidden sizes [1, 2, 4, 8]; each curve has one measurement per setting.
    baselines: horizontal dashed lines, e.g. {"count table (best bigram)": 2.45}. Returns the Figure.

    >>> figure = plot_sweep([1, 2, 4], {"loss": [3.0, 2.6, 2.5]}, xlabel="hidden size", ylabel="nats")
    >>> [line.get_label() for line in figure.axes[0].get_lines()]
    ['loss']
    """
    x = _as_array(settings, "settings", "a 1-D sequence of the values tried")
    if x.ndim != 1 or len(x) == 0:
        raise ValueError(f"settings should be a non-empty 1-D sequence of the values tried, got shape {x.shape}")
    if not isinstance(curves, Mapping) or not curves:
        raise ValueError(f"curves should be a non-empty dict {{name: one value per setting}}, got {type(curves).__name__}")
    figure, ax = _figure_and_axis(ax, figsize=(7, 3.8))
    for name, values in curves.items():
        y = _as_array(values, f"curves[{name!r}]", "one value per setting")
        if y.shape != x.shape:
            raise ValueError(f"curves[{name!r}] should have one value per setting ({len(x)}), got shape {y.shape}")
        ax.plot(x, y, marker="o", label=name)
    for name, value in (baselines or {}).items():
        ax.axhline(value, linestyle="--", color="dimgray", linewidth=1.2, label=f"{name}: {value:.3f}")
    if log_x:
        ax.set_xscale("log", base=2)
    ax.set_xticks(x, [f"{value:g}" for value in x])
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    return figure
