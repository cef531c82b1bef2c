"""Attention in bertviz's layout: from coursekit's GPT (the same weights as transformers' eager attention) and from
the offline BERT-like encoder; bertviz's returned HTML carries the data for every layer and head."""

import numpy as np
import pytest
import torch

from coursekit import attention_views, gpt2
from coursekit.gpt import GPT, GPTConfig
from coursekit.training import CharTokenizer

transformers = pytest.importorskip("transformers")
bertviz = pytest.importorskip("bertviz")

TEXT = "To be, or not\nto be"
TOKENIZER = CharTokenizer("To be, or not\nto be: that is the question.")


@pytest.fixture(scope="module")
def small_gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=TOKENIZER.vocab_size, block_size=32, n_layer=3, n_head=2, n_embd=16)).eval()


def test_gpt_attentions_have_the_layout_bertviz_expects(small_gpt):
    attentions, tokens = attention_views.gpt_attentions(small_gpt, TOKENIZER, TEXT)
    assert isinstance(attentions, tuple) and len(attentions) == 3
    assert all(layer.shape == (1, 2, len(TEXT), len(TEXT)) for layer in attentions)
    assert tokens == [attention_views.readable(char) for char in TEXT] and "↵" in tokens
    for layer in attentions:
        assert torch.allclose(layer.sum(-1), torch.ones(1, 2, len(TEXT)))  # each row: where one token looks
        assert layer.triu(diagonal=1).abs().max() == 0  # causal: nothing attends to later tokens


def test_a_text_longer_than_the_context_is_refused_clearly(small_gpt):
    with pytest.raises(ValueError, match="at most 32"):
        attention_views.gpt_attentions(small_gpt, TOKENIZER, "to be " * 10)


def test_gpt_attentions_equal_transformers_eager_attentions(tmp_path):
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, n_positions=32, vocab_size=TOKENIZER.vocab_size,
                                     bos_token_id=0, eos_token_id=0, initializer_range=0.1)
    reference = transformers.GPT2LMHeadModel(config).eval()
    reference.save_pretrained(tmp_path)
    ids = torch.tensor([TOKENIZER.encode(TEXT)])
    eager = transformers.GPT2LMHeadModel.from_pretrained(tmp_path, attn_implementation="eager").eval()
    with torch.no_grad():
        expected = eager(ids, output_attentions=True).attentions
    attentions, _ = attention_views.gpt_attentions(gpt2.load_gpt2(tmp_path), TOKENIZER, TEXT)
    assert len(attentions) == len(expected)
    for ours, theirs in zip(attentions, expected):
        assert ours.shape == theirs.shape and torch.allclose(ours, theirs, atol=1e-6)


@pytest.mark.parametrize("view", ["head_view", "model_view"])
def test_returned_html_holds_every_layer_and_head(small_gpt, view, tmp_path):
    attentions, tokens = attention_views.gpt_attentions(small_gpt, TOKENIZER, TEXT)
    html = getattr(bertviz, view)(attentions, tokens, html_action="return")
    shown = attention_views.attention_in_view(html)
    data = np.array(shown[0]["attn"])
    assert data.shape == (3, 2, len(TEXT), len(TEXT))  # layers, heads, queries, keys
    assert np.allclose(data, torch.cat(attentions).numpy(), atol=1e-6)
    page = attention_views.save_view(html, tmp_path / "views" / f"{view}.html", title="GPT attention")
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and "require.min.js" in text and "<title>GPT attention</title>" in text
    assert np.array(attention_views.attention_in_view(text)[0]["attn"]).shape == data.shape


def test_offline_encoder_is_the_packaged_one_and_returns_every_layer(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    encoder = attention_views.load_encoder("coursekit-test/not-a-cached-model")
    assert "MiniLM" in encoder.name
    attentions, tokens = attention_views.encoder_attentions(encoder, "The cat sat on the mat.")
    layers, heads = encoder.model.config.num_hidden_layers, encoder.model.config.num_attention_heads
    assert (layers, heads) == (6, 12)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]" and "cat" in tokens
    assert len(attentions) == layers and all(layer.shape == (1, heads, len(tokens), len(tokens))
                                             for layer in attentions)
    html = bertviz.model_view(attentions, tokens, html_action="return")
    assert np.array(attention_views.attention_in_view(html)[0]["attn"]).shape == (layers, heads, len(tokens),
                                                                                  len(tokens))
