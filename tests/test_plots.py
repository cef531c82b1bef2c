"""coursekit.plots: figures come back for good input; bad shapes get an error naming the expected shape."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from coursekit import plots


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_losses_accepts_lists_tensors_and_baselines():
    figure = plots.plot_losses({"list": [3.0, 2.0, 1.5], "tensor": torch.tensor([3.0, 2.5, 2.0])},
                               baselines={"best": 1.2})
    labels = figure.axes[0].get_legend_handles_labels()[1]
    assert labels == ["list", "tensor", "best: 1.200"]


@pytest.mark.parametrize("curves, message", [
    ({}, "non-empty dict"),
    ([1.0, 2.0], "non-empty dict"),
    ({"run": torch.zeros(3, 2)}, r"shape \(num_steps,\), got shape \(3, 2\)"),
    ({"run": []}, r"shape \(num_steps,\)"),
])
def test_plot_losses_names_the_expected_shape(curves, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_losses(curves)


def test_plot_losses_refuses_a_baseline_that_is_not_a_number():
    with pytest.raises(ValueError, match="one number"):
        plots.plot_losses({"run": [1.0]}, baselines={"best": [1.0, 2.0]})


def test_attention_heatmap_draws_one_panel_per_head():
    weights = torch.softmax(torch.randn(3, 4, 4), dim=-1)
    figure = plots.attention_heatmap(weights, list("ab\nc"), head_titles=["h0", "h1", "h2"], annotate=False)
    assert [axes.get_title() for axes in figure.axes[:3]] == ["h0", "h1", "h2"]
    assert plots.attention_heatmap(np.eye(4), list("abcd")).axes[0].get_xticklabels()[0].get_text() == "a"


@pytest.mark.parametrize("weights, message", [
    (torch.zeros(4, 3), r"shape \(4, 4\) or \(n_head, 4, 4\) for 4 tokens, got \(4, 3\)"),
    (torch.zeros(2, 2, 4, 4), r"pick one sequence first"),
    (torch.zeros(5, 5), r"got \(5, 5\)"),
    ("not numbers", r"should be a tensor of shape \(4, 4\)"),
])
def test_attention_heatmap_names_the_expected_shape(weights, message):
    with pytest.raises(ValueError, match=message):
        plots.attention_heatmap(weights, list("abcd"))


def test_moving_average_keeps_the_length():
    assert plots.moving_average([1.0, 3.0, 5.0, 7.0], 3).tolist() == [1.0, 2.0, 3.0, 5.0]


def test_plot_sweep_draws_each_curve_at_its_settings():
    figure = plots.plot_sweep([1, 2, 4], {"train": [3.0, 2.6, 2.5], "held out": torch.tensor([3.1, 2.8, 2.7])},
                              xlabel="hidden size", ylabel="nats", baselines={"floor": 2.45})
    axis = figure.axes[0]
    assert axis.get_legend_handles_labels()[1] == ["train", "held out", "floor: 2.450"]
    assert np.allclose(axis.get_lines()[1].get_xydata(), [[1, 3.1], [2, 2.8], [4, 2.7]])
    assert axis.get_xscale() == "log"


@pytest.mark.parametrize("settings, curves, message", [
    ([1, 2], {"loss": [1.0]}, r"one value per setting \(2\), got shape \(1,\)"),
    ([], {"loss": []}, "non-empty 1-D"),
    ([1, 2], {}, "non-empty dict"),
])
def test_plot_sweep_names_what_is_wrong(settings, curves, message):
    with pytest.raises(ValueError, match=message):
        plots.plot_sweep(settings, curves, xlabel="x", ylabel="y")
