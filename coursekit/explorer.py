"""A live sampling explorer (notebook 05): how temperature, top-k and top-p reshape the next-token distribution.

`SamplingExplorer` shows sliders for temperature, top-k and top-p and a prompt box. Every change redraws a bar chart
of the most likely next tokens (the tokens the filters keep in colour, the dropped ones grey) and prints the entropy
of the distribution that is sampled from, and one sampled token. The chart is an image widget whose value is the PNG
drawn for the settings of that change, so the picture on screen is always that of the sliders' current values (an
Output widget re-filled from a callback depends on which message the kernel thinks it is answering, and can show
the previous drawing). Where no widget frontend runs (nbval, nbconvert, GitHub's viewer) the same display carries a
static picture of the current settings instead.

The filters are the student's own once they pass their checks, coursekit's otherwise (`pick_sampling_functions`).
coursekit's are notebook 05's reference (`coursekit.sampling`), so they are imported only when that fallback is
taken: notebook 05 imports this module, and its grading sandbox does not contain the reference.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import cache
from typing import Callable

import torch
from matplotlib.figure import Figure

BARS = 20  # how many of the most likely tokens the chart shows


@dataclass(frozen=True)
class SamplingFunctions:
    """The three logit filters the explorer applies, and whose they are (for the explorer to say)."""

    temperature: Callable
    top_k: Callable
    top_p: Callable
    source: str


@cache
def coursekit_functions() -> SamplingFunctions:
    """coursekit's own filters (the ones GPT.generate uses), imported on first use."""
    from coursekit import sampling  # here, not at the top: see the module docstring

    return SamplingFunctions(sampling.apply_temperature, sampling.top_k_filter, sampling.top_p_filter,
                             "coursekit's (the ones GPT.generate uses)")


def passes(check, function) -> bool:
    """Whether function passes every test of check, without printing or raising (a stand-in check never passes)."""
    try:
        return all(outcome.passed for outcome in check.judge(check.probe_all((function,))))
    except Exception:  # noqa: BLE001 - any failure to run the check means: not (yet) yours
        return False


def pick_sampling_functions(temperature, top_k, top_p, checks) -> SamplingFunctions:
    """The student's three filters if all pass their checks (temperature, top_k, top_p order), else coursekit's.

    >>> pick_sampling_functions(None, None, None, checks=[None, None, None]).source
    "coursekit's (the ones GPT.generate uses)"
    """
    yours = (temperature, top_k, top_p)
    if all(function is not None and passes(check, function) for function, check in zip(yours, checks)):
        return SamplingFunctions(*yours, source="yours (all three passed their checks)")
    return coursekit_functions()


