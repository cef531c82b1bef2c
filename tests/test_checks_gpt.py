"""The notebook 04 checks: each passes the notebook's solution and valid alternatives, and names plausible mistakes."""

import functools
import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from check_family import answer_like_code, failures, mistake_tests, named_under_secret_seeds
import coursekit.checks as checks
import coursekit.gpt
from coursekit.attention import AttentionConfig, CausalSelfAttention
from coursekit.grading import references

# ---------------------------------------------------------------- the notebook's solution


def attention(config):
    return CausalSelfAttention(AttentionConfig(config.n_embd, config.n_head, config.block_size, config.dropout,
                                               config.dropout))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.attn = attention(config)
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def init_weights(module):
    """The notebook's given initialisation: N(0, 0.02^2) weights, zero biases."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class GPT(nn.Module):
    def __init__(self, config, block=Block):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([block(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.transformer.wte.weight
        self.apply(init_weights)

    def embed(self, idx):
        return self.transformer.wte(idx) + self.transformer.wpe(torch.arange(idx.size(1)))

    def forward(self, idx, targets=None):
        x = self.transformer.drop(self.embed(idx))
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss

    def next_logits(self, logits, temperature, top_k, top_p):
        logits = logits / temperature
        if top_k is not None:
            kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if top_p is not None:
            sorted_logits, order = torch.sort(logits, descending=True)
            probs = F.softmax(sorted_logits, dim=-1)
            drop = probs.cumsum(-1) - probs >= top_p
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        return logits

    def crop(self, idx):
        return idx[:, -self.config.block_size:]

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        for _ in range(max_new_tokens):
            logits, _ = self(self.crop(idx))
            logits = self.next_logits(logits[:, -1, :], temperature, top_k, top_p)
            next_token = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, next_token], dim=1)
        return idx


def get_batch(data, batch_size, block_size, generator=None):
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    x = torch.stack([data[i:i + block_size] for i in starts])
    y = torch.stack([data[i + 1:i + block_size + 1] for i in starts])
    return x, y


def make_train(zero_grad=True, step=True, clip=True, evaluate=True, eval_mode=True, no_grad=True, back_to_train=True,
               optimizer=torch.optim.AdamW, val_for_training=False, item=True, batches=None, eval_sizes_swapped=False):
    batches = batches or get_batch

    def train(model, train_data, val_data, max_steps=100, batch_size=16, learning_rate=1e-3, eval_interval=50,
              eval_batches=10, grad_clip=1.0, seed=0):
        generator = torch.Generator().manual_seed(seed)
        opt = optimizer(model.parameters(), lr=learning_rate)
        block_size = model.config.block_size
        history = {"loss": [], "eval_step": [], "val_loss": []}

        def run_evaluation(at):
            if eval_mode:
                model.eval()
            with torch.no_grad() if no_grad else torch.enable_grad():
                sizes = (block_size, batch_size) if eval_sizes_swapped else (batch_size, block_size)
                losses = [model(*batches(val_data, *sizes, generator))[1].item() for _ in range(eval_batches)]
            if back_to_train:
                model.train()
            history["eval_step"].append(at)
            history["val_loss"].append(sum(losses) / len(losses))

        model.train()
        for number in range(max_steps):
            if evaluate and number % eval_interval == 0:
                run_evaluation(number)
            x, y = batches(val_data if val_for_training else train_data, batch_size, block_size, generator)
            _, loss = model(x, y)
            if zero_grad:
                opt.zero_grad()
            loss.backward()
            if clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if step:
                opt.step()
            history["loss"].append(loss.item() if item else loss)
        if evaluate:
            run_evaluation(max_steps)
        return history
    return train


train = make_train()

# ---------------------------------------------------------------- valid alternatives


class SequentialMLP(nn.Module):
    """One nn.Sequential, tanh-approximated GELU, dropout registered first."""

    def __init__(self, config):
        super().__init__()
        self.drop = nn.Dropout(config.dropout)
        self.net = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd), nn.GELU(approximate="tanh"),
                                 nn.Linear(4 * config.n_embd, config.n_embd))

    def forward(self, x):
        return self.drop(self.net(x))


class FunctionalMLP(nn.Module):
    """F.gelu (tanh) and F.dropout with training=self.training."""

    def __init__(self, config):
        super().__init__()
        self.up = nn.Linear(config.n_embd, 4 * config.n_embd)
        self.down = nn.Linear(4 * config.n_embd, config.n_embd)
        self.p = config.dropout

    def forward(self, x):
        return F.dropout(self.down(F.gelu(self.up(x), approximate="tanh")), self.p, training=self.training)


class InlineBlock(nn.Module):
    """The MLP's layers inline, norms registered in the other order, intermediate names."""

    def __init__(self, config):
        super().__init__()
        self.norm_mlp = nn.LayerNorm(config.n_embd)
        self.norm_attention = nn.LayerNorm(config.n_embd)
        self.attention = attention(config)
        self.feed_forward = SequentialMLP(config)

    def forward(self, x):
        attended = self.attention(self.norm_attention(x))
        x = attended + x
        return x + self.feed_forward(self.norm_mlp(x))


