"""Checks for notebook 03's attention modules: AttentionHead, MultiHeadAttention and CausalSelfAttention.

Each check builds the student's class itself (at the notebook's sizes in public, at secret ones in a grading run)
and tests: the output equals causal scaled attention computed with the module's own weights (any names and layout:
attention_readings.py), also at another size with a block_size and T above the notebook's 8, and keeps its batch
axis for B = 1; the past never sees the future, even with scores of about +-1e6 (a finite mask value such as -1e4
shows there); dropout sits on the attention weights (and, with an output projection, on its output) with the given
p, its output used as it is (nothing renormalised after it);
a training step's backward pass reaches x and every parameter; and what the spec fixes beyond the outputs (which
projections have biases, the mask a registered buffer, no fused kernel in CausalSelfAttention). Probes:
attention_probes.py; judges: attention_judges.py; the backward pass and the spec: attention_spec.py.
cross_attention has its own module (cross_attention.py).
"""

from __future__ import annotations

from coursekit.checks.attention_judges import diagnose, dropout_judge, future_judge
from coursekit.checks.attention_probes import (build_causal, build_head, build_multi, distinct_widths, dropout_probe,
                                               future_probe, head_sizes, multi_sizes, other_head_sizes,
                                               other_heads_sizes, values_probe)
from coursekit.checks.attention_spec import (gradients_judge, gradients_probe, head_spec_judge,
                                             projection_spec_judge, spec_probe)
from coursekit.checks.core import Check, Test, is_module_class

head_dropout_sizes = distinct_widths(head_sizes)  # the dropout tests tell the sites apart by width
multi_dropout_sizes = distinct_widths(multi_sizes)


def _values_judge(sizes_of, with_output: bool, name: str):
    def judge(got):
        sizes = sizes_of()
        if with_output:
            what = f"{name}(n_embd={sizes['n_embd']}, n_head={sizes['n_head']}, block_size={sizes['block_size']})"
        else:
            what = f"{name}({sizes['n_embd']}, {sizes['head_size']}, {sizes['block_size']})"
        return diagnose(got, sizes, with_output, what, gpt2_layout=name == "CausalSelfAttention")
    return judge


def _value_test(description, build, sizes_of, with_output, name):
    return Test(description, values_probe(build, sizes_of), _values_judge(sizes_of, with_output, name), weight=6.0)


check_attention_head = Check(
    exercise="attention_head",
    expects=["the class AttentionHead itself, built as AttentionHead(n_embd, head_size, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        _value_test("AttentionHead(12, 4, 8, 0.0) on x (2, 6, 12): causal scaled attention with its own weights",
                    build_head, head_sizes, False, "AttentionHead"),
        Test("another size (AttentionHead(10, 5, 16) on T = 11)", values_probe(build_head, other_head_sizes),
             _values_judge(other_head_sizes, False, "AttentionHead"), weight=2.0),
        Test("changing future tokens leaves past outputs alone", future_probe(build_head, head_sizes),
             future_judge, weight=2.0, needs_right_outputs=True),
        Test("dropout on the attention weights in training, off in eval",
             dropout_probe(build_head, head_dropout_sizes, dropout=True),
             dropout_judge(head_dropout_sizes, "dropout", on_weights=True, on_output=False), weight=2.0,
             needs_right_outputs=True),
        Test("a training step's backward pass reaches x and every parameter",
             gradients_probe(build_head, head_sizes, dropout=True), gradients_judge, weight=1.0,
             needs_right_outputs=True),
        Test("no biases in the query, key and value projections; the mask a registered buffer",
             spec_probe(build_head, head_sizes), head_spec_judge, weight=0.5, needs_right_outputs=True),
    ],
)

