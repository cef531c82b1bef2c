"""Notebook 04's checks against answers written as students would write them, from the notebook's text alone: each
mistake's first failing test names it under the public and five secret run seeds; each valid variant passes."""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from torch.nn import functional as F

from check_family import failures, student_tests
from coursekit import checks
from coursekit.gpt_config import GPTConfig
from test_checks_gpt import (GPT, MLP, Block, FunctionalMLP, InlineBlock, ListGPT, SequentialMLP, attention,
                             get_batch, init_weights, train, train_with_set_to_none, unfold_batches)

NEG_INF = float("-inf")

# ---------------------------------------------------------------- MLP


def mlp_bug(init=None, forward=None):
    methods = {}
    if init:
        def __init__(self, config):
            MLP.__init__(self, config)
            init(self, config)
        methods["__init__"] = __init__
    if forward:
        methods["forward"] = forward
    return type("StudentMLP", (MLP,), methods)


class ManualGeluMLP(MLP):
    """GELU's tanh formula written out."""

    def forward(self, x):
        h = self.c_fc(x)
        h = 0.5 * h * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (h + 0.044715 * h ** 3)))
        return self.dropout(self.c_proj(h))


def zeroes_its_input(self, x):
    out = self.dropout(self.c_proj(self.gelu(self.c_fc(x))))
    x.zero_()  # "free" the input: the Block's residual x + mlp(ln_2(x)) then adds to zeros
    return out


MLP_BUGS = [
    ("the MLP changes its input x in place", mlp_bug(forward=zeroes_its_input)),
    # the type is the student's (a tensor, a list), not what the judge receives (a numpy array, a list for a tuple)
    ("should return a tensor of shape \\(2, \\d+, \\d+\\), got Tensor of shape \\(2, \\d+, \\d+\\) and dtype torch.float32",
     mlp_bug(forward=lambda self, x: self.dropout(self.c_proj(self.gelu(self.c_fc(x))))[..., 1:])),
    ("should return one tensor of shape \\(2, \\d+, \\d+\\), got a list of length 1",
     mlp_bug(forward=lambda self, x: [self.dropout(self.c_proj(self.gelu(self.c_fc(x))))])),
    ("exact GELU", mlp_bug(init=lambda self, c: setattr(self, "gelu", nn.GELU()))),
    ("ReLU", mlp_bug(init=lambda self, c: setattr(self, "gelu", nn.ReLU()))),
    ("no activation", mlp_bug(forward=lambda self, x: self.dropout(self.c_proj(self.c_fc(x))))),
    ("after the second layer", mlp_bug(forward=lambda self, x: self.dropout(self.gelu(self.c_proj(self.gelu(self.c_fc(x))))))),
    ("residual", mlp_bug(forward=lambda self, x: x + self.dropout(self.c_proj(self.gelu(self.c_fc(x)))))),
    ("hidden", mlp_bug(forward=lambda self, x: self.c_proj(self.dropout(self.gelu(self.c_fc(x)))))),
    ("same output as eval|no dropout|dropout", mlp_bug(forward=lambda self, x: self.c_proj(self.gelu(self.c_fc(x))))),
    ("fixed probability|p = 0.1", mlp_bug(init=lambda self, c: setattr(self, "dropout", nn.Dropout(0.1)))),
    ("still active|eval", mlp_bug(forward=lambda self, x: F.dropout(self.c_proj(self.gelu(self.c_fc(x))), self.dropout.p))),
    ("4 \\* n_embd|fixed|notebook", mlp_bug(init=lambda self, c: (setattr(self, "c_fc", nn.Linear(c.n_embd, 64)),
                                                                setattr(self, "c_proj", nn.Linear(64, c.n_embd))))),
    ("has no bias, though config.bias = True", mlp_bug(init=lambda self, c: setattr(self, "c_proj", nn.Linear(4 * c.n_embd, c.n_embd, bias=False)))),
    ("wider|4 \\* n_embd|hidden", mlp_bug(init=lambda self, c: (setattr(self, "c_fc", nn.Linear(c.n_embd, 2 * c.n_embd)),
                                                           setattr(self, "c_proj", nn.Linear(2 * c.n_embd, c.n_embd))))),
]

# ---------------------------------------------------------------- Block


def block_bug(forward=None, init=None):
    methods = {}
    if init:
        def __init__(self, config):
            Block.__init__(self, config)
            init(self, config)
        methods["__init__"] = __init__
    if forward:
        methods["forward"] = forward
    return type("StudentBlock", (Block,), methods)


def swapped_norms(self, x):
    x = x + self.attn(self.ln_2(x))
    return x + self.mlp(self.ln_1(x))


def residual_after_norm(self, x):
    x = self.ln_1(x)
    x = x + self.attn(x)
    x = self.ln_2(x)
    return x + self.mlp(x)


def post_norm(self, x):
    x = self.ln_1(x + self.attn(x))
    return self.ln_2(x + self.mlp(x))


def mlp_first(self, x):
    x = x + self.mlp(self.ln_2(x))
    return x + self.attn(self.ln_1(x))


def parallel(self, x):
    return x + self.attn(self.ln_1(x)) + self.mlp(self.ln_2(x))


def one_norm(self, x):
    x = x + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_1(x))


def no_mlp_residual(self, x):
    x = x + self.attn(self.ln_1(x))
    return self.mlp(self.ln_2(x))


def no_attention_residual(self, x):
    x = self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