class ListGPT(nn.Module):
    """Plain attribute names, nn.Sequential of blocks, the head created first and tied the other way round."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.tokens = nn.Embedding(config.vocab_size, config.n_embd)
        self.tokens.weight = self.head.weight
        self.positions = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.Sequential(*[InlineBlock(config) for _ in range(config.n_layer)])
        self.norm = nn.LayerNorm(config.n_embd)
        self.apply(init_weights)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.drop(self.tokens(idx) + self.positions.weight[:T])
        logits = self.head(self.norm(self.blocks(x)))
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        """Top-p by sorting probabilities and sampling among the sorted ones, then mapping back."""
        for _ in range(max_new_tokens):
            context = idx if idx.size(1) <= self.config.block_size else idx[:, idx.size(1) - self.config.block_size:]
            logits = self(context)[0][:, -1] / temperature
            if top_k is not None:
                values, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                logits[logits < values[:, -1:]] = -math.inf
            probs = logits.softmax(-1)
            if top_p is not None:
                sorted_probs, order = probs.sort(dim=-1, descending=True)
                keep = sorted_probs.cumsum(-1) - sorted_probs < top_p
                sorted_probs = sorted_probs * keep
                choice = torch.multinomial(sorted_probs, 1, generator=generator)
                next_token = order.gather(-1, choice)
            else:
                next_token = torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, next_token], dim=1)
        return idx


def unfold_batches(data, batch_size, block_size, generator=None):
    """One window of block_size + 1 tokens per row, split into inputs and targets."""
    starts = torch.randint(0, len(data) - block_size, (batch_size,), generator=generator)
    windows = data[starts[:, None] + torch.arange(block_size + 1)]
    return windows[:, :-1], windows[:, 1:]


def train_with_set_to_none(model, train_data, val_data, max_steps=100, batch_size=16, learning_rate=1e-3,
                           eval_interval=50, eval_batches=10, grad_clip=1.0, seed=0):
    """zero_grad(set_to_none=True) first, an evaluation helper with its own generator, train loss evaluated too."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": [], "eval_step": [], "val_loss": [], "train_loss": []}

    @torch.no_grad()
    def estimate(data):
        model.eval()
        g = torch.Generator().manual_seed(1)
        out = sum(model(*unfold_batches(data, batch_size, model.config.block_size, g))[1].item()
                  for _ in range(eval_batches)) / eval_batches
        model.train()
        return out

    for step in range(max_steps + 1):
        if step % eval_interval == 0 or step == max_steps:
            history["eval_step"].append(step)
            history["train_loss"].append(estimate(train_data))
            history["val_loss"].append(estimate(val_data))
        if step == max_steps:
            break
        optimizer.zero_grad(set_to_none=True)
        _, loss = model(*unfold_batches(train_data, batch_size, model.config.block_size, generator))
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
        optimizer.step()
        history["loss"].append(float(loss.detach()))
    return history


# ---------------------------------------------------------------- valid implementations pass


@pytest.mark.parametrize("mlp", [MLP, SequentialMLP, FunctionalMLP])
def test_mlp_accepts_valid_implementations(mlp):
    checks.check_mlp(mlp)


@pytest.mark.parametrize("block", [Block, InlineBlock])
def test_block_accepts_valid_implementations(block):
    checks.check_block(block)


@pytest.mark.parametrize("gpt", [GPT, ListGPT])
def test_gpt_checks_accept_valid_implementations(gpt):
    for check in (checks.check_gpt_constructor, checks.check_forward, checks.check_generate):
        check(gpt)


@pytest.mark.parametrize("batches, loop", [(get_batch, train), (unfold_batches, train_with_set_to_none),
                                           (unfold_batches, make_train(batches=unfold_batches))])
def test_training_loop_accepts_valid_implementations(batches, loop):
    checks.check_training_loop(batches, loop)


# ---------------------------------------------------------------- mlp mistakes


def mlp_with(width=4, activation=lambda: nn.GELU(approximate="tanh"), after=False, dropout_always=False):
    class Buggy(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, width * config.n_embd)
            self.act = activation()
            self.c_proj = nn.Linear(width * config.n_embd, config.n_embd)
            self.p = config.dropout

        def forward(self, x):
            out = self.c_proj(self.act(self.c_fc(x)))
            out = self.act(out) if after else out
            return F.dropout(out, self.p) if dropout_always else F.dropout(out, self.p, self.training)
    return Buggy


class NoDropoutMLP(MLP):
    def forward(self, x):
        return self.c_proj(self.gelu(self.c_fc(x)))


MLP_BUGS = {
    "4x expansion": mlp_with(width=2),
    "ReLU": mlp_with(activation=nn.ReLU),
    "exact GELU, nn.GELU\\(\\); use nn.GELU\\(approximate=\"tanh\"\\)": mlp_with(activation=nn.GELU),
    "no activation": mlp_with(activation=nn.Identity),
    "GELU after the second layer": mlp_with(after=True),
    "dropout is still active": mlp_with(dropout_always=True),
    "training mode gives the same output as eval mode": NoDropoutMLP,
}


