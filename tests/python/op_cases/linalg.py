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
    # Shapes for the CUDA paths (gemm_lt.cc plan_layout): the skinny kernel
    # (m <= 16, k % 8 == 0; f16/bf16 under autocast) in both weight layouts,
    # folded batch, split k, alpha; the padded-N cuBLASLt path (N rows not
    # 16-byte aligned, constant B, m too large for the skinny kernel); and, for
    # more rows, the row-phase split of an unaligned N (B [N, K], any B) when
    # TESSERA_GEMM_ROW_PHASES=1 turns it on.
    Case("MatMul", {"A": f(8, 256), "B": f(256, 96)}, constants=["B"], id="skinny-kn"),
    Case("MatMul", {"A": f(2, 3, 264), "B": f(264, 40)}, constants=["B"], id="skinny-batch"),
    Case("Gemm", {"A": f(5, 512), "B": f(200, 512), "C": f(200)}, attrs={"transB": 1}, constants=["B", "C"],
         id="skinny-linear"),
    Case("Gemm", {"A": f(16, 1024), "B": f(40, 1024), "C": f(40)}, attrs={"transB": 1}, constants=["B", "C"],
         id="skinny-splitk"),
    Case("Gemm", {"A": f(4, 64), "B": f(64, 16), "C": f(16)}, attrs={"alpha": 0.5}, id="skinny-alpha"),
    Case("MatMul", {"A": f(40, 64), "B": f(64, 50)}, constants=["B"], id="pad-n"),
    Case("Gemm", {"A": f(24, 32), "B": f(37, 32), "C": f(37)}, attrs={"transB": 1}, constants=["B", "C"],
         id="pad-n-linear"),
    Case("Gemm", {"A": f(301, 64), "B": f(1001, 64), "C": f(1001)}, attrs={"transB": 1, "alpha": 0.5},
         id="phases-linear"),
    Case("Gemm", {"A": f(258, 32), "B": f(1002, 32)}, attrs={"transB": 1}, id="phases-two"),
]