def in_place_residual(self, x):
    x += self.attn(self.ln_1(x))
    x += self.mlp(self.ln_2(x))
    return x


def detached_stream(self, x):
    x = x.detach() + self.attn(self.ln_1(x))
    return x + self.mlp(self.ln_2(x))


def detached_attention(self, x):
    x = x + self.attn(self.ln_1(x)).detach()
    return x + self.mlp(self.ln_2(x))


def dropout_before_attention(self, x):
    x = x + self.attn(F.dropout(self.ln_1(x), self.drop_p, self.training))
    return x + self.mlp(self.ln_2(x))


def stream_dropout(self, x):
    x = x + self.attn(self.ln_1(x))
    x = x + self.mlp(self.ln_2(x))
    return F.dropout(x, self.drop_p, self.training)


class BatchNorm(nn.Module):
    """BatchNorm1d over the features of every position (what a student coming from CNNs might write)."""

    def __init__(self, n_embd):
        super().__init__()
        self.norm = nn.BatchNorm1d(n_embd)

    def forward(self, x):
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


def norms_swapping_gain_and_bias(self, x):
    n = (x.size(-1),)
    x = x + self.attn(F.layer_norm(x, n, self.ln_1.bias, self.ln_1.weight))
    return x + self.mlp(F.layer_norm(x, n, self.ln_2.bias, self.ln_2.weight))


class AttentionWithoutDropoutBlock(Block):
    """The given attention edited to drop nothing; the MLP still drops."""

    def __init__(self, config):
        super().__init__(config)
        self.attn = attention(GPTConfig(n_embd=config.n_embd, n_head=config.n_head, block_size=config.block_size))


class MLPWithoutDropoutBlock(Block):
    """The MLP built from a fresh config: the block's dropout never reaches it."""

    def __init__(self, config):
        super().__init__(config)
        self.mlp = MLP(GPTConfig(n_embd=config.n_embd, n_head=config.n_head, block_size=config.block_size))


class NotebookNormsBlock(Block):
    def __init__(self, config):
        super().__init__(config)
        self.ln_1, self.ln_2 = nn.LayerNorm(64), nn.LayerNorm(64)


BLOCK_BUGS = [
    ("swapped|ln_1|ln_2", block_bug(forward=swapped_norms)),
    ("residual starts after the LayerNorm|after the LayerNorm", block_bug(forward=residual_after_norm)),
    ("post-LN|after the addition|pre-LayerNorm|normalis", block_bug(forward=post_norm)),
    ("order|attention first|before the attention", block_bug(forward=mlp_first)),
    ("both read the block's input", block_bug(forward=parallel)),
    ("same LayerNorm|ln_2|two LayerNorms", block_bug(forward=one_norm)),
    ("residual", block_bug(forward=no_mlp_residual)),
    ("residual", block_bug(forward=no_attention_residual)),
    ("stream|outside the sub-layers|inside the sub-layers", block_bug(
        forward=stream_dropout, init=lambda self, c: setattr(self, "drop_p", c.dropout))),
    ("the MLP drops nothing; build it as MLP\\(config\\)", MLPWithoutDropoutBlock),
    ("the attention drops nothing", AttentionWithoutDropoutBlock),
    ("normalises with RMSNorm, not a LayerNorm", block_bug(init=lambda self, c: (
        setattr(self, "ln_1", nn.RMSNorm(c.n_embd)), setattr(self, "ln_2", nn.RMSNorm(c.n_embd))))),
    ("normalises with BatchNorm1d, not a LayerNorm", block_bug(init=lambda self, c: (
        setattr(self, "ln_1", BatchNorm(c.n_embd)), setattr(self, "ln_2", BatchNorm(c.n_embd))))),
    ("LayerNorm has eps = 0.1; keep the default", block_bug(init=lambda self, c: (
        setattr(self, "ln_1", nn.LayerNorm(c.n_embd, eps=0.1)), setattr(self, "ln_2", nn.LayerNorm(c.n_embd, eps=0.1))))),
    ("the block's MLP \\(MLP\\): the activation is ReLU", block_bug(init=lambda self, c: setattr(self.mlp, "gelu", nn.ReLU()))),
    ("swaps each LayerNorm's gain and bias", block_bug(forward=norms_swapping_gain_and_bias)),
    ("compute what they should, so the mistake is in how Block.forward uses them", block_bug(
        forward=lambda self, x: (h := x + self.attn(self.ln_1(x))) + self.mlp(self.ln_2(h)) + self.ln_2.bias)),
    ("changed in place \\(x \\+= \\.\\.\\.\\)", block_bug(forward=in_place_residual)),
    ("cut off from autograd", block_bug(forward=detached_stream)),
    ("cut off from autograd", block_bug(forward=detached_attention)),
    ("found 3 dropouts on n_embd-wide tensors", block_bug(
        forward=dropout_before_attention, init=lambda self, c: setattr(self, "drop_p", c.dropout))),
    ("fixed|notebook|LayerNorm\\(n_embd\\)|shape", NotebookNormsBlock),
    ("gain|weight|elementwise_affine|LayerNorm", block_bug(init=lambda self, c: (
        setattr(self, "ln_1", nn.LayerNorm(c.n_embd, elementwise_affine=False)),
        setattr(self, "ln_2", nn.LayerNorm(c.n_embd, elementwise_affine=False))))),
    ("a LayerNorm has no bias", block_bug(init=lambda self, c: (setattr(self, "ln_1", nn.LayerNorm(c.n_embd, bias=False)),
                                                       setattr(self, "ln_2", nn.LayerNorm(c.n_embd, bias=False))))),
]