# ---------------------------------------------------------------- block mistakes


def block_with(wiring):
    class Buggy(Block):
        def forward(self, x):
            return wiring(self, x)
    return Buggy


BLOCK_BUGS = {
    "post-LN": block_with(lambda s, x: s.ln_2((h := s.ln_1(x + s.attn(x))) + s.mlp(h))),
    "no residual connection around the attention": block_with(
        lambda s, x: (h := s.attn(s.ln_1(x))) + s.mlp(s.ln_2(h))),
    "no residual connection around the MLP": block_with(lambda s, x: s.mlp(s.ln_2(x + s.attn(s.ln_1(x))))),
    "there are no residual connections": block_with(lambda s, x: s.mlp(s.ln_2(s.attn(s.ln_1(x))))),
    "residual connection starts after the LayerNorm": block_with(
        lambda s, x: (g := s.ln_2((h := s.ln_1(x)) + s.attn(h))) + s.mlp(g)),
    "MLP runs before the attention": block_with(lambda s, x: (h := x + s.mlp(s.ln_1(x))) + s.attn(s.ln_2(h))),
    "same LayerNorm": block_with(lambda s, x: (h := x + s.attn(s.ln_1(x))) + s.mlp(s.ln_1(h))),
    "both read the block's input": block_with(lambda s, x: x + s.attn(s.ln_1(x)) + s.mlp(s.ln_2(x))),
    "LayerNorms are not used": block_with(lambda s, x: (h := x + s.attn(x)) + s.mlp(h)),
}


class NoDropoutBlock(Block):
    def __init__(self, config):
        super().__init__(config)
        self.attn = CausalSelfAttention(AttentionConfig(config.n_embd, config.n_head, config.block_size))
        self.mlp = NoDropoutMLP(config)


class HardCodedBlock(Block):
    def __init__(self, config):
        super().__init__(config)
        self.ln_1, self.ln_2 = nn.LayerNorm(12), nn.LayerNorm(12)


class StreamDropoutBlock(Block):
    """Dropout on the residual stream itself, x = drop(x + attn(ln_1(x))), as well as inside the sub-layers."""

    def __init__(self, config):
        super().__init__(config)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        x = self.drop(x + self.attn(self.ln_1(x)))
        return self.drop(x + self.mlp(self.ln_2(x)))


class WeightlessNormBlock(Block):
    def __init__(self, config):
        super().__init__(config)
        self.ln_1 = nn.LayerNorm(config.n_embd, elementwise_affine=False)
        self.ln_2 = nn.LayerNorm(config.n_embd, elementwise_affine=False)


BLOCK_BUGS["do not all use dropout"] = NoDropoutBlock
BLOCK_BUGS["nothing may be hard-coded"] = HardCodedBlock
BLOCK_BUGS["dropout is applied to the residual stream itself"] = StreamDropoutBlock
BLOCK_BUGS["no learned gain and bias \\(elementwise_affine=False\\)"] = WeightlessNormBlock


# ---------------------------------------------------------------- gpt_constructor mistakes


class UntiedGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)


class NoPositionsGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        del self.transformer["wpe"]


class WrongHeadGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.n_embd, config.n_embd, bias=False)


class TwoBlocksGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer["h"] = nn.ModuleList([Block(config) for _ in range(2)])


class NoFinalNormGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer["ln_f"] = nn.Identity()


class VocabPositionsGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer["wpe"] = nn.Embedding(config.vocab_size, config.n_embd)


class HeadBiasGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size)
        self.lm_head.weight = self.transformer.wte.weight


class NoEmbeddingDropoutModuleGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        del self.transformer["drop"]


class FixedEmbeddingDropoutGPT(GPT):
    def __init__(self, config):
        super().__init__(config)
        self.transformer.drop = nn.Dropout(0.1)


CONSTRUCTOR_BUGS = {
    "no nn.Dropout outside its Blocks": NoEmbeddingDropoutModuleGPT,
    "the embedding dropout has p = 0.1": FixedEmbeddingDropoutGPT,
    "not tied": UntiedGPT,
    "no position embeddings": NoPositionsGPT,
    "no LM head": WrongHeadGPT,
    "expected n_layer=3 Blocks": TwoBlocksGPT,
    "final LayerNorm is missing": NoFinalNormGPT,
    "one row per position": VocabPositionsGPT,
    "has a bias": HeadBiasGPT,
}


# ---------------------------------------------------------------- forward mistakes


def gpt_with(embed=None, head=None, loss=None):
    class Buggy(GPT):
        def embed(self, idx):
            return embed(self, idx) if embed else super().embed(idx)

        def forward(self, idx, targets=None):
            x = self.transformer.drop(self.embed(idx))
            for block in self.transformer.h:
                x = block(x)
            logits = head(self, x) if head else self.lm_head(self.transformer.ln_f(x))
            if loss:
                return loss(logits, targets)
            return logits, None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)),
                                                                          targets.reshape(-1))
    return Buggy


