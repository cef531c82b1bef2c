"""Notebook 05's sampling explorer: the filtered distribution it draws, whose filters it uses, and its displays."""

import base64
import json

import matplotlib
import pytest
import torch
from jupyter_client.session import json_packer

from coursekit import explorer
from coursekit.checks import check_temperature, check_top_k, check_top_p

CHECKS = [check_temperature, check_top_k, check_top_p]


def my_temperature(logits, temperature):
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return logits * (1.0 / temperature)


def my_top_k(logits, k):
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    kth = logits.sort(dim=-1, descending=True).values[..., min(k, logits.size(-1)) - 1 : min(k, logits.size(-1))]
    return torch.where(logits < kth, torch.full_like(logits, float("-inf")), logits)


def my_top_p(logits, p):
    if not 0 < p <= 1:
        raise ValueError(f"p must be in (0, 1], got {p}")
    probs = torch.softmax(logits, dim=-1)
    sorted_probs, order = probs.sort(dim=-1, descending=True)
    drop_sorted = sorted_probs.cumsum(-1) - sorted_probs >= p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def test_the_students_filters_are_used_once_all_three_pass():
    picked = explorer.pick_sampling_functions(my_temperature, my_top_k, my_top_p, CHECKS)
    assert picked.temperature is my_temperature and picked.top_p is my_top_p
    assert picked.source.startswith("yours")


@pytest.mark.parametrize("broken", ["temperature", "top_k", "top_p"])
def test_coursekit_filters_are_used_while_one_of_yours_fails_its_check(broken):
    def not_done(*arguments):
        raise NotImplementedError

    def keeps_everything(logits, setting):  # a plausible bug: returns the logits unchanged
        return logits.clone()

    yours = {"temperature": my_temperature, "top_k": my_top_k, "top_p": my_top_p}
    for wrong in (not_done, keeps_everything):
        picked = explorer.pick_sampling_functions(**{**yours, broken: wrong}, checks=CHECKS)
        assert picked is explorer.coursekit_functions(), (broken, wrong.__name__)


def test_filtered_distribution_keeps_the_nucleus_and_the_top_k():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    probabilities, kept = explorer.filtered_probabilities(logits, explorer.coursekit_functions(), 1.0, None, 0.75)
    assert kept.tolist() == [True, True, False, False]
    assert torch.allclose(probabilities, torch.tensor([0.5, 0.3, 0.15, 0.05]))
    _, kept = explorer.filtered_probabilities(logits, explorer.coursekit_functions(), 1.0, 3, 0.75)
    assert kept.tolist() == [True, True, False, False]  # top-p is the tighter filter here
    probabilities, kept = explorer.filtered_probabilities(logits, explorer.coursekit_functions(), 0.5, 1, None)
    assert kept.tolist() == [True, False, False, False]
    assert probabilities[0] > 0.5, "temperature 0.5 sharpens the distribution"


def test_entropy_of_the_kept_tokens_is_that_of_the_renormalised_distribution():
    probabilities = torch.tensor([0.4, 0.4, 0.1, 0.1])
    assert explorer.entropy_of_kept(probabilities, torch.tensor([True, True, False, False])) == pytest.approx(0.6931, abs=1e-4)
    assert explorer.entropy_of_kept(probabilities, torch.tensor([True, False, False, False])) == 0.0


def made_up_explorer():
    logits = torch.linspace(3.0, -3.0, 30)
    prompts = []  # every prompt the model was run on
    demo = explorer.SamplingExplorer(lambda prompt: prompts.append(prompt) or logits, lambda token: f"t{token}",
                                     explorer.coursekit_functions(), prompt="a")
    return demo, prompts


def test_every_change_redraws_the_chart_for_the_values_now_on_the_sliders():
    matplotlib.use("Agg")
    demo, prompts = made_up_explorer()
    assert demo.summary.value.startswith("30 of 30 tokens kept")
    assert demo.chart.value == demo.chart_png("a", 1.0, None, None)
    drawn = {demo.chart.value}
    for control, value, expected in [(demo.top_k, 5, ("a", 1.0, 5, None)),  # what moving a slider does
                                     (demo.temperature, 0.5, ("a", 0.5, 5, None)),
                                     (demo.top_p, 0.3, ("a", 0.5, 5, 0.3)),
                                     (demo.top_k, 0, ("a", 0.5, None, 0.3)),
                                     (demo.prompt, "b", ("b", 0.5, None, 0.3))]:
        control.value = value
        assert demo.settings() == expected[1:]
        assert demo.chart.value == demo.chart_png(*expected), f"after {control.description} = {value}"
        drawn.add(demo.chart.value)
    assert len(drawn) == 6, "each of these settings draws a different chart"
    assert demo.summary.value.startswith("1 of 30 tokens kept"), "temperature 0.5 and top-p 0.3 keep the top token"
    assert prompts == ["a", "b"], "the model runs once per prompt, not once per slider move"


def test_without_a_widget_frontend_the_display_is_the_current_picture():
    matplotlib.use("Agg")
    demo, _ = made_up_explorer()
    demo.top_k.value = 5
    bundle = demo._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"] == demo.chart.value and bundle["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    sent = json.loads(json_packer(bundle))  # as the kernel sends it: a notebook stores the picture as base64 text
    assert base64.b64decode(sent["image/png"]) == bundle["image/png"]
    assert "static" in bundle["text/plain"] and "5 of 30 tokens kept" in bundle["text/plain"]
