"""A task whose best possible loss is known: predicting the observations of a weather hidden Markov model.

The weather (sunny, cloudy, rainy) changes from day to day with fixed transition probabilities, and nobody sees it:
we only see what someone did each day (walk, shop, clean), which depends on the weather through emission
probabilities. A language model trained on these activity sequences can at best learn the HMM itself, so no model
can beat the loss of the predictor that knows the HMM and updates its belief about the weather with the forward
algorithm. That loss is the floor a GPT's curve should approach, and never go below.

The chain starts from its stationary distribution, so the process looks the same at every position: a window cut
anywhere from one long sampled stream is distributed exactly like a fresh sequence, and the usual get_batch applies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass
class HiddenMarkovModel:
    states: list[str]
    observations: list[str]
    transition: torch.Tensor  # (S, S): row i is P(next state | state i)
    emission: torch.Tensor  # (S, O): row i is P(observation | state i)

    @property
    def start(self) -> torch.Tensor:
        """The stationary distribution pi with pi @ transition == pi: the left eigenvector for eigenvalue 1."""
        eigenvalues, eigenvectors = torch.linalg.eig(self.transition.double().T)
        vector = eigenvectors[:, torch.argmin((eigenvalues - 1).abs())].real
        return (vector / vector.sum()).to(self.transition.dtype)  # (S,)


def weather_hmm() -> HiddenMarkovModel:
    """Sticky weather (it tends to stay for about 10 to 20 days), and activities that hint at it without giving it
    away: seeing one activity says little, a run of them says a lot, so a longer context lowers the loss."""
    return HiddenMarkovModel(
        states=["sunny", "cloudy", "rainy"],
        observations=["walk", "shop", "clean"],
        transition=torch.tensor([[0.95, 0.04, 0.01],
                                 [0.05, 0.90, 0.05],
                                 [0.02, 0.08, 0.90]]),
        emission=torch.tensor([[0.80, 0.15, 0.05],
                               [0.15, 0.70, 0.15],
                               [0.05, 0.15, 0.80]]),
    )


def sample(hmm: HiddenMarkovModel, n_sequences: int, length: int, generator: torch.Generator | None = None):
    """Sample hidden states and observations, both (n_sequences, length) tensors of indices.

    >>> states, observations = sample(weather_hmm(), 2, 5, torch.Generator().manual_seed(0))
    >>> observations.shape, observations.dtype
    (torch.Size([2, 5]), torch.int64)
    """
    states = torch.empty(n_sequences, length, dtype=torch.long)
    observations = torch.empty(n_sequences, length, dtype=torch.long)
    state_probs = hmm.start.expand(n_sequences, -1)  # (N, S)
    for t in range(length):
        states[:, t] = torch.multinomial(state_probs, 1, generator=generator).squeeze(1)
        observations[:, t] = torch.multinomial(hmm.emission[states[:, t]], 1, generator=generator).squeeze(1)
        state_probs = hmm.transition[states[:, t]]  # (N, S): where each chain goes next
    return states, observations


def next_observation_probabilities(hmm: HiddenMarkovModel, observations: torch.Tensor) -> torch.Tensor:
    """Forward algorithm: P(o_t | o_0 .. o_{t-1}) for every position t, shape (N, L, O) for observations (N, L).

    Keeps the belief P(state_t | o_0 .. o_{t-1}), normalised at every step so long sequences do not underflow.

    >>> hmm = weather_hmm()
    >>> probs = next_observation_probabilities(hmm, torch.tensor([[0, 0]]))
    >>> bool(torch.allclose(probs[0, 0], hmm.start @ hmm.emission))  # nothing seen yet: the marginal
    True
    """
    emission = hmm.emission.double()
    belief = hmm.start.double().expand(observations.size(0), -1)  # (N, S)
    predictions = []
    for t in range(observations.size(1)):
        predictions.append(belief @ emission)  # (N, O)
        posterior = belief * emission[:, observations[:, t]].T  # Bayes: (N, S)
        belief = (posterior / posterior.sum(dim=1, keepdim=True)) @ hmm.transition.double()  # one day later
    return torch.stack(predictions, dim=1).float()  # (N, L, O)


def optimal_window_losses(hmm: HiddenMarkovModel, windows: torch.Tensor) -> torch.Tensor:
    """Loss of the predictor that knows the HMM on each window (N, T + 1) of observations -> (N,) mean nats.

    Scored exactly like a GPT on the same windows: inputs o_0..o_{T-1}, targets o_1..o_T, so position t predicts
    o_{t+1} from t + 1 observations (the first observation of a window is never a target).
    """
    probs = next_observation_probabilities(hmm, windows)[:, 1:]  # (N, T, O): predictions of o_1..o_T
    return -probs.gather(2, windows[:, 1:, None]).squeeze(2).double().log().mean(dim=1)  # (N,)


def optimal_loss(hmm: HiddenMarkovModel, block_size: int, n_sequences: int = 20_000,
                 seed: int = 0) -> tuple[float, float]:
    """The Bayes-optimal next-token cross-entropy (nats) of a model trained on windows of block_size tokens.

    Each prediction is exact (forward algorithm); the average over all possible windows is estimated from
    n_sequences sampled ones. Returns (mean loss, its standard error).
    """
    _, windows = sample(hmm, n_sequences, block_size + 1, torch.Generator().manual_seed(seed))
    losses = optimal_window_losses(hmm, windows)  # (N,)
    return losses.mean().item(), losses.std().item() / math.sqrt(n_sequences)


def entropy_rate(hmm: HiddenMarkovModel, n_sequences: int = 2000, length: int = 300, burn_in: int = 200,
                 seed: int = 0) -> float:
    """The loss per token of the optimal predictor with unlimited context: the limit of optimal_loss as the block
    grows. An HMM has no closed form for it; this averages exact predictions at positions burn_in..length-1, by
    which the belief has forgotten where the sequences started."""
    _, observations = sample(hmm, n_sequences, length, torch.Generator().manual_seed(seed))
    probs = next_observation_probabilities(hmm, observations)[:, burn_in:]  # (N, L - burn_in, O)
    return -probs.gather(2, observations[:, burn_in:, None]).double().log().mean().item()
