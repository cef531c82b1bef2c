"""Red team 3's findings against the landed grader (/work/redteam3/FINDINGS.md), one test each: the route it
found, rebuilt here, must now earn nothing, while the reference still earns everything."""

import torch
import torch.nn as nn

from coursekit import gpt
from coursekit.checks import CHECKS

SEED = 977  # a grading run's seed (not the public one)


def fraction(check_name, answer):
    check = CHECKS[check_name]
    return check.fraction(check.judge(check.probe_all((answer,), SEED), SEED))


class ZeroMLP(nn.Module):
    """F1: every Linear weight zeroed in __init__, so the judge's replay of the found weights is just the bias."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)
        for layer in (self.c_fc, self.c_proj):
            nn.init.zeros_(layer.weight)

    def forward(self, x):
        return self.dropout(self.c_proj.bias.expand_as(x).clone())


class ZeroBlock(nn.Module):
    """F1: no LayerNorm and a parallel wiring, hidden by zeroing every matrix."""

    def __init__(self, config):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(config.n_embd), nn.LayerNorm(config.n_embd)
        self.attn, self.mlp = gpt.CausalSelfAttention(config), ZeroMLP(config)
        with torch.no_grad():
            for parameter in self.parameters():
                if parameter.dim() == 2:
                    parameter.zero_()

    def forward(self, x):
        attended, _ = self.attn(x)
        return x + attended + self.mlp(x)


def test_f1_zeroed_weights_no_longer_pass_the_mlp_and_block_checks():
    assert fraction("check_mlp", gpt.MLP) == 1.0 and fraction("check_block", gpt.Block) == 1.0
    assert fraction("check_mlp", ZeroMLP) < 0.5
    assert fraction("check_block", ZeroBlock) < 0.5
