"""SkipLayerNormalization and SkipSimplifiedLayerNormalization cases (src/ops/skip_norm.cc): ONNX
Runtime's com.microsoft contrib ops, which fuse_skip_norm makes from a residual Add and the norm after it.
Output 3 is the sum (input + skip + bias); outputs 1 and 2 (training statistics) are left empty."""
import numpy as np

from . import Case, rng


def f(*shape, dtype=np.float32):
    return rng().standard_normal(shape).astype(dtype)


MS = "com.microsoft"


def skip_ln(x, skip, gamma, beta=None, bias=None, **kw):
    return Case("SkipLayerNormalization", {"input": x, "skip": skip, "gamma": gamma, "beta": beta, "bias": bias},
                n_outputs=4, omit_outputs=[1, 2], domain=MS, **kw)


def skip_rms(x, skip, gamma, bias=None, **kw):
    return Case("SkipSimplifiedLayerNormalization", {"input": x, "skip": skip, "gamma": gamma, "bias": bias},
                n_outputs=4, omit_outputs=[1, 2], domain=MS, **kw)


CASES = [
    skip_ln(f(2, 5, 8), f(2, 5, 8), f(8), f(8), attrs={"epsilon": 1e-5}, id="same-shape"),
    skip_ln(f(2, 5, 8), f(5, 8), f(8), None, f(8), id="broadcast-skip-bias-default-eps"),
    # GPT-2's token + position embeddings into ln_1: CUDA's warp-owned register rows
    skip_ln(f(2, 16, 768, dtype=np.float16), f(1, 16, 768, dtype=np.float16), f(768, dtype=np.float16),
            f(768, dtype=np.float16), attrs={"epsilon": 1e-5}, id="float16-768"),
    skip_ln(f(3, 4, 8200), f(3, 4, 8200), f(8200), f(8200), attrs={"epsilon": 1e-5}, id="long-row"),
    skip_rms(f(2, 5, 8), f(2, 5, 8), f(8), attrs={"epsilon": 1e-6}, id="same-shape"),
    skip_rms(f(2, 7, 16), f(7, 16), f(16), f(16), attrs={"epsilon": 1e-6}, id="broadcast-skip-bias"),
    # Llama's hidden size: CUDA's block-owned register rows
    skip_rms(f(2, 3, 4096, dtype=np.float16), f(2, 3, 4096, dtype=np.float16), f(4096, dtype=np.float16),
             attrs={"epsilon": 1e-5}, id="float16-4096"),
]
