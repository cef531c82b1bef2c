"""The reference GPT: shapes, causality, loss, weight tying, GPT-2 layout, KV-cache generation, input checks."""

import math

import pytest
import torch

from coursekit.gpt import GPT, GPTConfig, best_device




TINY = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16, dropout=0.0)


def tiny_model(seed=0, **changes):
    torch.manual_seed(seed)
    config = GPTConfig(**{**TINY.__dict__, **changes})
    return GPT(config).eval()


def random_tokens(batch, length, vocab=TINY.vocab_size, seed=1):
    return torch.randint(vocab, (batch, length), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("bias", [True, False])
def test_shapes(bias):
    model = tiny_model(bias=bias)
    idx = random_tokens(3, 5)
    logits, loss = model(idx)
    assert logits.shape == (3, 5, TINY.vocab_size)
    assert loss is None
    _, loss = model(idx, idx)
    assert loss.shape == ()


def test_future_tokens_never_change_past_logits():
    model = tiny_model()
    idx = random_tokens(2, TINY.block_size)
    logits, _ = model(idx)
    for t in range(TINY.block_size - 1):
        changed = idx.clone()
        changed[:, t + 1:] = (changed[:, t + 1:] + 1 + t) % TINY.vocab_size
        changed_logits, _ = model(changed)
        assert torch.allclose(logits[:, : t + 1], changed_logits[:, : t + 1], atol=1e-6), (
            f"logits at positions <= {t} changed when only later tokens changed: the attention is not causal")
        assert not torch.allclose(logits[:, t + 1:], changed_logits[:, t + 1:]), "later logits should change"


def test_loss_is_mean_negative_log_likelihood_of_targets():
    model = tiny_model()
    idx, targets = random_tokens(2, 6, seed=1), random_tokens(2, 6, seed=2)
    logits, loss = model(idx, targets)
    # log p = logit - logsumexp(logits), written out by hand instead of calling cross_entropy.
    log_normaliser = logits.exp().sum(dim=-1).log()
    picked = logits.gather(-1, targets[..., None]).squeeze(-1)
    assert loss.item() == pytest.approx((log_normaliser - picked).mean().item(), abs=1e-5)
    assert loss.item() == pytest.approx(math.log(TINY.vocab_size), abs=0.1), "a fresh model should be near uniform"


def test_lm_head_is_tied_to_token_embedding():
    model = tiny_model()
    assert model.lm_head.weight is model.transformer.wte.weight
    _, loss = model.train()(random_tokens(2, 4), random_tokens(2, 4, seed=3))
    loss.backward()
    assert model.transformer.wte.weight.grad is not None


def test_gpt2_small_has_gpt2s_parameter_count_and_init():
    with torch.device("meta"):  # shapes only, no memory or time spent on 124M numbers
        model = GPT(GPTConfig())
    assert model.num_parameters() == 124_439_808  # the published count of GPT-2 small (tied head counted once)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=100, block_size=16, n_layer=8, n_head=2, n_embd=64))
    assert model.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert model.transformer.h[0].mlp.c_proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(16), rel=0.1)


def test_logits_match_hugging_face_gpt2_with_copied_weights():
    transformers = pytest.importorskip("transformers")
    hf_config = transformers.GPT2Config(vocab_size=TINY.vocab_size, n_positions=TINY.block_size, n_embd=TINY.n_embd,
                                        n_layer=TINY.n_layer, n_head=TINY.n_head, resid_pdrop=0.0, embd_pdrop=0.0,
                                        attn_pdrop=0.0)
    torch.manual_seed(0)
    reference = transformers.GPT2LMHeadModel(hf_config).eval()
    model = tiny_model()
    ours = model.state_dict()
    for name, tensor in reference.state_dict().items():
        if name.endswith("attn.bias") or name.endswith("attn.masked_bias"):
            continue  # HF's causal-mask buffers, not parameters
        assert name in ours, f"{name} from GPT-2 has no parameter of the same name"
        conv1d = any(name.endswith(f"{layer}.weight") for layer in ("c_attn", "c_proj", "c_fc"))
        ours[name].copy_(tensor.t() if conv1d else tensor)  # GPT-2's Conv1D stores weights transposed
    idx = random_tokens(2, TINY.block_size)
    with torch.no_grad():
        expected = reference(idx).logits
    assert torch.allclose(model(idx)[0], expected, atol=1e-5)


