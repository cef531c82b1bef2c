"""Check for notebook 03's cross_attention(S1, S2, W_Q, W_K, W_V) on small matrices.

The probe calls the student's function on the worked example printed in the notebook, on random matrices (other
sizes in a grading run; n1, n2, d, d_k, d_v all different), on matrices whose scores reach the hundreds (exp
overflows unless the maximum is subtracted), on a single query (n1 = 1) and on float64 matrices, and reports what it
returned (its type and dtype) and which arguments it changed. The judge recomputes the answer from the reference
(coursekit.judging.attention): within float32 rounding is right; otherwise it names the usual mistake whose output
matches.
"""

from __future__ import annotations

import numpy as np
import torch

from coursekit.checks.core import Check, Test, type_and_value
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


def random_matrices(scale: float = 1.0, n1: int | None = None, dtype: torch.dtype = torch.float32) -> dict:
    """n1=5, n2=7, d=4, d_k=3, d_v=6 in a notebook; other sizes in a grading run. n1, n2, d, d_k and d_v all differ
    and none is 2 (the worked example's d_k) nor d_k ** 2, so that each scaling mistake (by sqrt(n1), sqrt(n2),
    sqrt(d), sqrt(d_v), d_k or a fixed sqrt(2)) gives other numbers. scale multiplies S1; n1 replaces its row count
    (1: one query); dtype is the matrices' dtype."""
    sizes = probe_sizes({"n1": 5, "n2": 7, "d": 4, "d_k": 3, "d_v": 6},
                        n1=[3, 4], n2=[9, 10], d=[7, 8], d_k=[5, 6], d_v=[11, 12])
    n1 = n1 or sizes["n1"]
    n2, d, d_k, d_v = (sizes[key] for key in ("n2", "d", "d_k", "d_v"))
    flat = probe_tensor(n1 * d + n2 * d + 2 * d * d_k + d * d_v)
    shapes = [(n1, d), (n2, d), (d, d_k), (d, d_k), (d, d_v)]
    pieces = flat.split([a * b for a, b in shapes])
    matrices = {name: piece.reshape(shape).to(dtype) for name, piece, shape in zip(NAMES, pieces, shapes)}
    matrices["S1"] = matrices["S1"] * scale
    return matrices


def large_matrices() -> dict:
    """Random matrices whose scores reach the hundreds: exp without the maximum subtracted overflows."""
    return random_matrices(scale=200.0)


def one_query() -> dict:
    """Random matrices with a single query (n1 = 1): the output must keep its query axis, shape (1, d_v)."""
    return random_matrices(n1=1)


def float64_matrices() -> dict:
    """Random matrices in float64: the output must be float64 too."""
    return random_matrices(dtype=torch.float64)


CROSS_MISTAKES = {
    "no scaling": "the scores are not scaled: divide S1 W_Q (S2 W_K)^T by sqrt(d_k), the width of W_Q and W_K",
    "1/d_k": "the scores are divided by d_k; divide by sqrt(d_k) (math.sqrt(W_K.shape[1]))",
    "times sqrt(d_k)": "the scores are multiplied by sqrt(d_k); divide by it instead",
    "sqrt(n1)": ("the scores are divided by sqrt(n1), the number of queries (S1.shape[0]); divide by sqrt(d_k), the "
                 "width of W_Q and W_K: the length of the vectors in each dot product"),
    "sqrt(n2)": ("the scores are divided by sqrt(n2), the number of keys (S2.shape[0]); divide by sqrt(d_k), the "
                 "width of W_Q and W_K: the length of the vectors in each dot product"),
    "1/sqrt(d)": ("the scores are divided by sqrt(d), the width of S1 and S2; divide by sqrt(d_k), the width of W_Q "
                  "and W_K: the length of the vectors in each dot product"),
    "sqrt(d_v)": "the scores are divided by sqrt(d_v); divide by sqrt(d_k), the length of the vectors in each dot product",
    "sqrt(2)": ("the scores are divided by a fixed sqrt(2), the worked example's sqrt(d_k): divide by "
                "math.sqrt(W_K.shape[1]), so that the scale follows d_k"),
    "softmax over the queries": ("the softmax runs over the wrong axis: each query's weights over the keys (a row "
                                 "of the (n1, n2) scores) should sum to 1: softmax(dim=-1)"),
    "causal": "there is a causal mask: cross-attention has none, every query may look at every key",
}


