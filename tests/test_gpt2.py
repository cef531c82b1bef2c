"""Loading GPT-2 into coursekit's GPT: parity with transformers on a small random GPT-2 saved as the Hub stores it,
clear and immediate failures without the weights, the parameter count, and the fallback: the best course model by
loss per character (never GPT-2's weights here: they cannot be downloaded on the machines that run these tests)."""

import json
import math
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from coursekit import course_models, gpt2
from coursekit.gpt import GPT, GPTConfig

transformers = pytest.importorskip("transformers")




@pytest.fixture(scope="module")
def hub_model(tmp_path_factory):
    """A randomly initialised 3-layer transformers GPT-2 (no download), saved with save_pretrained."""
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=3, n_head=4, n_embd=32, n_positions=48, vocab_size=211,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.1)
    model = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    model.save_pretrained(folder)
    return model, folder


@pytest.fixture(scope="module")
def loaded(hub_model):
    return gpt2.load_gpt2(hub_model[1])


def tokens(batch, length, seed=1):
    return torch.randint(211, (batch, length), generator=torch.Generator().manual_seed(seed))


def test_logits_match_transformers(hub_model, loaded):
    idx = tokens(2, 40)
    with torch.no_grad():
        ours, _ = loaded(idx)
        theirs = hub_model[0](idx).logits
    assert (ours - theirs).abs().max() < 1e-5


def test_logits_with_the_kv_cache_match_transformers(hub_model, loaded):
    idx = tokens(1, 12, seed=2)
    with torch.no_grad():
        theirs = hub_model[0](idx).logits
        cache = loaded.empty_kv_cache(1)
        steps = [loaded(idx[:, :5], kv_cache=cache)[0]] + [loaded(idx[:, t:t + 1], kv_cache=cache)[0]
                                                           for t in range(5, 12)]
    assert (torch.cat(steps, dim=1) - theirs).abs().max() < 1e-5


@pytest.mark.parametrize("use_cache", [True, False], ids=["kv-cache", "no-cache"])
def test_greedy_continuations_match_transformers(hub_model, loaded, use_cache):
    prompt = tokens(1, 6, seed=3)
    ours = loaded.generate(prompt, 30, temperature=0, use_cache=use_cache)
    with torch.no_grad():
        theirs = hub_model[0].generate(prompt, max_new_tokens=30, min_new_tokens=30, do_sample=False,
                                       use_cache=use_cache, pad_token_id=0)
    assert ours.tolist() == theirs.tolist()


def test_loaded_model_is_tied_and_on_the_cpu(loaded):
    assert loaded.lm_head.weight is loaded.transformer.wte.weight
    assert {parameter.device.type for parameter in loaded.parameters()} == {"cpu"}
    assert not loaded.training
    assert gpt2.hyperparameters(loaded.config) == {"n_vocab": 211, "n_ctx": 48, "n_embd": 32, "n_head": 4,
                                                   "n_layer": 3}


def test_loads_the_layout_of_openai_community_gpt2(hub_model, loaded, tmp_path):
    """The Hub's GPT-2 file has no "transformer." prefix and carries each layer's causal-mask buffer."""
    state = load_file(hub_model[1] / "model.safetensors")
    old_style = {name.removeprefix("transformer."): tensor for name, tensor in state.items()}
    for layer in range(3):
        old_style[f"h.{layer}.attn.bias"] = torch.tril(torch.ones(48, 48)).view(1, 1, 48, 48)
    save_file(old_style, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text((hub_model[1] / "config.json").read_text())
    again = gpt2.load_gpt2(tmp_path)
    idx = tokens(1, 10)
    assert torch.equal(again(idx)[0], loaded(idx)[0])


def test_a_file_that_does_not_fit_names_the_tensor(hub_model, tmp_path):
    settings = json.loads((hub_model[1] / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**settings, "n_embd": 64}))
    (tmp_path / "model.safetensors").write_bytes((hub_model[1] / "model.safetensors").read_bytes())
    with pytest.raises(ValueError, match="shape"):
        gpt2.load_gpt2(tmp_path)


def test_unsupported_settings_are_refused():
    with pytest.raises(ValueError, match="activation_function='relu'"):
        gpt2.config_from_hub({"vocab_size": 5, "n_positions": 4, "n_layer": 1, "n_head": 1, "n_embd": 4,
                              "activation_function": "relu"})


def test_missing_weights_offline_fail_at_once_naming_the_files_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(gpt2.GPT2WeightsMissing) as error:
        gpt2.load_gpt2(cache_dir=tmp_path)
    assert time.perf_counter() - start < 2
    message = str(error.value)
    assert "model.safetensors" in message and "config.json" in message and "HF_HUB_OFFLINE" in message
    assert "python -m coursekit gpt2 fetch" in message and "hf download openai-community/gpt2" in message


