"""Training plumbing: splits, batches, metrics, the learning-rate schedule and a deterministic Trainer."""

import math

import matplotlib
import pytest
import torch

from coursekit.gpt import GPT, GPTConfig
from coursekit.training import (PRESETS, CharTokenizer, Trainer, TrainingConfig, estimate_metrics, get_batch,
                                learning_rate_at, plot_history, train_val_split)

matplotlib.use("Agg")




def test_char_tokenizer_round_trips():
    text = "To be, or not to be?\n"
    tokenizer = CharTokenizer(text)
    assert tokenizer.vocab_size == len(set(text))
    assert tokenizer.decode(tokenizer.encode(text)) == text
    assert tokenizer.encode("\n ") == [0, 1], "newline and space sort before letters"


def test_split_keeps_order_and_ninety_percent_for_training():
    train, val = train_val_split(torch.arange(1000))
    assert len(train) == 900 and len(val) == 100
    assert torch.equal(torch.cat([train, val]), torch.arange(1000))


def test_batches_are_windows_and_their_next_tokens():
    data = torch.arange(500) * 3  # every value says where it came from
    x, y = get_batch(data, batch_size=16, block_size=10, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (16, 10) and x.dtype == torch.long
    starts = x[:, 0] // 3
    for row in range(16):
        start = int(starts[row])
        assert torch.equal(x[row], data[start:start + 10])
        assert torch.equal(y[row], data[start + 1:start + 11])
    assert len(set(starts.tolist())) > 1


def test_batches_are_reproducible_with_a_seeded_generator():
    data = torch.arange(1000)
    first = get_batch(data, 4, 8, torch.Generator().manual_seed(5))
    second = get_batch(data, 4, 8, torch.Generator().manual_seed(5))
    other = get_batch(data, 4, 8, torch.Generator().manual_seed(6))
    assert torch.equal(first[0], second[0]) and not torch.equal(first[0], other[0])


def test_a_window_needs_more_data_than_block_size():
    with pytest.raises(ValueError, match="block_size"):
        get_batch(torch.arange(8), 2, 8)


class NextDigitOracle(torch.nn.Module):
    """Knows that in 0,1,...,9,0,1,... the next token is (x + 1) % 10: logit 5 there, 0 elsewhere."""

    config = GPTConfig(vocab_size=10, block_size=6)

    def __init__(self):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # gives the oracle a device

    def forward(self, x, y):
        logits = 5.0 * torch.nn.functional.one_hot((x + 1) % 10, 10).float()
        return logits, torch.nn.functional.cross_entropy(logits.view(-1, 10), y.reshape(-1))


def test_metrics_of_a_perfect_predictor():
    data = torch.arange(200) % 10
    metrics = estimate_metrics(NextDigitOracle(), {"train": data, "val": data}, batch_size=4, num_batches=3)
    assert set(metrics) == {"train_loss", "train_accuracy", "val_loss", "val_accuracy"}
    assert metrics["val_accuracy"] == 1.0
    assert metrics["val_loss"] == pytest.approx(-math.log(math.exp(5) / (math.exp(5) + 9)), rel=1e-5)
    shuffled = data[torch.randperm(200, generator=torch.Generator().manual_seed(0))]
    assert estimate_metrics(NextDigitOracle(), {"val": shuffled}, 4, 3)["val_accuracy"] < 0.5


def test_learning_rate_warms_up_then_decays_to_the_minimum():
    config = TrainingConfig(max_steps=1000, learning_rate=1e-3, min_learning_rate=1e-4, warmup_steps=100)
    rates = [learning_rate_at(step, config) for step in range(1001)]
    assert rates[0] == pytest.approx(1e-5) and rates[99] == pytest.approx(1e-3)
    assert all(a < b for a, b in zip(rates[:99], rates[1:100]))
    assert all(a >= b for a, b in zip(rates[100:], rates[101:]))
    assert rates[550] == pytest.approx(5.5e-4)  # halfway through the decay: the middle of the range
    assert rates[1000] == pytest.approx(1e-4)
    constant = TrainingConfig(max_steps=1000, warmup_steps=0, decay_learning_rate=False)
    assert learning_rate_at(900, constant) == constant.learning_rate


def small_run(seed=0, **changes):
    """Train a tiny GPT on a repeating text for a few steps; returns the trainer and the events it reported."""
    ids = torch.tensor(CharTokenizer("abcdefgh").encode("abcdefgh" * 70))
    train, val = train_val_split(ids)
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=8, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.1))
    config = TrainingConfig(**{**dict(max_steps=40, batch_size=8, learning_rate=1e-2, warmup_steps=5,
                                      min_learning_rate=1e-3, eval_interval=15, eval_batches=2, seed=seed),
                               **changes})
    events = []
    trainer = Trainer(model, train, val, config, progress=False,
                      on_batch_end=lambda step, loss: events.append(("batch", step)),
                      on_eval=lambda step, metrics: events.append(("eval", step)))
    trainer.train()
    return trainer, events


def test_trainer_is_deterministic_and_learns():
    first, events = small_run()
    second, _ = small_run()
    assert first.history["loss"] == second.history["loss"], "same seeds must give the same losses"
    assert first.history["val_loss"] == second.history["val_loss"]
    assert small_run(seed=1)[0].history["loss"] != first.history["loss"]
    assert first.history["val_loss"][-1] < 0.5 * first.history["val_loss"][0], "it should learn the pattern"
    assert [step for kind, step in events if kind == "eval"] == [0, 15, 30, 40] == first.history["eval_step"]
    assert [step for kind, step in events if kind == "batch"] == list(range(40)) == first.history["step"]
    assert len(first.history["learning_rate"]) == 40


def test_plot_history_draws_loss_and_accuracy():
    trainer, _ = small_run(max_steps=5)
    figure = plot_history(trainer.history)
    assert len(figure.axes) == 2
    assert [axes.get_title() for axes in figure.axes] == ["Loss", "Accuracy"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_models(name):
    preset = PRESETS[name]
    with torch.device("meta"):
        GPT(preset.model)
    assert preset.tokenizer in ("char", "bpe-512")