def _cross_probe(inputs_of):
    """What cross_attention returned (type_and_value, and its dtype) and the names of the arguments it changed."""
    def probe(cross_attention):
        inputs = inputs_of()
        given = {name: inputs[name].clone() for name in NAMES}
        try:
            returned = cross_attention(*(given[name] for name in NAMES))
        except RuntimeError as error:  # mismatched shapes: the judge says which sequence feeds which projection
            return {"error": f"RuntimeError: {error}"}
        return {"error": None, **type_and_value(returned), "dtype": str(getattr(returned, "dtype", "")),
                "changed": [name for name in NAMES if not torch.equal(given[name], inputs[name])]}
    return single_threaded(probe)


def _float32_rounding(S1, S2, W_Q, W_K, W_V) -> float:
    """How far float32 arithmetic may move the output: a score's rounding grows with the sum of its products'
    sizes (scores in the thousands move by 1e-4 and more), and moves the output by that times the values' size."""
    sizes = (S1.abs() @ W_Q.abs()) @ (S2.abs() @ W_K.abs()).T / W_K.size(1) ** 0.5
    return 1e-7 * float(sizes.max()) * float((S2 @ W_V).abs().max())


def _returned_problem(got: dict, shape: tuple, dtype: str) -> str | None:
    """What is wrong with what cross_attention returned, before its values are compared, or None."""
    problems = [
        (got["changed"], f"cross_attention changes its argument(s) {got['changed']} in place (e.g. S1.mul_(...), "
                         f"+=): the caller's matrices must stay as they were; use out-of-place operations"),
        (got["type"] == "ndarray", f"cross_attention returns a NumPy array: return the torch tensor itself (no "
                                   f".numpy()), of shape {shape}"),
        (got["type"] != "Tensor", f"cross_attention should return one torch tensor of shape {shape}, got a "
                                  f"{got['type']}"),
        (got["dtype"] != dtype, f"cross_attention returns {got['dtype']} for {dtype[6:]} inputs: expected {dtype}; "
                                f"compute in the inputs' dtype (no .float(), .double() or .half())"),
    ]
    return next((message for found, message in problems if found), None)


def _error_advice(error: str, description: str, inputs: dict) -> str:
    """What an error raised on the test's matrices most likely means."""
    (n1, d), (n2, _) = inputs["S1"].shape, inputs["S2"].shape
    advice = (f"on {description} cross_attention raised {error[:200]}. S1 has n1 = {n1} rows (the queries), S2 has "
              f"n2 = {n2} (the keys and values): Q = S1 @ W_Q ({n1}, d_k), K = S2 @ W_K ({n2}, d_k), V = S2 @ W_V "
              f"({n2}, d_v), so the weights Q @ K.T are ({n1}, {n2}) and the output ({n1}, d_v)")
    if "cannot be multiplied" in error or "size of tensor" in error:
        return advice + ": does K or V come from S1 instead of S2?"
    return advice