class DictBlock(nn.Module):
    """The sub-layers in an nn.ModuleDict, the MLP's norm registered first, a loop over (norm, sub-layer)."""

    def __init__(self, config):
        super().__init__()
        self.parts = nn.ModuleDict({"ln_2": nn.LayerNorm(config.n_embd), "mlp": FunctionalMLP(config),
                                    "ln_1": nn.LayerNorm(config.n_embd), "attn": attention(config)})

    def forward(self, x):
        for norm, layer in (("ln_1", "attn"), ("ln_2", "mlp")):
            x = x + self.parts[layer](self.parts[norm](x))
        return x


class InlineMLPBlock(Block):
    """The MLP's layers straight in the Block (no MLP module), F.dropout on its output."""

    def __init__(self, config):
        super().__init__(config)
        del self.mlp
        self.fc, self.proj, self.p = nn.Linear(config.n_embd, 4 * config.n_embd), nn.Linear(4 * config.n_embd,
                                                                                              config.n_embd), config.dropout

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        h = F.gelu(self.fc(self.ln_2(x)), approximate="tanh")
        return x + F.dropout(self.proj(h), self.p, self.training)


class FunctionalNormBlock(Block):
    """F.layer_norm with the LayerNorms' own parameters; additions written as torch.add."""

    def forward(self, x):
        n = (x.size(-1),)
        x = torch.add(x, self.attn(F.layer_norm(x, n, self.ln_1.weight, self.ln_1.bias, self.ln_1.eps)))
        return torch.add(x, self.mlp(F.layer_norm(x, n, self.ln_2.weight, self.ln_2.bias, self.ln_2.eps)))


# ---------------------------------------------------------------- GPT constructor


def gpt_bug(change=None, blocks=None):
    def __init__(self, config):
        GPT.__init__(self, config)
        if blocks:
            self.transformer.h = blocks(config)
        if change:
            change(self, config)
    return type("StudentGPT", (GPT,), {"__init__": __init__})


class HiddenBlocksGPT(GPT):
    """The blocks as a plain list beside the ModuleDict: the optimiser never sees them."""

    def __init__(self, config):
        super().__init__(config)
        del self.transformer["h"]
        self.h = [Block(config) for _ in range(config.n_layer)]

    def forward(self, idx, targets=None):
        x = self.transformer.drop(self.embed(idx))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())


CONSTRUCTOR_BUGS = [
    ("tie|tied|weight tying", gpt_bug(lambda self, c: setattr(self, "lm_head", nn.Linear(c.n_embd, c.vocab_size, bias=False)))),
    ("block_size|position", gpt_bug(lambda self, c: self.transformer.__setitem__("wpe", nn.Embedding(c.vocab_size, c.n_embd)))),
    ("n_layer|Blocks", gpt_bug(blocks=lambda c: nn.ModuleList([Block(c) for _ in range(3)]))),
    ("same Block|distinct|one Block|n_layer|Blocks", gpt_bug(blocks=lambda c: nn.ModuleList([Block(c)] * c.n_layer))),
    ("bias", gpt_bug(lambda self, c: (setattr(self, "lm_head", nn.Linear(c.n_embd, c.vocab_size)),
                                      setattr(self.lm_head, "weight", self.transformer.wte.weight)))),
    ("final LayerNorm|ln_f", gpt_bug(lambda self, c: self.transformer.__setitem__("ln_f", nn.Identity()))),
    ("fixed probability|dropout", gpt_bug(lambda self, c: self.transformer.__setitem__("drop", nn.Dropout(0.1)))),
    ("Blocks|registered|ModuleList|n_layer", HiddenBlocksGPT),
    ("a LayerNorm has no gain and bias", gpt_bug(lambda self, c: self.transformer.__setitem__(
        "ln_f", nn.LayerNorm(c.n_embd, elementwise_affine=False)))),
    ("the position embedding has \\d+ rows; it needs exactly one per position", gpt_bug(
        lambda self, c: self.transformer.__setitem__("wpe", nn.Embedding(c.block_size + 1, c.n_embd)))),
    ("vocab_size|embedding|wte", gpt_bug(lambda self, c: (self.transformer.__setitem__("wte", nn.Embedding(
        c.vocab_size + 1, c.n_embd)), setattr(self.lm_head, "weight", self.transformer.wte.weight)))),
    ("transformer.wte \\(nn.Embedding\\(\\d+, \\d+\\), tied to lm_head\\) starts with weights of std (0\\.[5-9]|1\\.)\\d*; GPT-2's "
     "initialisation", gpt_bug(lambda self, c: nn.init.normal_(self.transformer.wte.weight, std=1.0))),
    ("starts with weights of std 0.\\d+; GPT-2's initialisation .* std 0.02: keep the given self.apply\\(init_weights\\)",
     gpt_bug(lambda self, c: [m.reset_parameters() for m in self.modules() if hasattr(m, "reset_parameters")])),
    ("transformer.h.0.mlp.c_fc \\(nn.Linear\\(\\d+, \\d+\\)\\) starts with a bias up to", gpt_bug(
        lambda self, c: nn.init.normal_(self.transformer.h[0].mlp.c_fc.bias))),
    ("the Blocks' dropouts have p = 0.0 though config.dropout = 0.\\d+: build every Block from the model's own config",
     gpt_bug(blocks=lambda c: nn.ModuleList(Block(GPTConfig(**{**vars(c), "dropout": 0.0})) for _ in range(c.n_layer)))),
    ("the Blocks are held in an nn.ModuleDict", gpt_bug(blocks=lambda c: nn.ModuleDict(
        {str(i): Block(c) for i in range(c.n_layer)}))),
]