def forward_with_blocks(run):
    """A GPT whose forward runs its Blocks as run(self, x) says (the rest as the reference)."""
    class Buggy(GPT):
        def forward(self, idx, targets=None):
            logits = self.lm_head(self.transformer.ln_f(run(self, self.transformer.drop(self.embed(idx)))))
            return logits, None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
    return Buggy


def logits_before_blocks(self, x):
    h = x
    for block in self.transformer.h:
        h = block(h)  # run, but the result is dropped
    return x


FORWARD_BUGS = {
    "forward never runs the Blocks": forward_with_blocks(lambda self, x: x),
    "the logits come from the embeddings": forward_with_blocks(logits_before_blocks),
    "the previous Block's output": forward_with_blocks(
        lambda self, x: x + sum(block(x) - x for block in self.transformer.h)),
    "ran the Blocks \\[1, 0\\]": forward_with_blocks(
        lambda self, x: functools.reduce(lambda h, block: block(h), reversed(self.transformer.h), x)),
    "position embeddings are not added": gpt_with(embed=lambda s, idx: s.transformer.wte(idx)),
    "not the token ids": gpt_with(embed=lambda s, idx: s.transformer.wte(idx) + s.transformer.wpe(idx)),
    "positions start at 1": gpt_with(
        embed=lambda s, idx: s.transformer.wte(idx) + s.transformer.wpe(torch.arange(1, idx.size(1) + 1))),
    "final LayerNorm": gpt_with(head=lambda s, x: s.lm_head(x)),
    "returns probabilities": gpt_with(head=lambda s, x: s.lm_head(s.transformer.ln_f(x)).softmax(-1)),
    "flatten": gpt_with(loss=lambda logits, targets: (
        logits, None if targets is None else F.cross_entropy(logits, targets))),
    "should return \\(logits, None\\)": gpt_with(loss=lambda logits, targets: (
        logits, F.cross_entropy(logits.flatten(0, 1), (targets if targets is not None else
                                                       logits.argmax(-1)).flatten()))),
    "shifts the targets again": gpt_with(loss=lambda logits, targets: (logits, None if targets is None else
                                         F.cross_entropy(logits[:, :-1].flatten(0, 1), targets[:, 1:].flatten()))),
    "sum over positions": gpt_with(loss=lambda logits, targets: (logits, None if targets is None else
                                   F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum"))),
    "should return a pair": gpt_with(loss=lambda logits, targets: logits),
    "which .view\\(-1\\) cannot flatten; use targets.reshape\\(-1\\)": gpt_with(loss=lambda logits, targets: (
        logits, None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1)))),
}


# ---------------------------------------------------------------- generate mistakes


def gpt_generating(crop=None, next_logits=None, position=-1, sample=None):
    class Buggy(GPT):
        def crop(self, idx):
            return crop(self, idx) if crop else super().crop(idx)

        def next_logits(self, logits, temperature, top_k, top_p):
            if next_logits:
                return next_logits(logits, temperature, top_k, top_p)
            return super().next_logits(logits, temperature, top_k, top_p)

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
            for _ in range(max_new_tokens):
                logits, _ = self(self.crop(idx))
                logits = self.next_logits(logits[:, position, :], temperature, top_k, top_p)
                if sample:
                    next_token = sample(logits)
                else:
                    next_token = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
                idx = torch.cat([idx, next_token], dim=1)
            return idx
    return Buggy


def keep_top(logits, k):
    kth = torch.topk(logits, k).values[:, [-1]]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_k_after_softmax(logits, temperature, top_k, top_p):
    logits = logits / temperature
    if top_k is not None:
        probs = logits.softmax(-1)
        return keep_top(probs, top_k)  # probabilities with -inf, softmaxed again by generate
    return logits


def top_k_filled_with_zero(logits, k):
    kth = torch.topk(logits, k).values[:, [-1]]
    return logits.masked_fill(logits < kth, 0.0)


def nucleus_not_mapped_back(logits, temperature, top_k, top_p):
    """The nucleus mask built on sorted probabilities and applied to the logits as they are (no scatter)."""
    logits = GPT.next_logits(None, logits, temperature, top_k, None)
    if top_p is not None:
        probs = logits.softmax(-1).sort(descending=True).values
        logits = logits.masked_fill(probs.cumsum(-1) - probs >= top_p, float("-inf"))
    return logits


def sample_sorted_position(logits):
    """Samples among the sorted probabilities and returns the position in that order, not the token id."""
    sorted_probs = F.softmax(logits, dim=-1).sort(descending=True).values
    return torch.multinomial(sorted_probs, 1, generator=torch.Generator().manual_seed(0))


def nucleus_without_crossing(logits, temperature, top_k, top_p):
    logits = GPT.next_logits(None, logits, temperature, top_k, None)
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        drop = sorted_logits.softmax(-1).cumsum(-1) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def top_p_before_top_k(logits, temperature, top_k, top_p):
    return GPT.next_logits(None, GPT.next_logits(None, logits, temperature, None, top_p), 1.0, top_k, None)


