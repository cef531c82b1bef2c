"""Check for notebook 03's cross_attention(S1, S2, W_Q, W_K, W_V) on small matrices.

The probe calls the student's function on the worked example printed in the notebook, on random matrices (other
sizes, n1 != n2, in a grading run) and on matrices whose scores reach the hundreds (exp overflows unless the
maximum is subtracted). The judge recomputes the answer from the reference (coursekit.judging.attention) and,
when it differs, names the usual mistake whose output matches.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, describe
from coursekit.checks.probing import probe_sizes, probe_tensor, single_threaded

# The worked example printed in the notebook: 2 queries, 3 keys/values, d = 3, d_k = 2, d_v = 4.
WORKED_EXAMPLE = {
    "S1": [[1.0, 0.0, 1.0], [0.0, 2.0, 0.0]],
    "S2": [[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [2.0, 0.0, 0.0]],
    "W_Q": [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]],
    "W_K": [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]],
    "W_V": [[1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 0.0, 1.0], [0.0, 0.0, 1.0, 1.0]],
}
NAMES = ("S1", "S2", "W_Q", "W_K", "W_V")


def worked_example() -> dict:
    return {name: torch.tensor(value) for name, value in WORKED_EXAMPLE.items()}


def random_matrices(scale: float = 1.0) -> dict:
    """n1=3, n2=5, d=4, d_k=3, d_v=2 in a notebook; other sizes in a grading run (n1 != n2, and d, d_k, d_v all
    different and d_k never the worked example's 2, so that each scaling mistake stays distinct). scale multiplies
    S1."""
    sizes = probe_sizes({"n1": 3, "n2": 5, "d": 4, "d_k": 3, "d_v": 2},
                        n1=[2, 3, 4], n2=[5, 6, 7], d=[6, 7], d_k=[3, 4], d_v=[2, 5])
    n1, n2, d, d_k, d_v = (sizes[key] for key in ("n1", "n2", "d", "d_k", "d_v"))
    flat = probe_tensor(n1 * d + n2 * d + 2 * d * d_k + d * d_v)
    shapes = [(n1, d), (n2, d), (d, d_k), (d, d_k), (d, d_v)]
    pieces = flat.split([a * b for a, b in shapes])
    matrices = {name: piece.reshape(shape) for name, piece, shape in zip(NAMES, pieces, shapes)}
    matrices["S1"] = matrices["S1"] * scale
    return matrices


def large_matrices() -> dict:
    """Random matrices whose scores reach the hundreds: exp without the maximum subtracted overflows."""
    return random_matrices(scale=200.0)


CROSS_MISTAKES = {
    "no scaling": "the scores are not scaled: divide S1 W_Q (S2 W_K)^T by sqrt(d_k), the width of W_Q and W_K",
    "1/d_k": "the scores are divided by d_k; divide by sqrt(d_k) (math.sqrt(W_K.shape[1]))",
    "times sqrt(d_k)": "the scores are multiplied by sqrt(d_k); divide by it instead",
    "1/sqrt(d)": ("the scores are divided by sqrt(d), the width of S1 and S2; divide by sqrt(d_k), the width of W_Q "
                  "and W_K: the length of the vectors in each dot product"),
    "sqrt(d_v)": "the scores are divided by sqrt(d_v); divide by sqrt(d_k), the length of the vectors in each dot product",
    "softmax over the queries": ("the softmax runs over the wrong axis: each query's weights over the keys (a row "
                                 "of the (n1, n2) scores) should sum to 1: softmax(dim=-1)"),
    "causal": "there is a causal mask: cross-attention has none, every query may look at every key",
}


def _cross_probe(inputs_of):
    def probe(cross_attention):
        inputs = inputs_of()
        return cross_attention(*(inputs[name].clone() for name in NAMES))
    return single_threaded(probe)


def _cross_judge(description, inputs_of):
    def judge(got):
        inputs = inputs_of()
        from coursekit.judging.attention import cross  # the reference's replays: judge side only

        doubles = [inputs[name].double() for name in NAMES]
        expected = cross(*doubles)
        n1, n2 = inputs["S1"].size(0), inputs["S2"].size(0)
        d_v = inputs["W_V"].size(1)
        if not isinstance(got, np.ndarray):
            return f"cross_attention should return a tensor of shape ({n1}, {d_v}), got {describe(got)}"
        if got.shape == (n2, d_v) and n1 != n2:
            return (f"on {description} the output has shape {got.shape}, one row per key: the queries come from S1 "
                    f"(one output row per row of S1, shape ({n1}, {d_v})), keys and values from S2")
        if got.shape != (n1, d_v):
            return f"on {description} the output should have shape (n1, d_v) = ({n1}, {d_v}), got {got.shape}"
        if not np.isfinite(got).all():
            return (f"on {description} the output is not finite (inf or NaN): exp of large scores overflows. Use "
                    f"torch.softmax, or subtract each row's maximum before exp")
        got = torch.from_numpy(got).double()
        tolerance = 1e-4 * max(1.0, float(expected.abs().max()))
        if torch.allclose(got, expected, atol=tolerance, rtol=1e-4):
            return None
        named = [message for variant, message in CROSS_MISTAKES.items()
                 if torch.allclose(got, cross(*doubles, variant=variant), atol=tolerance, rtol=1e-4)]
        if named:  # on the worked example sqrt(d_v) = d_k = 2: two mistakes can give the same numbers
            return named[0] if len(named) == 1 else f"{named[0]} (or: {named[1]})"
        return (f"on {description} the output should be {np.round(expected.numpy(), 4).tolist()}, got "
                f"{np.round(got.numpy(), 4).tolist()}: Q = S1 @ W_Q, K = S2 @ W_K, V = S2 @ W_V, "
                f"softmax(Q @ K.T / sqrt(d_k), dim=-1) @ V")
    return judge


CROSS_CASES = [("the worked example", worked_example, 1.0),
               ("random matrices (n1=3, n2=5, d=4, d_k=3, d_v=2)", random_matrices, 4.0),
               ("random matrices with scores in the hundreds", large_matrices, 0.5)]

check_cross_attention = Check(
    exercise="cross_attention",
    expects=["a function cross_attention(S1, S2, W_Q, W_K, W_V) -> tensor of shape (n1, d_v)"],
    tests=[Test(f"cross_attention on {description}", _cross_probe(inputs_of), _cross_judge(description, inputs_of),
                weight=weight) for description, inputs_of, weight in CROSS_CASES],
)