class TiedOtherWayGPT(GPT):
    """Tied the other way round (the embedding takes the head's matrix) and the head built first."""

    def __init__(self, config):
        nn.Module.__init__(self)
        self.config = config
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd), wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout), h=nn.ModuleList(Block(config) for _ in range(config.n_layer)),
            ln_f=nn.LayerNorm(config.n_embd)))
        self.transformer.wte.weight = self.lm_head.weight
        self.apply(init_weights)


class ScaledInitGPT(GPT):
    """nanoGPT's initialisation: the projections into the residual stream scaled by 1 / sqrt(2 * n_layer)."""

    def __init__(self, config):
        super().__init__(config)
        for name, parameter in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(parameter, std=0.02 / math.sqrt(2 * config.n_layer))


class DictBlockGPT(GPT):
    def __init__(self, config):
        super().__init__(config, block=DictBlock)


# ---------------------------------------------------------------- forward


def forward_with(embed=None, run=None, loss=None, head=None):
    def forward(self, idx, targets=None):
        B, T = idx.shape
        pos = torch.arange(T, device=idx.device)
        x = embed(self, idx, pos) if embed else self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
        x = run(self, x) if run else self._blocks(x)
        logits = head(self, x) if head else self.lm_head(self.transformer.ln_f(x))
        if targets is None:
            return logits, None
        if loss:
            return logits, loss(logits, targets, idx)
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
    return type("StudentGPT", (GPT,), {"forward": forward, "_blocks": _blocks})


def _blocks(self, x):
    for block in self.transformer.h:
        x = block(x)
    return x


def reversed_blocks(self, x):
    for block in reversed(self.transformer.h):
        x = block(x)
    return x


def last_block_only(self, x):
    return self.transformer.h[-1](x)


def blocks_on_embeddings(self, x):
    out = x
    for block in self.transformer.h:
        out = block(x)
    return out


def head_without_autograd(self, x):
    with torch.no_grad():  # "the head only reads out": the loss then has no gradient at all
        return self.lm_head(self.transformer.ln_f(x))


def blocks_without_autograd(self, x):
    with torch.no_grad():
        return _blocks(self, x)


def norm_after_every_block(self, x):
    for block in self.transformer.h:
        x = self.transformer.ln_f(block(x))
    return x


class PeekingBlock(Block):
    """A Block that adds the mean over every position: forward is right, but the model sees the future."""

    def forward(self, x):
        return super().forward(x) + x.mean(1, keepdim=True)


FORWARD_BUGS = [
    ("embedding dropout|embeddings", forward_with(embed=lambda self, idx, pos: self.transformer.wte(idx) + self.transformer.wpe(pos))),
    ("position", forward_with(embed=lambda self, idx, pos: self.transformer.drop(self.transformer.wte(idx)))),
    ("not torch.arange\\(block_size\\)", forward_with(embed=lambda self, idx, pos: self.transformer.drop(
        self.transformer.wte(idx) + self.transformer.wpe(torch.arange(self.config.block_size))))),
    ("position", forward_with(embed=lambda self, idx, pos: self.transformer.drop(
        self.transformer.wte(idx) + self.transformer.wpe(idx)))),
    ("shift|already shifted", forward_with(loss=lambda logits, targets, idx: F.cross_entropy(
        logits[:, :-1].reshape(-1, logits.size(-1)), targets[:, 1:].reshape(-1)))),
    ("targets|idx", forward_with(loss=lambda logits, targets, idx: F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), idx.reshape(-1)))),
    ("mean|sum|average", forward_with(loss=lambda logits, targets, idx: F.cross_entropy(
        logits.reshape(-1, logits.size(-1)), targets.reshape(-1), reduction="sum"))),
    ("order", forward_with(run=reversed_blocks)),
    ("index -1 is out of range: forward picks one Block", forward_with(run=last_block_only)),
    ("Blocks|in order|each Block", forward_with(run=blocks_on_embeddings)),
    ("ln_f|final LayerNorm", forward_with(head=lambda self, x: self.lm_head(x))),
    ("softmax|logits", forward_with(head=lambda self, x: F.softmax(self.lm_head(self.transformer.ln_f(x)), -1))),
    ("sees the future", gpt_bug(blocks=lambda c: nn.ModuleList(PeekingBlock(c) for _ in range(c.n_layer)))),
    ("the position embedding \\(wpe\\) got no gradient", forward_with(embed=lambda self, idx, pos: self.transformer.drop(
        (self.transformer.wte(idx) + self.transformer.wpe(pos)).detach()))),
    ("the gradient of the token embedding \\(wte\\) is not the loss's", forward_with(
        embed=lambda self, idx, pos: self.transformer.drop(self.transformer.wte(idx).detach() + self.transformer.wpe(pos)))),
    ("loss.backward\\(\\) fails: the loss of forward with n_layer=0 has no gradient history", forward_with(
        head=lambda self, x: head_without_autograd(self, x))),
    ("with n_layer=2, \\d+ parameter\\(s\\) got no gradient \\(transformer.wpe.weight, transformer.h.0", forward_with(
        run=blocks_without_autograd)),
    ("applies dropout 2 times \\(the token embeddings, then the sum again\\)", forward_with(
        embed=lambda self, idx, pos: self.transformer.drop(self.transformer.drop(self.transformer.wte(idx))
                                                           + self.transformer.wpe(pos)))),
    ("the embedding dropout is applied to the token embeddings alone", forward_with(
        embed=lambda self, idx, pos: self.transformer.drop(self.transformer.wte(idx)) + self.transformer.wpe(pos))),
    ("ln_f runs after every Block", forward_with(run=norm_after_every_block)),
]