GENERATE_BUGS = {
    "top-p is applied before top-k": gpt_generating(next_logits=top_p_before_top_k),
    "more than block_size": gpt_generating(crop=lambda s, idx: idx),
    "cropped to the first block_size": gpt_generating(crop=lambda s, idx: idx[:, :s.config.block_size]),
    "logits of the first position": gpt_generating(position=0),
    "temperature is ignored": gpt_generating(next_logits=lambda logits, t, k, p: GPT.next_logits(None, logits, 1.0, k, p)),
    "multiplied by the temperature": gpt_generating(
        next_logits=lambda logits, t, k, p: GPT.next_logits(None, logits * t * t, t, k, p)),
    "always picks the most likely": gpt_generating(sample=lambda logits: logits.argmax(-1, keepdim=True)),
    "top_k is ignored": gpt_generating(next_logits=lambda logits, t, k, p: GPT.next_logits(None, logits, t, None, p)),
    "keeps k \\+ 1 tokens": gpt_generating(next_logits=lambda logits, t, k, p: (
        keep_top(logits / t, k + 1) if k is not None and k > 1 else GPT.next_logits(None, logits, t, k, p))),
    "softmax again": gpt_generating(next_logits=top_k_after_softmax),
    "top_p is ignored": gpt_generating(next_logits=lambda logits, t, k, p: GPT.next_logits(None, logits, t, k, None)),
    "misses the token that crosses top_p": gpt_generating(next_logits=nucleus_without_crossing),
    "sets the other logits to 0 instead of -inf": gpt_generating(next_logits=lambda logits, t, k, p: (
        top_k_filled_with_zero(logits / t, k) if k is not None and k > 1 else GPT.next_logits(None, logits, t, k, p))),
    "nucleus is computed in sorted order but applied to token ids": gpt_generating(next_logits=nucleus_not_mapped_back),
    "position of the most likely token in sorted order, not its id": gpt_generating(sample=sample_sorted_position),
    "the generator is ignored": gpt_generating(
        sample=lambda logits: torch.multinomial(F.softmax(logits, dim=-1), 1)),
}


# ---------------------------------------------------------------- training loop mistakes


def batches_shifted(shift):
    def get(data, batch_size, block_size, generator=None):
        starts = torch.randint(len(data) - block_size - max(shift - 1, 0), (batch_size,), generator=generator)
        x = torch.stack([data[i:i + block_size] for i in starts])
        y = torch.stack([data[i + shift:i + shift + block_size] for i in starts])
        return x, y
    return get


def batches_without_generator(data, batch_size, block_size, generator=None):
    return get_batch(data, batch_size, block_size)


def batches_missing_last_window(data, batch_size, block_size, generator=None):
    starts = torch.randint(len(data) - block_size - 1, (batch_size,), generator=generator)
    return (torch.stack([data[i:i + block_size] for i in starts]),
            torch.stack([data[i + 1:i + block_size + 1] for i in starts]))


def zero_grad_after_backward(model, train_data, val_data, max_steps=100, batch_size=16, learning_rate=1e-3,
                             eval_interval=50, eval_batches=10, grad_clip=1.0, seed=0):
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    history = {"loss": [], "eval_step": [], "val_loss": []}
    for _ in range(max_steps):
        _, loss = model(*get_batch(train_data, batch_size, model.config.block_size, generator))
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
        history["loss"].append(loss.item())
    return history


TRAINING_BUGS = {
    "y equals x": (batches_shifted(0), train),
    "shifted by two": (batches_shifted(2), train),
    "pass generator to torch.randint": (batches_without_generator, train),
    "can start at 0 or 1": (batches_missing_last_window, train),
    "call optimizer.zero_grad\\(\\)": (get_batch, make_train(zero_grad=False)),
    "call optimizer.step\\(\\)": (get_batch, make_train(step=False)),
    "not between backward and step": (get_batch, zero_grad_after_backward),
    "not clipped": (get_batch, make_train(clip=False)),
    "use torch.optim.AdamW": (get_batch, make_train(optimizer=torch.optim.SGD)),
    "never evaluates": (get_batch, make_train(evaluate=False)),
    "model.eval\\(\\)": (get_batch, make_train(eval_mode=False)),
    "torch.no_grad\\(\\)": (get_batch, make_train(no_grad=False)),
    "model.train\\(\\) again": (get_batch, make_train(back_to_train=False)),
    "trained on val_data": (get_batch, make_train(val_for_training=True)),
    "append loss.item\\(\\)": (get_batch, make_train(item=False)),
    "evaluation batches should have shape \\(batch_size, block_size\\)": (get_batch, make_train(eval_sizes_swapped=True)),
}


