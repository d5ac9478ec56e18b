"""MatMul and Gemm cases (src/ops/linalg.cc)."""
import numpy as np

from . import Case, rng


def f(*shape, dtype=np.float32):
    return rng().standard_normal(shape).astype(dtype)


def i(*shape, dtype=np.int64):
    return rng().integers(-5, 5, shape).astype(dtype)


CASES = [
    Case("MatMul", {"A": f(3, 4), "B": f(4, 5)}, id="2d"),
    Case("MatMul", {"A": f(4), "B": f(4, 5)}, id="1d-left"),
    Case("MatMul", {"A": f(3, 4), "B": f(4)}, id="1d-right"),
    Case("MatMul", {"A": f(4), "B": f(4)}, id="1d-both"),
    Case("MatMul", {"A": f(2, 3, 4), "B": f(4, 5)}, id="batch-left"),
    Case("MatMul", {"A": f(3, 4), "B": f(2, 4, 5)}, id="batch-right"),
    Case("MatMul", {"A": f(2, 1, 3, 4), "B": f(1, 3, 4, 6)}, id="batch-broadcast"),
    Case("MatMul", {"A": f(2, 8, 16, 32), "B": f(2, 8, 32, 16)}, id="attention-like"),
    Case("MatMul", {"A": f(3, 4, dtype=np.float64), "B": f(4, 2, dtype=np.float64)}, id="f64"),
    Case("MatMul", {"A": i(3, 4), "B": i(4, 2)}, id="i64"),
    Case("MatMul", {"A": i(2, 3, 4, dtype=np.int32), "B": i(4, 2, dtype=np.int32)}, id="i32"),
    Case("MatMul", {"A": f(3, 4), "B": f(4, 5)}, constants=["B"], id="const-weight"),
    Case("MatMul", {"A": f(0, 4), "B": f(4, 5)}, id="empty"),
    Case("Gemm", {"A": f(3, 4), "B": f(4, 5)}, id="plain"),
    Case("Gemm", {"A": f(3, 4), "B": f(5, 4), "C": f(5)}, attrs={"transB": 1}, id="linear"),
    Case("Gemm", {"A": f(4, 3), "B": f(4, 5), "C": f(3, 5)}, attrs={"transA": 1}, id="transA"),
    Case("Gemm", {"A": f(4, 3), "B": f(5, 4), "C": f(3, 1)}, attrs={"transA": 1, "transB": 1}, id="both-trans"),
    Case("Gemm", {"A": f(3, 4), "B": f(4, 5), "C": f(1)}, attrs={"alpha": 0.5, "beta": 2.0}, id="alpha-beta"),
    Case("Gemm", {"A": f(3, 4), "B": f(4, 5), "C": f(3, 5)}, attrs={"beta": 0.0}, id="beta0"),
    Case("Gemm", {"A": f(3, 4), "B": f(5, 4), "C": f(5)}, attrs={"transB": 1}, constants=["B", "C"], id="const"),
    Case("Gemm", {"A": f(3, 4, dtype=np.float64), "B": f(4, 2, dtype=np.float64)}, id="f64"),
]