def forward_transposed_loss(self, idx, targets=None):
    """cross_entropy over (B, vocab, T) logits, the positions' table sliced instead of indexed."""
    T = idx.size(1)
    x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe.weight[:T])
    for block in self.transformer.h:
        x = block(x)
    logits = self.lm_head(self.transformer.ln_f(x))
    return logits, None if targets is None else F.cross_entropy(logits.transpose(1, 2), targets)


def forward_functional_dropout(self, idx, targets=None):
    """F.embedding, F.dropout with training=self.training, F.linear with the tied matrix."""
    x = F.embedding(idx, self.transformer.wte.weight) + self.transformer.wpe.weight[:idx.size(1)]
    x = F.dropout(x, self.config.dropout, self.training)
    for block in self.transformer.h:
        x = block(x)
    logits = F.linear(self.transformer.ln_f(x), self.transformer.wte.weight)
    return logits, None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def forward_nll(self, idx, targets=None):
    """log_softmax and nll_loss, positions broadcast with unsqueeze."""
    pos = torch.arange(idx.shape[1]).unsqueeze(0)
    x = self.transformer.drop(self.transformer.wte(idx) + self.transformer.wpe(pos))
    for block in self.transformer.h:
        x = block(x)
    logits = self.lm_head(self.transformer.ln_f(x))
    if targets is None:
        return logits, None
    return logits, F.nll_loss(F.log_softmax(logits, dim=-1).flatten(0, 1), targets.flatten())


# ---------------------------------------------------------------- generate