def filtered_probabilities(logits: torch.Tensor, functions: SamplingFunctions, temperature: float,
                           top_k: int | None, top_p: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities after temperature, kept mask) for logits (vocab,); the kept tokens are what sampling draws from.

    >>> probs, kept = filtered_probabilities(torch.tensor([2.0, 1.0, 0.0]), coursekit_functions(), 1.0, 2, None)
    >>> kept.tolist(), round(float(probs[:2].sum()), 3)
    ([True, True, False], 0.91)
    """
    tempered = functions.temperature(logits, temperature)
    filtered = tempered
    if top_k is not None:
        filtered = functions.top_k(filtered, top_k)
    if top_p is not None:
        filtered = functions.top_p(filtered, top_p)
    return torch.softmax(tempered, dim=-1), ~torch.isneginf(filtered)


def entropy_of_kept(probabilities: torch.Tensor, kept: torch.Tensor) -> float:
    """Entropy in nats of the distribution renormalised over the kept tokens.

    >>> round(entropy_of_kept(torch.tensor([0.25, 0.25, 0.5]), torch.tensor([True, True, False])), 4)
    0.6931
    """
    renormalised = torch.where(kept, probabilities, torch.zeros_like(probabilities))
    renormalised = renormalised / renormalised.sum()
    return float(torch.special.xlogy(renormalised, renormalised.reciprocal()).sum())


class SamplingExplorer:
    """Sliders and a prompt box over a model's next-token distribution; display it as the last line of a cell.

    next_token_logits(prompt) -> logits (vocab,); token_text(id) -> a readable string for one token.
    """

    def __init__(self, next_token_logits: Callable[[str], torch.Tensor], token_text: Callable[[int], str],
                 functions: SamplingFunctions, prompt: str = "KING RICHARD", seed: int = 0):
        import ipywidgets as widgets

        self.next_token_logits, self.token_text, self.functions = next_token_logits, token_text, functions
        self.generator = torch.Generator().manual_seed(seed)
        self.last_logits: tuple[str, torch.Tensor] | None = None  # (prompt, its logits): a slider needs no new pass
        style = {"description_width": "110px"}
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False, style=style)
        self.temperature = widgets.FloatSlider(value=1.0, min=0.1, max=2.0, step=0.05, description="temperature",
                                               style=style)
        self.top_k = widgets.IntSlider(value=0, min=0, max=50, description="top-k (0: off)", style=style)
        self.top_p = widgets.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p (1: off)",
                                         style=style)
        self.summary = widgets.HTML()
        self.chart = widgets.Image(format="png")
        for control in (self.prompt, self.temperature, self.top_k, self.top_p):
            control.observe(lambda _change: self.update(), names="value")
        self.box = widgets.VBox([widgets.HTML(f"Filters: <b>{functions.source}</b>"), self.prompt, self.temperature,
                                 self.top_k, self.top_p, self.summary, self.chart])
        self.update()

    def settings(self) -> tuple[float, int | None, float | None]:
        """(temperature, top_k or None, top_p or None) from the sliders."""
        top_k = self.top_k.value or None
        top_p = self.top_p.value if self.top_p.value < 1.0 else None
        return self.temperature.value, top_k, top_p

    def distribution(self, prompt: str, temperature: float, top_k: int | None,
                     top_p: float | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(probabilities after temperature, kept mask) of the token after prompt (the model runs once per prompt)."""
        if self.last_logits is None or self.last_logits[0] != prompt:
            self.last_logits = (prompt, self.next_token_logits(prompt))
        return filtered_probabilities(self.last_logits[1], self.functions, temperature, top_k, top_p)

    def chart_png(self, prompt: str, temperature: float, top_k: int | None, top_p: float | None) -> bytes:
        """The bar chart for these settings, as PNG bytes (the same settings always give the same bytes)."""
        probabilities, kept = self.distribution(prompt, temperature, top_k, top_p)
        top = torch.topk(probabilities, min(BARS, probabilities.numel()))
        figure = Figure(figsize=(9, 3.2))  # not pyplot's: nothing for the notebook to show or close later
        axes = figure.subplots()
        colours = ["tab:blue" if kept[i] else "lightgray" for i in top.indices.tolist()]
        axes.bar(range(len(top.values)), top.values.tolist(), color=colours)
        axes.set_xticks(range(len(top.values)), [self.token_text(i) for i in top.indices.tolist()], rotation=60)
        axes.set(ylabel="probability", ylim=(0, 1),
                 title=f"after {prompt!r}: temperature {temperature}, top-k {top_k}, top-p {top_p}")
        figure.tight_layout()
        picture = io.BytesIO()
        figure.savefig(picture, format="png", metadata={"Software": None})  # no version string: same bytes
        return picture.getvalue()

    def summary_text(self, prompt: str, temperature: float, top_k: int | None, top_p: float | None) -> str:
        """How many tokens are kept, the entropy of the sampled distribution, and one token drawn from it."""
        probabilities, kept = self.distribution(prompt, temperature, top_k, top_p)
        renormalised = torch.where(kept, probabilities, torch.zeros_like(probabilities))
        token = int(torch.multinomial(renormalised / renormalised.sum(), 1, generator=self.generator))
        return (f"{int(kept.sum())} of {kept.numel()} tokens kept · entropy of the sampled distribution "
                f"{entropy_of_kept(probabilities, kept):.2f} nats · a sample: {self.token_text(token)!r}")

    def update(self) -> None:
        """Redraw the chart and the summary for the prompt and sliders as they are now."""
        current = (self.prompt.value, *self.settings())
        self.summary.value = self.summary_text(*current)
        self.chart.value = self.chart_png(*current)

    def _repr_mimebundle_(self, **kwargs):
        # The widget for frontends that run widgets; the current picture and summary for every other viewer.
        bundle = self.box._repr_mimebundle_(**kwargs)
        bundle["image/png"] = bytes(self.chart.value)  # the widget holds a memoryview; the kernel sends bytes as base64
        bundle["text/plain"] = f"Sampling explorer (static: no widget frontend here). {self.summary.value}"
        return bundle