def _cross_judge(description, inputs_of):
    def judge(got):
        inputs = inputs_of()
        from coursekit.judging.attention import cross  # the reference's replays: judge side only

        doubles = [inputs[name].double() for name in NAMES]
        expected = cross(*doubles)
        n1, n2 = inputs["S1"].size(0), inputs["S2"].size(0)
        d_v = inputs["W_V"].size(1)
        if got["error"]:
            return _error_advice(got["error"], description, inputs)
        problem = _returned_problem(got, (n1, d_v), str(inputs["S1"].dtype))
        if problem:
            return problem
        got = got["value"]
        if got.shape != (n1, d_v) and got.shape == tuple(size for size in (n1, d_v) if size != 1):
            return (f"on {description} the output has shape {got.shape}, expected (n1, d_v) = ({n1}, {d_v}): a "
                    f"dimension of size 1 was dropped (a .squeeze() removes every size-1 axis, here the one query's); "
                    f"leave it out, or squeeze only an axis you added yourself (.squeeze(0))")
        if got.shape == (n2, d_v) and n1 != n2:
            return (f"on {description} the output has shape {got.shape}, one row per key: the queries come from S1 "
                    f"(one output row per row of S1, shape ({n1}, {d_v})), keys and values from S2")
        if got.shape != (n1, d_v):
            return f"on {description} the output should have shape (n1, d_v) = ({n1}, {d_v}), got {got.shape}"
        if not np.isfinite(got).all():
            return (f"on {description} the output is not finite (inf or NaN): exp of large scores overflows. Use "
                    f"torch.softmax, or subtract each row's maximum before exp")
        got = torch.from_numpy(got).double()
        scale = max(1.0, float(expected.abs().max()))
        difference = float((got - expected).abs().max())
        if difference <= max(2e-5 * scale, _float32_rounding(*doubles)):  # float16, or 2 decimals: 1e-4 and more
            return None
        replays = {variant: cross(*doubles, variant=variant) for variant in CROSS_MISTAKES}
        named = [message for variant, message in CROSS_MISTAKES.items()  # a mistake that changes nothing here is none
                 if float((replays[variant] - expected).abs().max()) > 2e-5 * scale
                 and torch.allclose(got, replays[variant], atol=1e-4 * scale, rtol=1e-4)]
        if len(named) > 1:  # on the worked example sqrt(d_v) = d_k = 2: two mistakes give the same numbers
            return f"on {description} two mistakes give these numbers: {named[0]}; or {named[1]}"
        if named:
            return named[0]
        printed = np.round(expected.numpy(), 4)
        if np.abs(got.numpy() - printed).max() <= 1e-6:
            return (f"on {description} the output is the exact answer rounded to 4 decimals, {printed.tolist()}: is it "
                    f"copied from the notebook's printed output (a hard-coded tensor) or rounded? It must be computed "
                    f"from the inputs S1, S2, W_Q, W_K, W_V")
        if difference < 5e-3 * scale:
            return (f"on {description} the output is off by up to {difference:.2g}: close, but far above float32 "
                    f"rounding (about 1e-6). Is part of the computation done in half precision (.half(), float16) "
                    f"or rounded? Compute everything in the inputs' float32")
        return (f"on {description} the output should be {np.round(expected.numpy(), 4).tolist()}, got "
                f"{np.round(got.numpy(), 4).tolist()}: Q = S1 @ W_Q, K = S2 @ W_K, V = S2 @ W_V, "
                f"softmax(Q @ K.T / sqrt(d_k), dim=-1) @ V")
    return judge


CROSS_CASES = [("the worked example", worked_example, 1.0),
               ("random matrices (n1=5, n2=7, d=4, d_k=3, d_v=6)", random_matrices, 4.0),
               ("random matrices with scores in the hundreds", large_matrices, 0.5),
               ("one query (S1 with n1 = 1 row)", one_query, 0.5),
               ("random float64 matrices", float64_matrices, 0.5)]

check_cross_attention = Check(
    exercise="cross_attention",
    expects=["a function cross_attention(S1, S2, W_Q, W_K, W_V) -> tensor of shape (n1, d_v)"],
    tests=[Test(f"cross_attention on {description}", _cross_probe(inputs_of), _cross_judge(description, inputs_of),
                weight=weight) for description, inputs_of, weight in CROSS_CASES],
)