def generating(filters=None, crop=None, position=-1, sample=None, softmax=F.softmax, sets_mode=None):
    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        if sets_mode:
            self.train(sets_mode == "train")
        for _ in range(max_new_tokens):
            context = crop(self, idx) if crop else idx[:, -self.config.block_size:]
            logits, _ = self(context)
            logits = logits[:, position, :]
            logits = filters(logits, temperature, top_k, top_p) if filters else \
                GPT.next_logits(self, logits, temperature, top_k, top_p)
            probs = softmax(logits, dim=-1)
            nxt = sample(probs, generator) if sample else torch.multinomial(probs, 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
        return idx
    return type("StudentGPT", (GPT,), {"generate": generate})


def with_a_fixed_generator(gpt_class):
    """`generator = generator or torch.Generator()`: without a generator every call draws the same tokens."""
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        return gpt_class.generate(self, idx, max_new_tokens, temperature, top_k, top_p,
                                  generator or torch.Generator())
    return type("FixedGeneratorGPT", (gpt_class,), {"generate": generate})


def top_k(logits, k):
    kth = torch.topk(logits, min(k, logits.size(-1))).values[:, [-1]]
    return logits.masked_fill(logits < kth, NEG_INF)


def top_p(logits, p, strict=False, crossing=True, gather=False, descending=True):
    sorted_logits, order = torch.sort(logits, descending=descending)
    probs = F.softmax(sorted_logits, dim=-1)
    before = probs.cumsum(-1) - probs if crossing else probs.cumsum(-1)
    drop = before > p if strict else before >= p
    if gather:
        return logits.masked_fill(drop.gather(-1, order), NEG_INF)
    return logits.masked_fill(drop.scatter(-1, order, drop), NEG_INF)


def filters(order="tkp", **top_p_options):
    def apply(logits, temperature, k, p):
        for step in order:
            if step == "t":
                logits = logits / temperature
            elif step == "k" and k is not None:
                logits = top_k(logits, k)
            elif step == "p" and p is not None:
                logits = top_p(logits, p, **top_p_options)
        return logits
    return apply


def no_min_top_k(logits, temperature, k, p):
    logits = logits / temperature
    if k is not None:
        logits = logits.masked_fill(logits < torch.topk(logits, k).values[:, [-1]], NEG_INF)
    return filters("p")(logits, temperature, None, p)


def one_too_many(logits, temperature, k, p):
    """Keeps k + 1 tokens: the threshold is the (k+1)-th largest logit."""
    logits = logits / temperature
    if k is not None:
        logits = logits.masked_fill(logits < torch.topk(logits, k + 1).values[:, [-1]], NEG_INF)
    return filters("p")(logits, temperature, None, p)


GENERATE_BUGS = [
    ("crop|block_size", generating(crop=lambda self, idx: idx)),
    ("crop|last block_size", generating(crop=lambda self, idx: idx[:, :self.config.block_size])),
    ("last position", generating(position=0)),
    ("temperature", generating(filters=filters("kpt"))),
    ("temperature", generating(filters=lambda logits, t, k, p: filters("kp")(logits * t, t, k, p))),
    ("top_p|top-p|nucleus|top_k|top-k", generating(filters=filters("tpk"))),
    ("boundary|reaching", generating(filters=filters(strict=True))),
    ("crossing|crosses|reaches|top_p", generating(filters=filters(crossing=False))),
    ("scatter", generating(filters=filters(gather=True))),
    ("min\\(|vocab", generating(filters=no_min_top_k)),
    ("generator", generating(sample=lambda probs, g: torch.multinomial(probs, 1))),
    ("greedy|argmax|sample", generating(sample=lambda probs, g: probs.argmax(-1, keepdim=True))),
    ("top_k|k-th|top-k", generating(filters=one_too_many)),
    ("logits around \\d+ raised.*F.softmax", generating(softmax=lambda x, dim: x.exp() / x.exp().sum(dim, keepdim=True))),
    ("leaves the model in eval mode", generating(sets_mode="eval")),
    # samples with dropout on, and leaves an eval()ed model training
    ("switches a model the caller put in eval mode to training mode", generating(sets_mode="train")),
    ("cropped to 8 tokens whatever block_size is", generating(crop=lambda self, idx: idx[:, -8:])),
    ("two calls without a generator.*gave the same tokens.*global RNG", with_a_fixed_generator(GPT)),
    ("top_k=0\\) sampled from every token, as if top_k were None",  # `if top_k:`
     generating(filters=lambda logits, t, k, p: filters()(logits, t, k or None, p))),
    ("top_p=0\\) sampled from every token, as if top_p were None",  # `if top_p:`
     generating(filters=lambda logits, t, k, p: filters()(logits, t, k, p or None))),
    ("top_k=0\\) picked the most likely token.*raise an error",  # top_k = max(1, top_k)
     generating(filters=lambda logits, t, k, p: filters()(logits, t, None if k is None else max(1, k), p))),
    ("temperature=0\\) sampled as if the temperature were 1",  # temperature = temperature or 1.0
     generating(filters=lambda logits, t, k, p: filters()(logits, t or 1.0, k, p))),
    ("random numbers start over at every step",
     generating(sample=lambda probs, g: torch.multinomial(probs, 1, generator=torch.Generator().manual_seed(0)))),
    ("all \\d+ rows of the batch got the same new token",
     generating(sample=lambda probs, g: torch.multinomial(probs, 1, generator=g)[:1].expand(probs.size(0), 1))),
    ("top_p keeps the least likely tokens.*ascending", generating(filters=filters(descending=False))),
]


def generate_where(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
    """torch.where for both filters, top-p by scattering the sorted, filtered logits back."""
    with torch.no_grad():
        for _ in range(max_new_tokens):
            logits = self(idx[:, -self.config.block_size:])[0][:, -1, :] / temperature
            if top_k is not None:
                kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
                logits = torch.where(logits < kth, torch.full_like(logits, NEG_INF), logits)
            if top_p is not None:
                sorted_logits, order = logits.sort(dim=-1, descending=True)
                probs = sorted_logits.softmax(-1)
                keep = probs.cumsum(-1) - probs < top_p
                sorted_logits = torch.where(keep, sorted_logits, torch.full_like(sorted_logits, NEG_INF))
                logits = torch.empty_like(logits).scatter_(-1, order, sorted_logits)
            idx = torch.cat([idx, torch.multinomial(logits.softmax(-1), 1, generator=generator)], dim=-1)
    return idx


class WhereGenerateGPT(GPT):
    generate = generate_where


class ValidatingGPT(GPT):
    """Rejects out-of-range settings with a ValueError and makes temperature=0 greedy, as notebook 05's sampler."""

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        if not temperature >= 0:
            raise ValueError(f"temperature must be >= 0, got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if temperature == 0:
            return GPT.generate(self, idx, max_new_tokens, top_k=1, generator=generator)
        return GPT.generate(self, idx, max_new_tokens, temperature, top_k, top_p, generator)


class EvalThenRestoreGPT(GPT):
    """Samples in eval mode whatever the caller set, then restores the caller's mode."""

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None):
        was_training = self.training
        self.eval()
        try:
            return GPT.generate(self, idx, max_new_tokens, temperature, top_k, top_p, generator)
        finally:
            self.train(was_training)


# ---------------------------------------------------------------- get_batch and train


def batch_bug(x_of, y_of, high=lambda data, block_size: len(data) - block_size, use_generator=True):
    def get_batch(data, batch_size, block_size, generator=None):
        starts = torch.randint(high(data, block_size), (batch_size,), generator=generator if use_generator else None)
        return (torch.stack([x_of(data, i, block_size) for i in starts]),
                torch.stack([y_of(data, i, block_size) for i in starts]))
    return get_batch


def window(shift):
    return lambda data, i, block_size: data[i + shift:i + shift + block_size]


def student_train(zero_grad="before", clip="after backward", final=True, eval_every=lambda s, n: s % n == 0,
                  eval_after_step=False, back_to_train=True, eval_mode=True, item=True, optimizer_class=None,
                  train_generator=True, val_source="val", lr=None, optimizer_each_step=False, step_lr=False,
                  loop_to_max_steps=False, fixed_eval_batches=None, val_generator=True, optimizer_settings=None):
    """final: True, False or "unless a multiple" (skipped when max_steps % eval_interval == 0); loop_to_max_steps:
    the loop runs over range(max_steps + 1), evaluating by eval_every, and stops before training at max_steps."""
    def train(model, train_data, val_data, max_steps=500, batch_size=16, learning_rate=1e-3, eval_interval=100,
              eval_batches=10, grad_clip=1.0, seed=0):
        generator = torch.Generator().manual_seed(seed)
        block_size = model.config.block_size
        make = optimizer_class or torch.optim.AdamW
        optimizer = make(model.parameters(), lr=lr or learning_rate, **(optimizer_settings or {}))
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=3, gamma=0.5) if step_lr else None
        history = {"loss": [], "eval_step": [], "val_loss": []}

        def evaluate(step):
            if eval_mode:
                model.eval()
            data = val_data if val_source == "val" else train_data
            with torch.no_grad():
                losses = [model(*get_batch(data, batch_size, block_size, generator if val_generator else None))[1]
                          .item() for _ in range(fixed_eval_batches or eval_batches)]
            if back_to_train:
                model.train()
            history["eval_step"].append(step)
            history["val_loss"].append(sum(losses) / len(losses))

        for step in range(max_steps + 1 if loop_to_max_steps else max_steps):
            if not eval_after_step and eval_every(step, eval_interval):
                evaluate(step)
            if step == max_steps:
                break
            if optimizer_each_step:
                optimizer = make(model.parameters(), lr=learning_rate)
            if zero_grad == "start":
                optimizer.zero_grad()
            x, y = get_batch(train_data, batch_size, block_size, generator if train_generator else None)
            _, loss = model(x, y)
            if zero_grad == "before":
                optimizer.zero_grad()
            if clip == "before backward":
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            loss.backward()
            if clip == "after backward":
                torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            if clip == "by value":
                torch.nn.utils.clip_grad_value_(model.parameters(), grad_clip)
            if zero_grad.startswith("after backward"):
                optimizer.zero_grad(set_to_none=zero_grad == "after backward")
            optimizer.step()
            if scheduler:
                scheduler.step()
            history["loss"].append(loss.item() if item else loss)
            if eval_after_step and eval_every(step + 1, eval_interval):
                evaluate(step + 1)
        if final is True or (final == "unless a multiple" and max_steps % eval_interval):
            evaluate(max_steps)
        return history
    return train


def batch_by_index_past_the_end(data, batch_size, block_size, generator=None):
    """Starts drawn up to len(data) - block_size: the last window's targets index past the end (IndexError)."""
    starts = torch.randint(len(data) - block_size + 1, (batch_size,), generator=generator)
    index = starts[:, None] + torch.arange(block_size)
    return data[index], data[index + 1]


def float_targets(data, batch_size, block_size, generator=None):
    x, y = get_batch(data, batch_size, block_size, generator)
    return x, y.float()


TRAINING_BUGS = [
    ("y|next|shift|one token later", (batch_bug(window(0), window(0)), train)),
    ("y|next|shift|one token later", (batch_bug(window(0), window(2)), train)),
    ("start|randint|len\\(data\\) - block_size", (batch_bug(window(0), window(1), high=lambda d, b: len(d) - b - 1), train)),
    ("generator", (batch_bug(window(0), window(1), use_generator=False), train)),
    ("zero_grad", (get_batch, student_train(zero_grad="never"))),
    ("zero_grad", (get_batch, student_train(zero_grad="after backward"))),
    ("zero_grad", (get_batch, student_train(zero_grad="after backward, to zeros"))),  # weight decay still acts
    ("clip", (get_batch, student_train(clip="never"))),
    ("clip", (get_batch, student_train(clip="before backward"))),
    ("final evaluation|at the end|max_steps", (get_batch, student_train(final=False))),
    ("before the update|before the step|evaluat", (get_batch, student_train(eval_after_step=True, final=False))),
    ("model.train\\(\\)|train\\(\\) again|dropout", (get_batch, student_train(back_to_train=False))),
    ("model.eval\\(\\)|eval", (get_batch, student_train(eval_mode=False))),
    ("val_data|validation", (get_batch, student_train(val_source="train"))),
    ("item|float", (get_batch, student_train(item=False))),
    ("AdamW", (get_batch, student_train(optimizer_class=torch.optim.Adam))),
    ("generator", (get_batch, student_train(train_generator=False))),
    ("step 0|eval_interval|0, eval_interval", (get_batch, student_train(eval_every=lambda s, n: s % n == 0 and s > 0))),
    ("learning_rate|lr", (get_batch, student_train(lr=3e-4))),
    ("created anew", (get_batch, student_train(optimizer_each_step=True))),
    ("clip_grad_value_\\).*clip the global norm", (get_batch, student_train(clip="by value"))),
    ("learning rate changes during training: step 3 ran with lr=0.0015", (get_batch, student_train(step_lr=True))),
    ("with max_steps=10 and eval_interval=5 there is no evaluation at max_steps=10",
     (get_batch, student_train(final="unless a multiple"))),
    ("evaluation at max_steps=10 runs twice", (get_batch, student_train(loop_to_max_steps=True))),
    ("average eval_batches=2 batches of val_data, got 10: use the eval_batches argument",
     (get_batch, student_train(fixed_eval_batches=10))),
    ("different validation batches.*get_batch\\(val_data, batch_size, block_size, generator\\)",
     (get_batch, student_train(val_generator=False))),
    ("weight_decay=0.1 \\(default 0.01\\)", (get_batch, student_train(optimizer_settings={"weight_decay": 0.1}))),
    ("betas=\\[0.9, 0.95\\]", (get_batch, student_train(optimizer_settings={"betas": (0.9, 0.95)}))),
    ("dtype torch.long.*got int32 and int32", (lambda *args: tuple(t.int() for t in get_batch(*args)), train)),
    ("dtype torch.long.*got int64 and float32", (float_targets, train)),
    ("should return two tensors x, y, got list and list: torch.stack",
     (lambda *args: tuple(list(t) for t in get_batch(*args)), train)),
    ("use the batch_size and block_size arguments, not fixed numbers",
     (lambda data, batch_size, block_size, generator=None: get_batch(data, batch_size, 8, generator), train)),
    ("high bound is excluded",  # torch.randint(len(data) - block_size + 1, ...): a window runs past the end
     (batch_bug(window(0), window(1), high=lambda d, b: len(d) - b + 1), train)),
    ("high bound is excluded", (batch_by_index_past_the_end, train)),
]


def batch_by_index(data, batch_size, block_size, generator=None):
    """Advanced indexing with an index matrix, y read as x's rows one later."""
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    index = starts.unsqueeze(1) + torch.arange(block_size).unsqueeze(0)
    return data[index], data[index + 1]


def train_at_planned_steps(model, train_data, val_data, max_steps=500, batch_size=16, learning_rate=1e-3,
                           eval_interval=100, eval_batches=10, grad_clip=1.0, seed=0):
    """The evaluation steps planned as a set (max_steps added once), validation batches from a second generator,
    torch.inference_mode, and the losses averaged as one tensor."""
    generator, val_generator = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed + 1)
    block_size = model.config.block_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    history = {"loss": [], "eval_step": [], "val_loss": []}
    planned = sorted(set(range(0, max_steps, eval_interval)) | {max_steps})
    for step in range(max_steps + 1):
        if step in planned:
            model.eval()
            with torch.inference_mode():
                losses = torch.stack([model(*get_batch(val_data, batch_size, block_size, val_generator))[1]
                                      for _ in range(eval_batches)])
            model.train()
            history["eval_step"].append(step)
            history["val_loss"].append(losses.mean().item())
        if step == max_steps:
            break
        _, loss = model(*get_batch(train_data, batch_size, block_size, generator))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=grad_clip)
        optimizer.step()
        history["loss"].append(loss.item())
    return history


