"""RMSNormalization cases (src/ops/rms_norm.cc): ONNX opset 23, which ONNX Runtime 1.30+ runs."""
import numpy as np

from . import Case, rng


def f(*shape, dtype=np.float32, scale=1.0):
    return (rng().standard_normal(shape) * scale).astype(dtype)


CASES = [
    Case("RMSNormalization", {"X": f(2, 5, 8), "scale": f(8)}, opset=23, id="last-axis"),
    Case("RMSNormalization", {"X": f(2, 5, 8), "scale": f(5, 8)}, attrs={"axis": 1}, opset=23, id="axis1"),
    Case("RMSNormalization", {"X": f(2, 5, 8), "scale": f(8)}, attrs={"axis": -2}, opset=23, id="neg-axis-1d-scale"),
    Case("RMSNormalization", {"X": f(4, 64, scale=100.0), "scale": f(64)}, attrs={"epsilon": 1e-3}, opset=23, id="eps"),
    Case("RMSNormalization", {"X": f(3, 4096), "scale": f(4096)}, constants=["scale"], opset=23, id="const-4096"),
    Case("RMSNormalization", {"X": f(2, 3, 6, dtype=np.float64), "scale": f(6, dtype=np.float64)}, opset=23, id="f64"),
    Case("RMSNormalization", {"X": f(2, 3, 16, dtype=np.float16), "scale": f(16, dtype=np.float16)}, opset=23,
         id="float16"),
    # CUDA's register-resident rows (2 chunks of 16 bytes per thread) and a row too long for them (the general kernel)
    Case("RMSNormalization", {"X": f(5, 4096, dtype=np.float16), "scale": f(4096, dtype=np.float16)}, opset=23,
         id="float16-4096"),
    Case("RMSNormalization", {"X": f(2, 8200), "scale": f(8200)}, opset=23, id="long-row"),
]
