"""Checkpoints: a saved model comes back identical, and mismatches and missing files are explained."""

import json

import pytest
import torch

from coursekit.checkpoints import CheckpointError, checkpoint_dir, load_checkpoint, save_checkpoint
from coursekit.gpt import GPT, GPTConfig

CONFIG = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.1, bias=False)


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSEKIT_DATA_DIR", str(tmp_path))


def saved_model(name="tiny"):
    torch.manual_seed(0)
    model = GPT(CONFIG)
    save_checkpoint(model, name, tokenizer={"name": "char", "vocabulary": "abc"}, metadata={"steps": 12})
    return model


def test_round_trip_gives_the_same_model(tmp_path):
    model = saved_model()
    assert checkpoint_dir("tiny") == tmp_path / "checkpoints" / "tiny"
    loaded, info = load_checkpoint("tiny")
    assert loaded.config == CONFIG and not loaded.training
    assert info["tokenizer"] == {"name": "char", "vocabulary": "abc"} and info["training"] == {"steps": 12}
    assert loaded.state_dict().keys() == model.state_dict().keys()
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name
    assert loaded.lm_head.weight is loaded.transformer.wte.weight, "weight tying lost on loading"
    idx = torch.tensor([[1, 2, 3]])
    assert torch.equal(loaded(idx)[0], model.eval()(idx)[0])
    saved = json.loads((tmp_path / "checkpoints" / "tiny" / "checkpoint.json").read_text())
    assert saved["config"]["n_embd"] == 16


def test_mismatched_config_names_every_differing_field():
    saved_model()
    wrong = GPTConfig(**{**CONFIG.__dict__, "n_layer": 3, "n_embd": 32})
    with pytest.raises(CheckpointError) as error:
        load_checkpoint("tiny", config=wrong)
    message = str(error.value)
    assert "n_layer: checkpoint has 2, your config has 3" in message
    assert "n_embd: checkpoint has 16, your config has 32" in message
    assert "n_head" not in message and "vocab_size" not in message


def test_dropout_may_differ_when_loading():
    saved_model()
    model, _ = load_checkpoint("tiny", config=GPTConfig(**{**CONFIG.__dict__, "dropout": 0.0}))
    assert model.config.dropout == 0.0


def test_missing_checkpoint_names_the_path_and_how_to_create_it(tmp_path):
    with pytest.raises(CheckpointError) as error:
        load_checkpoint("never-saved")
    assert str(tmp_path / "checkpoints" / "never-saved") in str(error.value)
    assert "save_checkpoint" in str(error.value)


@pytest.mark.parametrize("name", ["", "../escape", ".hidden", "a/b"])
def test_checkpoint_names_are_plain_folder_names(name):
    with pytest.raises(ValueError, match="plain folder name"):
        checkpoint_dir(name)


def test_a_students_own_gpt_saves_and_loads_into_the_reference_model():
    """Notebook 04 saves the student's GPT (same parameter names, plus attention-mask buffers) without the
    reference class; notebook 05 loads it into coursekit.gpt.GPT, which must compute the same function."""
    torch.manual_seed(1)
    reference = GPT(CONFIG).eval()

    class StudentGPT(torch.nn.Module):  # GPT-2's names, an extra buffer per block, a config attribute
        def __init__(self):
            super().__init__()
            self.config = CONFIG
            self.inner = GPT(CONFIG)
            self.transformer, self.lm_head = self.inner.transformer, self.inner.lm_head
            del self.inner
            for block in self.transformer.h:
                block.attn.register_buffer("mask", torch.ones(8, 8, dtype=torch.bool))

    student = StudentGPT()
    student.load_state_dict({**reference.state_dict(), **{f"transformer.h.{i}.attn.mask": torch.ones(8, 8, dtype=torch.bool)
                                                         for i in range(CONFIG.n_layer)}})
    save_checkpoint(student, "student", tokenizer="char")
    loaded, _ = load_checkpoint("student")
    idx = torch.tensor([[4, 1, 7, 2]])
    assert torch.equal(loaded(idx)[0], reference(idx)[0])
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
