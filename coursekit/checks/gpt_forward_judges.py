"""Judges of notebook 04's forward check: plain data from gpt_forward_probes.py -> None, or the mistake.

A judge reads only the probe model's layout and what forward returned. It redraws the weights from the layout
and the test's seed (gpt_common.seeded_gpt) and the tokens from the seed (gpt_forward_probes.tokens), and replays
the right answer and the usual mistakes with the reference (coursekit.judging.gpt, imported inside the judges: it
is never in a sandbox). With n_layer=2 the Blocks' recorded inputs and outputs are checked at both ends: the first
Block gets the judge's own embeddings, each Block the previous one's output, and the logits are the judge's
lm_head(ln_f(...)) of the last one's.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.gpt_common import B, PUBLIC, T, backward_advice, close, dropout_probability, seeded_gpt
from coursekit.checks.gpt_forward_probes import C, CHANGED_FROM, V, changed_tokens, tokens
from coursekit.checks.probing import dropout_summary, single_threaded

CONSTRUCTOR_FIRST = "fix check_gpt_constructor first (it finds the Blocks in an nn.ModuleList, ln_f and the LM head)"


def _values(got) -> dict | None:
    """The probe model's wte, wpe, ln_f and LM head as load_seeded_gpt filled them, redrawn from the test's seed;
    None when its layout lacks one of them."""
    layout = got["layout"]
    drawn = seeded_gpt(layout)
    tables = {tuple(table.shape): table for table in drawn["embeddings"]}
    heads = [layer for layer in drawn["linears"] if (layer["in"], layer["out"]) == (C, V)]
    final_norms = [drawn["norms"][int(i)] for i in layout["final_norms"]]
    if (V, C) not in tables or (PUBLIC.block_size, C) not in tables or not heads or len(final_norms) != 1:
        return None
    return {"wte": tables[V, C], "wpe": tables[PUBLIC.block_size, C], "ln_f": final_norms[0], "head": heads[-1]}


def _forward_problem(result, what: str) -> str | None:
    if result["error"] and "index -1 is out of range" in result["error"]:
        return (f"{what} raised {result['error']}: forward picks one Block (self.transformer.h[-1]) and a model with "
                f"n_layer=0 has none; run every Block in order, for block in self.transformer.h: x = block(x)")
    if result["error"]:
        if "index out of range" in result["error"]:
            return (f"{what} raised {result['error']}: the positions must be torch.arange(T) for the T tokens of idx "
                    f"(T <= block_size), not the token ids")
        if "must match the size of tensor" in result["error"]:
            return (f"{what} raised {result['error']}: idx has T = {T} tokens, fewer than block_size; the positions "
                    f"are torch.arange(T), not torch.arange(block_size)")
        return f"{what} raised {result['error']}"
    if not result["pair"]:
        return f"{what} should return a pair (logits, loss), got {result['returned']}"
    logits = result["logits"]
    if not isinstance(logits, np.ndarray):
        return f"{what}: the logits should be a tensor, got {logits}"
    if logits.shape == (B, V):
        return (f"{what}: the logits have shape {logits.shape}, only the last position; forward returns logits for "
                f"every position, (B, T, vocab_size) = {(B, T, V)} (generate picks the last one itself)")
    if logits.shape != (B, T, V):
        return f"{what}: the logits should have shape (B, T, vocab_size) = {(B, T, V)}, got {logits.shape}"
    return None


# ---------------------------------------------------------------- n_layer=0: the embeddings, the loss, the dropout


EMBEDDING_MISTAKES = {
    "": None,
    "no positions": "the position embeddings are not added: x = wte(idx) + wpe(torch.arange(T))",
    "positions from 1": "the positions start at 1; they are torch.arange(T) = 0 .. T - 1",
    "last positions": ("the positions are the last T of block_size; a sequence of T tokens uses positions 0 .. T - 1 "
                       "(torch.arange(T))"),
    "no final LayerNorm": "the final LayerNorm (ln_f) is not applied before the LM head",
    "probabilities": ("forward returns probabilities; return the raw logits (F.cross_entropy and sampling apply the "
                      "softmax themselves)"),
    "positions from ids": ("the position embeddings are looked up with the token ids; look them up with the positions "
                           "torch.arange(T)"),
}


def _matching_logits(got, logits) -> tuple[str, torch.Tensor] | str:
    """The n_layer=0 logits the returned ones match, as (name, the judge's logits): the right ones ("") or a named
    mistake's, from the redrawn weights and tokens; or what is wrong."""
    from coursekit.judging.gpt import embedding_candidates  # the reference's replays: judge side only

    values = _values(got)
    if values is None:
        return CONSTRUCTOR_FIRST
    candidates = embedding_candidates(tokens()[0], values["wte"], values["wpe"], values["ln_f"], values["head"])
    for name, expected in candidates.items():
        if close(logits, expected):
            return name, expected
    return ("with n_layer=0 the logits should be lm_head(ln_f(wte(idx) + wpe(arange(T)))), and they are not "
            "(none of the usual mistakes matches)")


@single_threaded
def embeddings_judge(got):
    problem = _forward_problem(got["result"], f"forward(idx) on idx of shape {(B, T)} with n_layer=0")
    if problem:
        return problem
    matched = _matching_logits(got, got["result"]["logits"])
    return matched if isinstance(matched, str) else EMBEDDING_MISTAKES[matched[0]]


@single_threaded
def loss_none_judge(got):
    result = got["without"]
    problem = _forward_problem(result, "forward(idx) without targets")
    if problem:
        return problem
    if result["loss"]["type"] != "NoneType":
        return (f"forward(idx) without targets should return (logits, None): there is nothing to compare with, got a "
                f"loss of type {result['loss']['type']}")
    matched = _matching_logits(got, result["logits"])
    return matched if isinstance(matched, str) else None


LOSS_MISTAKES = {
    "": None,
    "sum": "the loss is the sum over positions; F.cross_entropy's default mean is what we want",
    "shifted again": ("forward shifts the targets again: the targets passed in are already the next tokens "
                      "(y[t] = x[t + 1]), so compare logits[:, t] with targets[:, t]"),
    "inputs as targets": ("the loss compares the logits with idx, the inputs; compare them with targets (the next "
                          "tokens): F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))"),
    "probabilities": "the loss is computed on probabilities; F.cross_entropy takes the raw logits",
}


@single_threaded
def loss_judge(got):
    """The loss replayed on the judge's own logits (those the returned ones match) and its own idx and targets."""
    result = got["with"]
    if result["error"] and "Expected target size" in result["error"]:
        return ("F.cross_entropy got the logits as (B, T, vocab_size): it wants one row per prediction, so flatten "
                "both: F.cross_entropy(logits.reshape(-1, vocab_size), targets.reshape(-1))")
    if result["error"] and "view size is not compatible" in result["error"]:
        return (f"forward(idx, targets) raised {result['error']}: targets here is a slice (windows[:, 1:], as a "
                f"training batch often is), which .view(-1) cannot flatten; use targets.reshape(-1)")
    problem = _forward_problem(result, "forward(idx, targets)")
    if problem:
        return problem
    loss = result["loss"]
    if loss["type"] != "Tensor" or not isinstance(loss["value"], np.ndarray) or loss["value"].size != 1:
        return f"the loss should be a 0-dimensional tensor (what F.cross_entropy returns), got a {loss['type']}"
    matched = _matching_logits(got, result["logits"])
    if isinstance(matched, str):
        return matched
    from coursekit.judging.gpt import loss_candidates  # the reference's replays: judge side only

    value = float(loss["value"].reshape(-1)[0])
    candidates = loss_candidates(matched[1].double(), *tokens())
    for name, expected in candidates.items():
        if abs(value - expected) < 1e-4 * max(1.0, abs(expected)):
            return LOSS_MISTAKES[name]
    flat = candidates[""]
    return f"the loss should be F.cross_entropy of the returned logits and the targets ({flat:.4f}), got {value:.4f}"


@single_threaded
def embedding_dropout_judge(got):
    p, runs = dropout_probability(), got["runs"]
    first, second = runs["eval"]
    if not all(isinstance(value, np.ndarray) for value in (first, second, runs["train"])):
        return "fix the errors reported by the other tests first"
    if not np.array_equal(first, second):
        return "in eval mode two calls gave different logits: use nn.Dropout modules (they follow model.eval())"
    if isinstance(_matching_logits(got, first), str):
        return "fix the logits in eval mode first (see the first test)"
    calls = dropout_summary(runs["calls"], {"n_embd": C, "T": T})
    wrong = [call["p"] for call in calls if abs(call["p"] - p) > 1e-9]
    if wrong:
        return (f"the embedding dropout uses p = {round(wrong[0], 4)} though config.dropout = {p}: "
                f"nn.Dropout(config.dropout)")
    if np.allclose(runs["train"], first, atol=1e-7) or not calls:
        return (f"with config.dropout = {p} and n_layer=0, training mode gives the same logits as eval mode: forward "
                f"has no embedding dropout. x = self.transformer.drop(tok_emb + pos_emb) before the Blocks")
    return _dropout_site_problem(got, runs["train"])


def _dropout_site_problem(got, train_logits) -> str | None:
    """None when the one dropout call of an n_layer=0 forward dropped the judge's own wte[idx] + wpe[0 .. T-1] and
    the training-mode logits are lm_head(ln_f(...)) of what it returned."""
    from coursekit.judging.gpt import embedded, head_logits  # the reference's replays: judge side only

    values, idx, dropped = _values(got), tokens()[0], got["dropped"]
    wte, wpe = values["wte"], values["wpe"]
    embeddings = embedded(idx, wte, wpe)
    fix = "drop the sum once, before the Blocks: x = self.transformer.drop(wte(idx) + wpe(pos))"
    if len(dropped) > 1:
        twice = " (the token embeddings, then the sum again)" if close(dropped[0]["input"], wte[idx]) else ""
        return f"with n_layer=0 forward applies dropout {len(dropped)} times{twice}: {fix}"
    given = dropped[0]["input"]
    if not close(given, embeddings):
        part = "the token embeddings" if close(given, wte[idx]) else "the position embeddings" if close(
            given, wpe[:T]) else "something other than the embeddings' sum"
        return f"the embedding dropout is applied to {part} alone, so the rest is never dropped: {fix}"
    if not close(train_logits, head_logits(torch.as_tensor(dropped[0]["output"]), values["ln_f"], values["head"])):
        return ("in training mode the logits are not lm_head(ln_f(x)) of the dropped embeddings x: the embedding "
                f"dropout's output must be what runs on; {fix}")
    return None


# ---------------------------------------------------------------- gradients


EMBEDDING_NAMES = {"wte": "the token embedding (wte)", "wpe": "the position embedding (wpe)",
                   "ln_f weight": "the final LayerNorm's gain (ln_f)", "ln_f bias": "the final LayerNorm's bias (ln_f)"}
CUT_OFF = ("part of forward is cut off from autograd (a .detach(), .data or torch.no_grad()), so it would never "
           "learn: keep every step from the embeddings to the loss differentiable")


def _student_gradients(got) -> dict:
    """The n_layer=0 probe's gradients under the names of judging.gpt.embedding_gradients."""
    layout = got["layout"]
    tables = [tuple(shape) for shape in layout["embeddings"]]
    found = {"wte": got["embedding_gradients"][tables.index((V, C))],
             "wpe": got["embedding_gradients"][tables.index((PUBLIC.block_size, C))]}
    gain, bias = got["norm_gradients"][int(layout["final_norms"][0])]
    return {**found, "ln_f weight": gain, "ln_f bias": bias}


@single_threaded
def gradient_judge(got):
    """n_layer=0: the gradients of wte, wpe and ln_f are the judge's own; n_layer=2: every parameter gets one."""
    for run, what in ((got, "forward with n_layer=0"), (got["blocks"], "forward with n_layer=2")):
        error = run["error"]
        if error and ("has no attribute 'backward'" in error or "not subscriptable" in error):
            return "fix forward's loss first (see the loss test): loss.backward() needs the loss tensor"
        if error:
            return backward_advice(error, what)
    from coursekit.judging.gpt import embedding_gradients  # the reference's replays: judge side only

    values = _values(got)
    if values is None:
        return CONSTRUCTOR_FIRST
    student = _student_gradients(got)
    expected = embedding_gradients(*tokens(), values["wte"], values["wpe"], values["ln_f"], values["head"])
    missing = [EMBEDDING_NAMES[name] for name in expected if student[name] is None]
    if missing:
        return f"after loss.backward() {' and '.join(missing)} got no gradient: {CUT_OFF}"
    for name, gradient in expected.items():
        if not close(student[name], gradient, atol=1e-4):
            return (f"after loss.backward() with n_layer=0 the gradient of {EMBEDDING_NAMES[name]} is not the "
                    f"loss's: {CUT_OFF}")
    missing = [name for name, state in got["blocks"]["parameters"].items() if state != "nonzero"]
    if missing:
        return (f"after loss.backward() with n_layer=2, {len(missing)} parameter(s) got no gradient "
                f"({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''}): {CUT_OFF}")
    return None


# ---------------------------------------------------------------- n_layer=2: the Blocks, causality


def _chain_problem(got, run, idx, what: str) -> str | None:
    """None when forward ran the Blocks in order, the first on the judge's own embeddings of idx, each on the
    previous one's output, and returned the judge's lm_head(ln_f(...)) of the last one's output."""
    from coursekit.judging.gpt import embedded, head_logits, layer_norm  # the reference's replays: judge side only

    problem = _forward_problem(run["result"], what)
    if problem:
        return problem
    values = _values(got)
    if got["blocks"] != PUBLIC.n_layer or values is None:
        return CONSTRUCTOR_FIRST
    calls = run["calls"]
    if not calls:
        return ("forward never runs the Blocks: after the embeddings, x = block(x) for every block in "
                "self.transformer.h, then ln_f and lm_head")
    if [call["block"] for call in calls] != list(range(PUBLIC.n_layer)):
        return (f"with n_layer={PUBLIC.n_layer} forward ran the Blocks {[call['block'] for call in calls]}: run each "
                f"Block once, in order (for block in self.transformer.h: x = block(x))")
    if not all(isinstance(call[key], np.ndarray) and call[key].shape == (B, T, C) for call in calls
               for key in ("input", "output")):
        return f"each Block should take and return one tensor of shape (B, T, n_embd) = {(B, T, C)}"
    embeddings = embedded(idx, values["wte"], values["wpe"])
    if not close(calls[0]["input"], embeddings):
        return ("the first Block does not get the embeddings: x = self.transformer.drop(wte(idx) + "
                "wpe(torch.arange(T))), then x = block(x) for every block")
    for before, after in zip(calls, calls[1:]):
        if close(after["input"], layer_norm(values["ln_f"], torch.as_tensor(before["output"]))):
            return ("ln_f runs after every Block: the next Block must get the previous one's output itself; apply "
                    "the final LayerNorm once, after the loop: logits = self.lm_head(self.transformer.ln_f(x))")
        if not close(after["input"], torch.as_tensor(before["output"])):
            return "each Block must get the previous Block's output: x = block(x), not block(embeddings)"
    logits, ln_f, head = run["result"]["logits"], values["ln_f"], values["head"]
    if close(logits, head_logits(torch.as_tensor(calls[-1]["output"]), ln_f, head)):
        return None
    if close(logits, head_logits(embeddings, ln_f, head)):
        return ("the logits come from the embeddings, not from the Blocks' output: apply ln_f and lm_head to x after "
                "the loop over the Blocks")
    return "the logits should be lm_head(ln_f(x)) of the last Block's output x"


@single_threaded
def blocks_judge(got):
    return _chain_problem(got, got["runs"][0], tokens()[0], "forward(idx) with n_layer=2")


@single_threaded
def causal_judge(got):
    idx, at = tokens()[0], CHANGED_FROM
    before, after = got["runs"]
    problem = _chain_problem(got, before, idx, "forward(idx) with n_layer=2") or \
        _chain_problem(got, after, changed_tokens(idx), "forward(idx) with n_layer=2 on other tokens")
    if problem:
        return problem
    before, after = before["result"]["logits"], after["result"]["logits"]
    if not np.allclose(before[:, :at], after[:, :at], atol=1e-5):
        return (f"changing the tokens at positions {at}-{T - 1} changed the logits at positions 0-{at - 1}: the model "
                f"sees the future")
    if np.allclose(before[:, at:], after[:, at:], atol=1e-6):
        return f"changing the tokens at positions {at}-{T - 1} did not change their logits: does forward use idx?"
    return None