def test_training_loop_shift_is_caught_inside_train_too():
    """A train() that builds its own batches with y == x fails even with a correct get_batch."""
    outcomes = checks.check_training_loop.judge(
        checks.check_training_loop.probe_all((get_batch, make_train(batches=batches_shifted(0)))))
    batches = next(o for o in outcomes if o.test.startswith("train: batches"))
    assert not batches.passed and "shifted by one" in batches.message


def test_verdicts_survive_the_graders_wire():
    """The grader carries probe results across a process boundary (coursekit.grading.wire) before judging."""
    from coursekit.grading import wire

    for check, arguments in [(checks.check_mlp, (MLP,)), (checks.check_block, (Block,)),
                             (checks.check_gpt_constructor, (GPT,)), (checks.check_forward, (GPT,)),
                             (checks.check_generate, (GPT,)), (checks.check_training_loop, (get_batch, train))]:
        results = [(name, wire.decode_value(wire.encode_value(data))) for name, data in check.probe_all(arguments)]
        assert all(outcome.passed for outcome in check.judge(results)), check.exercise


# ---------------------------------------------------------------- issue 12's named cases and more student mistakes


class SwappedNormsBlock(Block):
    def forward(self, x):
        x = x + self.attn(self.ln_2(x))
        return x + self.mlp(self.ln_1(x))


class NoNormNoResidualBlock(Block):
    def forward(self, x):
        return self.mlp(self.attn(x))


class FixedDropoutMLP(MLP):
    def __init__(self, config):
        super().__init__(config)
        self.dropout = nn.Dropout(0.1)


class PlainMLPBlock(Block):
    """The MLP built without the config's dropout: a sub-module that does not receive `dropout`."""

    def __init__(self, config):
        super().__init__(config)
        self.mlp = MLP(type(config)(**{**vars(config), "dropout": 0.0}))


class HiddenDropoutMLP(MLP):
    def forward(self, x):
        return self.c_proj(self.dropout(self.gelu(self.c_fc(x))))


class NotebookWidthMLP(MLP):
    """Hidden width fixed to the notebook's 4 * 12 = 48."""

    def __init__(self, config):
        super().__init__(config)
        self.c_fc = nn.Linear(config.n_embd, 48)
        self.c_proj = nn.Linear(48, config.n_embd)


NAMED_BLOCK_BUGS = {
    # An unusual wiring (the MLP's output halved): each sub-layer run on its own computes the right thing, so the
    # message points at Block.forward instead of blaming the MLP.
    "the mistake is in how Block.forward uses them": block_with(lambda s, x: (h := x + s.attn(s.ln_1(x))) + 0.5 * s.mlp(s.ln_2(h))),
    "the two LayerNorms are swapped": SwappedNormsBlock,
    "no LayerNorms and no residual connections": NoNormNoResidualBlock,
    "do not all use dropout|receives config.dropout": PlainMLPBlock,
}


def test_a_block_failure_is_not_blamed_on_the_mlp():
    for seed in (0, 1):
        messages = [o.message for o in failures(checks.check_block, NAMED_BLOCK_BUGS["the mistake is in how Block.forward uses them"],
                                                seed)]
        assert messages and not any("check_mlp" in m or "MLP(config)" in m for m in messages), messages


def test_a_block_without_layernorm_and_residuals_scores_nothing():
    check = checks.check_block
    for seed in (0, 1):
        assert grade(check, (NoNormNoResidualBlock,), seed) == 0.0


def test_a_block_with_a_fixed_dropout_in_its_mlp_is_told_so():
    class FixedDropoutBlock(Block):
        def __init__(self, config):
            super().__init__(config)
            self.mlp = FixedDropoutMLP(config)
    with pytest.raises(AssertionError, match="uses p = 0.1 though config.dropout"):
        checks.check_block(FixedDropoutBlock)


@pytest.mark.parametrize("mistake, mlp", [("uses p = 0.1 though config.dropout", FixedDropoutMLP),
                                          ("hidden layer", HiddenDropoutMLP)])
def test_mlp_dropout_mistakes(mistake, mlp):
    with pytest.raises(AssertionError, match=mistake):
        checks.check_mlp(mlp)


def test_sizes_fixed_to_the_notebook_pass_public_and_fail_secret():
    checks.check_mlp.judge(checks.check_mlp.probe_all((NotebookWidthMLP,)))  # public: runs
    assert max(grade(checks.check_mlp, (NotebookWidthMLP,), seed) for seed in (1, 2, 3)) < 0.5


class NoEmbeddingDropoutGPT(GPT):
    def forward(self, idx, targets=None):
        x = self.embed(idx)
        for block in self.transformer.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.reshape(-1, logits.size(-1)), targets.reshape(-1))
        return logits, loss


class IdxAsTargetsGPT(GPT):
    def forward(self, idx, targets=None):
        logits, _ = super().forward(idx)
        loss = None if targets is None else F.cross_entropy(logits.reshape(-1, logits.size(-1)), idx.reshape(-1))
        return logits, loss


NAMED_FORWARD_BUGS = {
    "no embedding dropout": NoEmbeddingDropoutGPT,
    "compares the logits with idx": IdxAsTargetsGPT,
}