CHECKS = {check.exercise: check for check in (checks.check_mlp, checks.check_block, checks.check_gpt_constructor,
                                              checks.check_forward, checks.check_generate, checks.check_training_loop)}
STUDENT_BUGS = {"mlp": MLP_BUGS, "block": BLOCK_BUGS, "gpt_constructor": CONSTRUCTOR_BUGS, "forward": FORWARD_BUGS,
                "generate": GENERATE_BUGS, "training_loop": TRAINING_BUGS}
MORE_VALID = {
    "mlp": [MLP, SequentialMLP, FunctionalMLP, ManualGeluMLP],
    "block": [Block, InlineBlock, DictBlock, FunctionalNormBlock, InlineMLPBlock],
    "gpt_constructor": [GPT, ListGPT, TiedOtherWayGPT, DictBlockGPT, ScaledInitGPT],
    "forward": [GPT, ListGPT, type("TransposedLossGPT", (GPT,), {"forward": forward_transposed_loss}),
                type("NllGPT", (GPT,), {"forward": forward_nll}),
                type("FunctionalDropoutGPT", (GPT,), {"forward": forward_functional_dropout})],
    "generate": [GPT, ListGPT, WhereGenerateGPT, ValidatingGPT, EvalThenRestoreGPT],
    "training_loop": [(get_batch, train), (unfold_batches, train_with_set_to_none), (batch_by_index, student_train()),
                      (get_batch, student_train(zero_grad="start")), (get_batch, train_at_planned_steps)],
}