def test_attention_weights_are_causal_distributions_and_change_nothing():
    model = tiny_model()
    idx = random_tokens(2, 6)
    logits, loss, attentions = model(idx, idx, return_attentions=True)
    fast_logits, fast_loss = model(idx, idx)
    assert torch.allclose(logits, fast_logits, atol=1e-5) and torch.allclose(loss, fast_loss, atol=1e-6)
    assert isinstance(attentions, tuple) and len(attentions) == TINY.n_layer
    for weights in attentions:
        assert weights.shape == (2, TINY.n_head, 6, 6)
        assert torch.allclose(weights.sum(dim=-1), torch.ones(2, TINY.n_head, 6))
        assert (weights.triu(diagonal=1) == 0).all(), "a query attends to a later position"


def test_cached_forward_gives_the_same_logits_as_a_full_forward():
    model = tiny_model()
    idx = random_tokens(2, TINY.block_size)
    full, _ = model(idx)
    cache = model.empty_kv_cache(batch_size=2)
    pieces = [model(idx[:, :3], kv_cache=cache)[0]] + [model(idx[:, t:t + 1], kv_cache=cache)[0] for t in range(3, 8)]
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)
    with pytest.raises(ValueError, match="KV cache already holds 8"):
        model(idx[:, :1], kv_cache=cache)


@pytest.mark.parametrize("batch, prompt_length", [(1, 1), (2, 3), (1, TINY.block_size)])
def test_greedy_generation_with_cache_equals_recomputation_past_block_size(batch, prompt_length):
    model = tiny_model(seed=4)
    prompt = random_tokens(batch, prompt_length)
    new_tokens = 3 * TINY.block_size  # the window slides many times
    cached = model.generate(prompt, new_tokens, temperature=0, use_cache=True)
    recomputed = model.generate(prompt, new_tokens, temperature=0, use_cache=False)
    assert cached.shape == (batch, prompt_length + new_tokens)
    assert torch.equal(cached[:, :prompt_length], prompt)
    assert torch.equal(cached, recomputed)
    # Greedy really is argmax of a full forward over the last block_size tokens.
    for t in range(prompt_length, cached.size(1)):
        context = cached[:, max(0, t - TINY.block_size):t]
        assert torch.equal(model(context)[0][:, -1].argmax(-1), cached[:, t])


def test_sampling_is_reproducible_with_a_generator():
    model = tiny_model()
    prompt = random_tokens(2, 2)
    runs = [model.generate(prompt, 20, top_k=5, top_p=0.9, generator=torch.Generator().manual_seed(7))
            for _ in range(2)]
    assert torch.equal(runs[0], runs[1])
    assert torch.equal(model.generate(prompt, 0), prompt)


@pytest.mark.parametrize("call, message", [
    (lambda m: m(torch.zeros(1, 4)), "dtype"),
    (lambda m: m(torch.zeros(4, dtype=torch.long)), "shape"),
    (lambda m: m(torch.zeros(1, 1, 4, dtype=torch.long)), "shape"),
    (lambda m: m(torch.zeros(1, TINY.block_size + 1, dtype=torch.long)), "block_size is 8"),
    (lambda m: m(torch.full((1, 3), TINY.vocab_size)), r"\[0, 11\)"),
    (lambda m: m(torch.zeros(1, 3, dtype=torch.long), torch.zeros(1, 4, dtype=torch.long)), "targets"),
    (lambda m: m.generate(torch.zeros(1, 2), 5), "dtype"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), -1), "max_new_tokens must be an integer >= 0"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 5, top_p=0.0), r"top_p .*\(0, 1\]"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 5, top_p=1.5), r"top_p .*\(0, 1\]"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 5, top_k=0), "top_k .*>= 1"),
    (lambda m: m.generate(torch.zeros(1, 2, dtype=torch.long), 5, temperature=-0.5), "temperature must be >= 0"),
])
def test_bad_input_raises_a_value_error_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call(tiny_model())


def test_config_must_split_channels_evenly_across_heads():
    with pytest.raises(ValueError, match="divisible by n_head"):
        GPT(GPTConfig(n_embd=10, n_head=3))


def test_best_device_is_usable():
    torch.zeros(1, device=best_device())