def temperature_after_filters(logits, temperature, top_k, top_p):
    return GPT.next_logits(None, logits, 1.0, top_k, top_p) / temperature


def top_k_without_min(logits, temperature, top_k, top_p):
    logits = logits / temperature
    if top_k is not None:
        logits = keep_top(logits, top_k)
    return GPT.next_logits(None, logits, 1.0, None, top_p)


def nucleus_with_gather(logits, temperature, top_k, top_p):
    logits = GPT.next_logits(None, logits, temperature, top_k, None)
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs >= top_p
        logits = logits.masked_fill(drop.gather(-1, order), float("-inf"))
    return logits


def nucleus_strict_boundary(logits, temperature, top_k, top_p):
    logits = GPT.next_logits(None, logits, temperature, top_k, None)
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = sorted_logits.softmax(-1)
        drop = probs.cumsum(-1) - probs > top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def clamped_sampling(logits):
    """Samples from logits clamped to [-1, 1] (a flattened distribution), not greedy."""
    return torch.multinomial(F.softmax(logits.clamp(-1, 1), -1), 1)


NAMED_GENERATE_BUGS = {
    "temperature is applied after top-p": gpt_generating(next_logits=temperature_after_filters),
    "min\\(top_k, logits.size\\(-1\\)\\)": gpt_generating(next_logits=top_k_without_min),
    "mapped back with gather\\(-1, order\\)": gpt_generating(next_logits=nucleus_with_gather),
    "at an exact boundary the nucleus keeps one token too many": gpt_generating(next_logits=nucleus_strict_boundary),
}


def test_sampling_from_clamped_logits_is_not_called_greedy():
    with pytest.raises(AssertionError) as failure:
        checks.check_generate(gpt_generating(sample=clamped_sampling))
    assert "greedy" not in str(failure.value) and "most likely token" not in str(failure.value)


def train_variant(final_evaluation=True, evaluate_after_update=False, use_generator=True):
    """The reference loop with one change."""
    def train(model, train_data, val_data, max_steps=100, batch_size=16, learning_rate=1e-3, eval_interval=50,
              eval_batches=10, grad_clip=1.0, seed=0):
        generator = torch.Generator().manual_seed(seed) if use_generator else None
        opt = torch.optim.AdamW(model.parameters(), lr=learning_rate)
        block_size = model.config.block_size
        history = {"loss": [], "eval_step": [], "val_loss": []}

        def run_evaluation(at):
            model.eval()
            with torch.no_grad():
                losses = [model(*get_batch(val_data, batch_size, block_size, generator))[1].item()
                          for _ in range(eval_batches)]
            model.train()
            history["eval_step"].append(at)
            history["val_loss"].append(sum(losses) / len(losses))

        model.train()
        for number in range(max_steps):
            if number % eval_interval == 0 and not evaluate_after_update:
                run_evaluation(number)
            x, y = get_batch(train_data, batch_size, block_size, generator)
            _, loss = model(x, y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            history["loss"].append(loss.item())
            if number % eval_interval == 0 and evaluate_after_update:
                run_evaluation(number)
        if final_evaluation:
            run_evaluation(max_steps)
        return history
    return train


NAMED_TRAINING_BUGS = {
    "there is no final evaluation": train_variant(final_evaluation=False),
    "each evaluation comes after that step's update": train_variant(evaluate_after_update=True),
    "get_batch is not given train's generator": train_variant(use_generator=False),
}


def test_training_loop_prints_no_progress_bars(capsys):
    from tqdm.auto import tqdm

    def train_with_bar(model, train_data, val_data, max_steps=100, **settings):
        for _ in tqdm(range(1), desc="training"):
            pass
        return train(model, train_data, val_data, max_steps=max_steps, **settings)

    checks.check_training_loop(get_batch, train_with_bar)
    captured = capsys.readouterr()
    assert "training" not in captured.err and "training" not in captured.out.replace("training_loop", "")


# ---------------------------------------------------------------- secret grading inputs and weights


def grade(check, answers, run_seed):
    return check.fraction(check.judge(check.probe_all(answers, run_seed), run_seed))


REFERENCES = [(checks.check_mlp, (MLP,)), (checks.check_block, (Block,)), (checks.check_gpt_constructor, (GPT,)),
              (checks.check_forward, (GPT,)), (checks.check_generate, (GPT,)),
              (checks.check_training_loop, (get_batch, train))]


@pytest.mark.parametrize("check, answers", REFERENCES, ids=lambda v: getattr(v, "exercise", ""))
def test_the_solution_passes_under_secret_seeds(check, answers):
    for seed in (1, 2, 3):
        assert grade(check, answers, seed) == 1.0, [o for o in check.judge(check.probe_all(answers, seed), seed)
                                                    if not o.passed]


def wrong_everywhere():
    """A notebook whose every answer runs and has the right shapes, and is wrong."""
    class AnyMLP(nn.Module):
        def __init__(self, config):
            super().__init__()
            self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd)
            self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd)
            self.dropout = nn.Dropout(config.dropout)

        def forward(self, x):
            return self.dropout(self.c_proj(self.c_fc(x)))  # no activation

    class AnyBlock(NoNormNoResidualBlock):
        pass

    class AnyGPT(GPT):
        def forward(self, idx, targets=None):
            logits = self.lm_head(self.transformer.wte(idx))  # no positions, blocks, norm
            return logits, (None if targets is None else logits.mean())

        @torch.no_grad()
        def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
            return torch.cat([idx, idx[:, -1:].repeat(1, max_new_tokens)], dim=1)

    def any_batch(data, batch_size, block_size, generator=None):
        x = torch.stack([data[:block_size]] * batch_size)
        return x, x

    def any_train(model, train_data, val_data, max_steps=100, batch_size=16, learning_rate=1e-3, eval_interval=50,
                  eval_batches=10, grad_clip=1.0, seed=0):
        opt = torch.optim.SGD(model.parameters(), lr=learning_rate)
        for _ in range(max_steps):
            _, loss = model(*any_batch(val_data, batch_size, model.config.block_size))
            loss.backward()
            opt.step()
        return {"loss": [], "eval_step": [], "val_loss": []}

    return [(checks.check_mlp, (AnyMLP,), 2), (checks.check_block, (AnyBlock,), 20),
            (checks.check_gpt_constructor, (NoFinalNormGPT,), 5), (checks.check_forward, (AnyGPT,), 5),
            (checks.check_generate, (AnyGPT,), 5), (checks.check_training_loop, (any_batch, any_train), 15)]


