"""TensorScatter cases (src/ops/kv_cache.cc): ONNX opset 24's KV-cache write, which ONNX Runtime 1.30+ runs."""
import numpy as np

from . import Case, rng


def f(*shape, dtype=np.float32):
    return rng().standard_normal(shape).astype(dtype)


def starts(batch, cache_len, t):
    return rng().integers(0, cache_len - t + 1, size=batch).astype(np.int64)


CASES = [
    Case("TensorScatter", {"past_cache": f(2, 3, 8, 4), "update": f(2, 3, 1, 4), "write_indices": starts(2, 8, 1)},
         opset=24, id="decode-step"),
    Case("TensorScatter", {"past_cache": f(3, 2, 16, 8), "update": f(3, 2, 5, 8), "write_indices": starts(3, 16, 5)},
         opset=24, id="prefill"),
    Case("TensorScatter", {"past_cache": f(2, 6, 4), "update": f(2, 6, 4), "write_indices": None},
         opset=24, id="full-no-indices"),
    Case("TensorScatter", {"past_cache": f(2, 10, 3, 4), "update": f(2, 2, 3, 4), "write_indices": starts(2, 10, 2)},
         attrs={"axis": 1}, opset=24, id="axis1"),
    Case("TensorScatter", {"past_cache": f(2, 2, 8, 4, dtype=np.float16), "update": f(2, 2, 3, 4, dtype=np.float16),
                           "write_indices": starts(2, 8, 3)}, opset=24, id="float16"),
]
