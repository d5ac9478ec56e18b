"""Softmax, LogSoftmax and LayerNormalization cases (src/ops/normalization.cc)."""
import numpy as np

from . import Case, rng


def f(*shape, dtype=np.float32, scale=1.0):
    return (rng().standard_normal(shape) * scale).astype(dtype)


CASES = []
for op in ("Softmax", "LogSoftmax"):
    CASES += [
        Case(op, {"x": f(3, 7)}, id="default-axis"),
        Case(op, {"x": f(2, 3, 4)}, attrs={"axis": 1}, id="axis1"),
        Case(op, {"x": f(2, 3, 4)}, attrs={"axis": 0}, id="axis0"),
        Case(op, {"x": f(2, 3, 4)}, attrs={"axis": -2}, id="neg-axis"),
        Case(op, {"x": f(2, 4, 16, 16, scale=30.0)}, id="large-logits"),
        Case(op, {"x": f(5, dtype=np.float64)}, id="f64"),
        Case(op, {"x": f(2, 3)}, attrs={"axis": -1}, opset=13, id="opset13"),
    ]
CASES += [
    Case("LayerNormalization", {"X": f(2, 5, 8), "Scale": f(8), "B": f(8)}, id="last-axis"),
    Case("LayerNormalization", {"X": f(2, 5, 8), "Scale": f(5, 8), "B": f(5, 8)}, attrs={"axis": 1}, id="axis1"),
    Case("LayerNormalization", {"X": f(2, 5, 8), "Scale": f(8)}, id="no-bias"),
    Case("LayerNormalization", {"X": f(4, 16, scale=100.0), "Scale": f(16), "B": f(16)}, attrs={"epsilon": 1e-3}, id="eps"),
    Case("LayerNormalization", {"X": f(3, 6), "Scale": f(6), "B": f(6)}, constants=["Scale", "B"], id="const"),
    Case("LayerNormalization", {"X": f(2, 3, 4), "Scale": f(4), "B": f(4)}, n_outputs=3, id="mean-invstd"),
    Case("LayerNormalization", {"X": f(2, 3, 4, dtype=np.float64), "Scale": f(4, dtype=np.float64), "B": f(4, dtype=np.float64)},
         id="f64"),
    # CUDA: GPT-2's rows in registers (f32 with |mean| >> std, and f16); a row of 1030 is not whole 16-byte chunks (the general kernel)
    Case("LayerNormalization", {"X": f(6, 768) + np.float32(50.0), "Scale": f(768), "B": f(768)}, id="gpt2-row-offset"),
    Case("LayerNormalization", {"X": f(4, 768, dtype=np.float16), "Scale": f(768, dtype=np.float16),
                                "B": f(768, dtype=np.float16)}, id="gpt2-row-f16"),
    Case("LayerNormalization", {"X": f(2, 1030), "Scale": f(1030), "B": f(1030)}, id="unaligned-row"),
    # CUDA: a warp a row (at most 128 chunks): rows that leave a block's last warps idle, 1 and 2 chunks a lane
    Case("LayerNormalization", {"X": f(7, 256), "Scale": f(256), "B": f(256)}, id="warp-rows-f32"),
    Case("LayerNormalization", {"X": f(9, 128, dtype=np.float16), "Scale": f(128, dtype=np.float16),
                                "B": f(128, dtype=np.float16)}, n_outputs=3, id="warp-rows-f16-mean-invstd"),
]