check_multi_head_attention = Check(
    exercise="multi_head_attention",
    expects=["the class MultiHeadAttention itself, built as MultiHeadAttention(n_embd, n_head, block_size, dropout)"],
    accepts=[is_module_class],
    tests=[
        _value_test("MultiHeadAttention(24, 4, 8, 0.0) on x (2, 6, 24): heads, concatenation, projection",
                    build_multi, multi_sizes, True, "MultiHeadAttention"),
        Test("another head count and block (n_embd=12, n_head=3, block_size=16, T = 11)",
             values_probe(build_multi, other_heads_sizes),
             _values_judge(other_heads_sizes, True, "MultiHeadAttention"), weight=2.0),
        Test("changing future tokens leaves past outputs alone", future_probe(build_multi, multi_sizes),
             future_judge, weight=2.0, needs_right_outputs=True),
        Test("dropout on every head's weights and on the output in training, off in eval",
             dropout_probe(build_multi, multi_dropout_sizes, dropout=True),
             dropout_judge(multi_dropout_sizes, "dropout", on_weights=True, on_output=True), weight=2.0,
             needs_right_outputs=True),
        Test("a training step's backward pass reaches x and every parameter",
             gradients_probe(build_multi, multi_sizes, dropout=True), gradients_judge, weight=1.0,
             needs_right_outputs=True),
        Test("the output projection has its bias; the masks are registered buffers",
             spec_probe(build_multi, multi_sizes), projection_spec_judge(multi_sizes, fused=False), weight=0.5,
             needs_right_outputs=True),
    ],
)


def _other_heads_judge(got):
    sizes = other_heads_sizes()
    what = (f"CausalSelfAttention(config) with n_embd={sizes['n_embd']}, n_head={sizes['n_head']}, "
            f"block_size={sizes['block_size']}")
    mistake = diagnose(got, sizes, True, what, gpt2_layout=True)
    if mistake is None:
        return None
    for n_head in (1, 2, 3, 4, 6, 8, 12):
        if n_head != sizes["n_head"] and sizes["n_embd"] % n_head == 0 and \
                diagnose(got, {**sizes, "n_head": n_head, "head_size": sizes["n_embd"] // n_head}, True, what,
                         gpt2_layout=True) is None:
            return (f"{what} computes attention with {n_head} head(s): use config.n_head heads of size "
                    f"config.n_embd // config.n_head, not fixed numbers")
    return mistake


check_causal_self_attention = Check(
    exercise="causal_self_attention",
    expects=["the class CausalSelfAttention itself, built as CausalSelfAttention(config)"],
    accepts=[is_module_class],
    tests=[
        _value_test("CausalSelfAttention(n_embd=24, n_head=4, block_size=8) on x (2, 6, 24)",
                    build_causal, multi_sizes, True, "CausalSelfAttention"),
        Test("another head count and block (n_embd=12, n_head=3, block_size=16, T = 11)",
             values_probe(build_causal, other_heads_sizes), _other_heads_judge, weight=3.0),
        Test("changing future tokens leaves past outputs alone", future_probe(build_causal, multi_sizes),
             future_judge, weight=1.0, needs_right_outputs=True),
        Test("attention dropout (attn_pdrop) on the weights in training, off in eval",
             dropout_probe(build_causal, multi_dropout_sizes, attn_pdrop=True, resid_pdrop=False),
             dropout_judge(multi_dropout_sizes, "attn_pdrop", on_weights=True, on_output=False), weight=1.0,
             needs_right_outputs=True),
        Test("residual dropout (resid_pdrop) on the projected output in training",
             dropout_probe(build_causal, multi_dropout_sizes, attn_pdrop=False, resid_pdrop=True),
             dropout_judge(multi_dropout_sizes, "resid_pdrop", on_weights=False, on_output=True), weight=1.0,
             needs_right_outputs=True),
        Test("a training step's backward pass reaches x and every parameter",
             gradients_probe(build_causal, multi_sizes, attn_pdrop=True, resid_pdrop=True), gradients_judge,
             weight=1.0, needs_right_outputs=True),
        Test("c_attn and c_proj have their biases, the mask is a buffer, no F.scaled_dot_product_attention",
             spec_probe(build_causal, multi_sizes), projection_spec_judge(multi_sizes, fused=True), weight=1.0,
             needs_right_outputs=True),
    ],
)

