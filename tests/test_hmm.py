"""The weather HMM: its sampler and forward algorithm against brute force, and a GPT that learns down to the optimum."""

import itertools

import pytest
import torch

from coursekit.gpt import GPT, GPTConfig
from coursekit.hmm import (entropy_rate, next_observation_probabilities, optimal_loss, optimal_window_losses, sample,
                           weather_hmm)
from coursekit.training import Trainer, TrainingConfig, train_val_split




HMM = weather_hmm()


def joint_probability(observations):
    """P(o_0..o_{L-1}) by summing over every hidden path: slow, obviously right, no forward algorithm."""
    A, E, start = HMM.transition.double(), HMM.emission.double(), HMM.start.double()
    total = 0.0
    for path in itertools.product(range(len(HMM.states)), repeat=len(observations)):
        p = start[path[0]] * E[path[0], observations[0]]
        for t in range(1, len(observations)):
            p = p * A[path[t - 1], path[t]] * E[path[t], observations[t]]
        total += p.item()
    return total


def test_matrices_are_distributions_and_the_start_is_stationary():
    assert torch.allclose(HMM.transition.sum(1), torch.ones(3)) and torch.allclose(HMM.emission.sum(1), torch.ones(3))
    assert torch.allclose(HMM.start @ HMM.transition, HMM.start, atol=1e-6)
    assert (HMM.start > 0).all()


def test_sampled_frequencies_match_the_matrices():
    states, observations = sample(HMM, 400, 200, torch.Generator().manual_seed(0))
    transitions = torch.zeros(3, 3)
    transitions.index_put_((states[:, :-1].flatten(), states[:, 1:].flatten()), torch.ones(1), accumulate=True)
    assert torch.allclose(transitions / transitions.sum(1, keepdim=True), HMM.transition, atol=0.01)
    emissions = torch.zeros(3, 3)
    emissions.index_put_((states.flatten(), observations.flatten()), torch.ones(1), accumulate=True)
    assert torch.allclose(emissions / emissions.sum(1, keepdim=True), HMM.emission, atol=0.01)
    first_states = torch.bincount(states[:, 0], minlength=3) / 400
    assert torch.allclose(first_states, HMM.start, atol=0.06)


def test_forward_algorithm_matches_brute_force_conditionals():
    sequence = [0, 2, 2, 1, 0]
    predicted = next_observation_probabilities(HMM, torch.tensor([sequence]))[0]
    for t in range(len(sequence)):
        for o in range(3):
            conditional = joint_probability(sequence[:t] + [o]) / (joint_probability(sequence[:t]) if t else 1.0)
            assert predicted[t, o].item() == pytest.approx(conditional, rel=1e-5), f"P(o_{t}={o} | history)"


def test_optimal_loss_matches_exact_enumeration_for_a_short_block():
    block_size = 3
    # The optimal loss averaged over targets o_1..o_3 is (H(O_0..O_3) - H(O_0)) / 3: chain rule of entropy.
    sequences = list(itertools.product(range(3), repeat=block_size + 1))
    joint = torch.tensor([joint_probability(list(s)) for s in sequences], dtype=torch.double)
    first = torch.tensor([joint_probability([o]) for o in range(3)], dtype=torch.double)
    exact = ((-joint * joint.log()).sum() - (-first * first.log()).sum()).item() / block_size
    estimate, standard_error = optimal_loss(HMM, block_size, n_sequences=20_000, seed=3)
    assert abs(estimate - exact) < 4 * standard_error
    assert standard_error < 0.005


def test_more_context_never_hurts_the_optimal_predictor():
    unigram = -(HMM.start @ HMM.emission).log() @ (HMM.start @ HMM.emission)
    one, _ = optimal_loss(HMM, 1, n_sequences=5000)
    sixteen, _ = optimal_loss(HMM, 16, n_sequences=5000)
    rate = entropy_rate(HMM, n_sequences=500)
    assert unigram.item() > one > sixteen > rate - 0.01
    assert unigram.item() - rate > 0.15, "the HMM should give context something to gain"


def test_gpt_nano_approaches_the_optimum_but_never_beats_it():
    block_size = 32
    _, streams = sample(HMM, 100, 2000, torch.Generator().manual_seed(0))
    train, val = train_val_split(streams.flatten())  # 100 boundaries between sequences: 1.6% of windows
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=3, block_size=block_size, n_layer=3, n_head=3, n_embd=48))
    config = TrainingConfig(max_steps=300, batch_size=32, learning_rate=3e-3, min_learning_rate=3e-4,
                            warmup_steps=20, weight_decay=0.0, eval_interval=300, eval_batches=2)
    Trainer(model, train, val, config, progress=False).train()
    # Score the GPT and the Bayes-optimal predictor on the very same fresh windows: a paired comparison.
    _, windows = sample(HMM, 4000, block_size + 1, torch.Generator().manual_seed(1))
    optimum = optimal_window_losses(HMM, windows).mean().item()
    with torch.no_grad():
        _, gpt_loss = model.eval()(windows[:, :-1], windows[:, 1:])
    gap = gpt_loss.item() - optimum
    assert gap > -0.005, f"the GPT beat the Bayes-optimal predictor by {-gap:.4f} nats: the optimum is wrong"
    assert gap < 0.03, f"after training the GPT is still {gap:.4f} nats above the optimum {optimum:.4f}"
