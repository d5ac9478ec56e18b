"""Reduce* cases (src/ops/reduction.cc): axes as an attribute (opset 17, and
ReduceSum at opset 13 takes an input) and as an input (opset 18)."""
import numpy as np

from . import Case, rng

OPS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
       "ReduceSumSquare", "ReduceLogSum", "ReduceLogSumExp"]


def data(op, *shape):
    x = rng().standard_normal(shape).astype(np.float32)
    return np.abs(x) + 0.5 if op == "ReduceLogSum" else x  # LogSum needs a positive sum


def axes(*a):
    return np.array(a, dtype=np.int64)


CASES = []
for op in OPS:
    CASES += [
        Case(op, {"data": data(op, 2, 3, 4), "axes": axes(1)}, opset=18, constants=["axes"], id="input-axis"),
        Case(op, {"data": data(op, 2, 3, 4), "axes": axes(0, -1)}, attrs={"keepdims": 0}, opset=18, constants=["axes"], id="input-two-axes"),
        Case(op, {"data": data(op, 2, 3, 4)}, opset=18, id="all"),
        Case(op, {"data": data(op, 2, 3, 4)}, attrs={"keepdims": 0}, opset=18, id="all-nokeep"),
        Case(op, {"data": data(op, 2, 3, 4), "axes": np.zeros(0, np.int64)}, attrs={"noop_with_empty_axes": 1}, opset=18,
             constants=["axes"], id="noop"),
    ]
    if op == "ReduceSum":
        CASES.append(Case(op, {"data": data(op, 3, 5), "axes": axes(-1)}, opset=13, constants=["axes"], id="opset13"))
    else:
        CASES += [
            Case(op, {"data": data(op, 2, 3, 4)}, attrs={"axes": [1]}, opset=17, id="attr-axis"),
            Case(op, {"data": data(op, 2, 3, 4)}, attrs={"axes": [0, 2], "keepdims": 0}, opset=17, id="attr-axes-nokeep"),
        ]
CASES += [
    Case("ReduceSum", {"data": rng().integers(-9, 9, (3, 4)).astype(np.int64), "axes": axes(1)}, opset=18, constants=["axes"], id="i64"),
    Case("ReduceMax", {"data": rng().integers(-9, 9, (3, 4)).astype(np.int32), "axes": axes(0)}, opset=18, constants=["axes"], id="i32"),
    Case("ReduceMean", {"data": data("ReduceMean", 2, 3, 4).astype(np.float64), "axes": axes(2)}, opset=18, constants=["axes"], id="f64"),
]