def test_a_wrong_everywhere_notebook_scores_at_most_5_percent():
    for seed in (0, 1):
        parts = [(check.exercise, points * grade(check, answers, seed)) for check, answers, points in wrong_everywhere()]
        # chars, encode and decode (3 of 55 points) are checked in characters.py; counted as failed here
        assert sum(earned for _, earned in parts) <= 0.05 * 55, (seed, parts)


# ---------------------------------------------------------------- no answer where student code can reach it


def test_the_04_checks_hold_no_model_code():
    """Every coursekit/checks module is in 04's sandbox: none of 04's may compute a Block, MLP or loss as the
    reference does (the replays live in coursekit/judging/gpt.py, outside the sandbox)."""
    files = [*Path(checks.__file__).parent.glob("gpt_*.py"), Path(checks.__file__).parent / "probing.py"]
    sources = {file.name: file.read_text(encoding="utf-8") for file in files}
    assert answer_like_code([coursekit.gpt.__file__], sources) == []


def test_the_answer_detector_finds_model_code():
    handwritten = {"probe": "def block(x):\n    x = x + attn(ln_1(x))\n    return x + mlp(ln_2(x))\n"
                            "def loss(logits, targets):\n    return F.cross_entropy(logits.view(-1, "
                            "logits.size(-1)), targets.view(-1))"}
    assert len(answer_like_code([coursekit.gpt.__file__], handwritten)) >= 2


def test_the_replays_of_the_answers_stay_out_of_the_03_and_04_sandboxes():
    for notebook in ("03_attention", "04_gpt_training"):
        assert "coursekit.judging.gpt" in references.forbidden_modules(notebook), notebook


# ---------------------------------------------------------------- every buggy set: named, in public and secret runs

CHECKS = {check.exercise: check for check in (checks.check_mlp, checks.check_block, checks.check_gpt_constructor,
                                              checks.check_forward, checks.check_generate,
                                              checks.check_training_loop)}
NAMED = {"block": NAMED_BLOCK_BUGS, "forward": NAMED_FORWARD_BUGS, "generate": NAMED_GENERATE_BUGS,
         "training_loop": {mistake: (get_batch, loop) for mistake, loop in NAMED_TRAINING_BUGS.items()}}
BUGS = {"mlp": MLP_BUGS, "block": {**BLOCK_BUGS, **NAMED_BLOCK_BUGS}, "gpt_constructor": CONSTRUCTOR_BUGS,
        "forward": {**FORWARD_BUGS, **NAMED_FORWARD_BUGS}, "generate": {**GENERATE_BUGS, **NAMED_GENERATE_BUGS},
        "training_loop": {**TRAINING_BUGS, **NAMED["training_loop"]}}
test_each_mistake_is_named, test_every_mistake_fails_under_a_secret_seed_too, _ = mistake_tests(CHECKS, BUGS)
test_issue_12s_mistakes_are_named_under_secret_seeds = named_under_secret_seeds(CHECKS, NAMED)


def test_no_two_buggy_sets_of_an_exercise_share_a_mistake():
    """BUGS merges the tables: a message regex in two of them would hide one of the bugs."""
    for first, second in [(BLOCK_BUGS, NAMED_BLOCK_BUGS), (FORWARD_BUGS, NAMED_FORWARD_BUGS),
                          (GENERATE_BUGS, NAMED_GENERATE_BUGS), (TRAINING_BUGS, NAMED_TRAINING_BUGS)]:
        assert not first.keys() & second.keys()