def test_an_unreachable_hub_fails_at_once(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.perf_counter()
    with pytest.raises(gpt2.GPT2WeightsMissing, match="could not be reached"):
        gpt2.load_gpt2(cache_dir=tmp_path)
    assert time.perf_counter() - start < gpt2.HUB_TIMEOUT_SECONDS + 2


def test_a_folder_without_weights_names_the_missing_file(hub_model, tmp_path):
    (tmp_path / "config.json").write_text((hub_model[1] / "config.json").read_text())
    with pytest.raises(gpt2.GPT2WeightsMissing, match="no model.safetensors"):
        gpt2.load_gpt2(tmp_path)


def test_gpt2_small_has_124439808_parameters():
    with torch.device("meta"):  # the count depends on the shapes only
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808
    tree = gpt2.parameter_tree(model)
    assert tree.splitlines()[-1].split() == ["total", "124,439,808"]
    assert "transformer.h.11" in tree and "tied to transformer.wte.weight" in tree


@pytest.fixture
def empty_checkpoints(tmp_path, monkeypatch):
    """Checkpoints are saved to and searched in tmp_path only; the corpus is still read from the data cache."""
    from coursekit import checkpoints

    monkeypatch.setattr(checkpoints, "cache_dirs", lambda: [tmp_path])
    monkeypatch.setattr(checkpoints, "cache_dir", lambda: tmp_path)
    return tmp_path


def test_without_any_course_model_a_bpe_stand_in_is_trained_once_and_reused(empty_checkpoints, monkeypatch, capsys):
    tmp_path = empty_checkpoints
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(course_models, "STAND_IN_STEPS", 5)
    first = course_models.course_model()
    assert first.kind == "bpe" and not first.is_gpt2 and "stand-in" in first.name and "BPE-512" in first.name
    assert (tmp_path / "checkpoints" / course_models.STAND_IN).is_dir()
    model = gpt2.load_gpt2_or_fallback(cache_dir=tmp_path / "hub")  # an empty Hugging Face cache
    assert not model.is_gpt2 and torch.equal(model.model.transformer.wte.weight, first.model.transformer.wte.weight)
    model.banner()
    shown = capsys.readouterr().out
    assert "python -m coursekit gpt2 fetch" in shown and "not from GPT-2" in shown and "<- used" in shown
    ids = model.tokenizer.encode("ROMEO:")
    text = model.tokenizer.decode(model.model.generate(torch.tensor([ids]), 5, temperature=0)[0].tolist())
    assert text.startswith("ROMEO:") and len(model.tokenizer.encode(text)) >= len(ids) + 1


def uniform(model):
    """The same model with every logit 0 (zero embeddings, and so a zero LM head): each token has probability 1/V."""
    with torch.no_grad():
        model.transformer.wte.weight.zero_()
    return model


def save_course_models(char_model, bpe_model):
    from coursekit import course_tokenizer
    from coursekit.checkpoints import save_checkpoint

    save_checkpoint(char_model, "notebook04-char-gpt", tokenizer={"name": "char", "vocabulary": CHARACTERS})
    save_checkpoint(bpe_model, "notebook05-bpe512-gpt", tokenizer=course_tokenizer.tokenizer_id())


CHARACTERS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # tinyshakespeare's 65


def small(vocab_size):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16))


def test_loss_per_character_is_comparable_across_tokenizers():
    from coursekit import course_tokenizer
    from coursekit.training import CharTokenizer

    text = "KING RICHARD II:\nNow is the winter of our discontent, made glorious summer by this sun of York.\n" * 3
    chars = CharTokenizer(CHARACTERS)
    assert course_models.loss_per_character(uniform(small(65)), chars, text) == pytest.approx(math.log(65))
    bpe = course_tokenizer.load_bpe512(verbose=False)
    windows = (len(bpe.encode(text).ids) - 1) // 32
    predicted = bpe.decode(bpe.encode(text).ids[1 : windows * 32 + 1])  # what the windows predict
    expected = math.log(512) * windows * 32 / len(predicted)  # ln 512 nats per token, spread over its characters
    tokens = course_models.BPETokenizer(bpe)
    assert course_models.loss_per_character(uniform(small(512)), tokens, text) == pytest.approx(expected)
    assert expected < math.log(65), "uniform over 512 tokens of about 2 characters beats uniform over 65 characters"


def test_the_fallback_is_the_course_model_with_the_lower_loss_per_character(empty_checkpoints, capsys):
    confident_and_wrong = small(512)
    with torch.no_grad():
        confident_and_wrong.transformer.wte.weight.mul_(300)  # huge random logits: a very high loss
    save_course_models(uniform(small(65)), confident_and_wrong)
    picked = course_models.course_model()
    assert picked.kind == "char" and "notebook 04" in picked.name
    printed = capsys.readouterr().out
    assert "4.174 nats" in printed and "notebook 04" in printed and "notebook 05" in printed  # ln 65 = 4.174

    save_course_models(small(65), uniform(small(512)))  # untrained char model (about ln 65) against a uniform BPE one
    picked = course_models.course_model()
    assert picked.kind == "bpe" and "notebook 05" in picked.name and "BPE-512" in picked.name
    assert torch.equal(picked.model.transformer.wte.weight, torch.zeros(512, 16))
    mine = course_models.course_model(names=("notebook04-char-gpt",))  # notebook 06's "your own GPT"
    assert mine.kind == "char" and "your character-level GPT" in mine.name


def test_checkpoints_of_tokenizers_coursekit_does_not_have_are_skipped(empty_checkpoints, monkeypatch):
    from coursekit.checkpoints import save_checkpoint

    monkeypatch.setattr(course_models, "STAND_IN_STEPS", 5)
    save_checkpoint(small(65), "notebook04-char-gpt", tokenizer={"name": "char", "vocabulary": CHARACTERS[::-1]})
    save_checkpoint(small(512), "notebook05-bpe512-gpt", tokenizer={"name": "bpe-512", "sha256": "another one"})
    picked = course_models.course_model(verbose=False)
    assert "stand-in" in picked.name, "ids of another vocabulary would be nonsense to this tokenizer"