(test_more_valid_alternatives_pass_under_public_and_secret_seeds,
 test_each_student_mistake_is_named_under_the_public_and_every_secret_seed,
 test_a_stub_scores_nothing, test_every_exercise_has_a_broad_set) = student_tests(
    CHECKS, STUDENT_BUGS, MORE_VALID, secret_seeds=(1, 2))  # two secret seeds keep the run short


@pytest.mark.parametrize("exercise", ["mlp", "block", "gpt_constructor", "forward"])
def test_messages_speak_of_the_students_code_not_of_the_check(exercise):
    """No message of these checks says "judge" (internal plumbing) or that a layer is "not the cause"."""
    messages = [o.message for _, function in STUDENT_BUGS[exercise] for o in failures(CHECKS[exercise], function, 0)]
    assert messages and not [m for m in messages if "judge" in m or "not the cause" in m]


# ---------------------------------------------------------------- the judge trusts only outputs for its own inputs


def forged(results, output_of):
    """probe_all's results with each values test's output replaced, and zero layers claimed beside it."""
    out = []
    for name, data in results:
        if isinstance(data, dict) and "layout" in data:
            zeros = [{"in": n_in, "out": n_out, "weight": np.zeros((n_out, n_in), np.float32), "bias": None}
                     for n_in, n_out, _ in data["layout"]["linears"]]
            data = {**data, "linears": zeros, "norms": [{"weight": None, "bias": None}] * 2,
                    "result": {**data["result"], "output": output_of(data["result"]["output"])}}
        out.append((name, data))
    return out


@pytest.mark.parametrize("check, answer", [(checks.check_mlp, MLP), (checks.check_block, Block)])
def test_layers_claimed_by_the_sandbox_do_not_change_the_verdict(check, answer):
    """Zero layers with a zero output would be a consistent MLP; the judge redraws the layers from the seed, so
    the claim is ignored: the forged zeros fail, the honest output passes beside the same claim."""
    for seed in (0, 3):
        results = check.probe_all((answer,), seed)
        first = check.judge(forged(results, np.zeros_like), seed)[0]
        assert not first.passed, seed
        assert all(o.passed for o in check.judge(forged(results, lambda output: output), seed)), seed
