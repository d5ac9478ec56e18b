"""Cases for the pooling ops (src/ops/pool.cc): MaxPool (with Indices in both
storage orders), AveragePool (count_include_pad, ceil_mode, auto_pad,
dilations from opset 19), LpPool, and the Global* forms; 1-D, 2-D and 3-D.

ceil_mode cases include windows that run past the end padding (ONNX Runtime
clips them, and the count_include_pad divisor stops at the padded edge).
ONNX Runtime has no float64 AveragePool or GlobalMaxPool on CPU, so float64
is checked through MaxPool here and in tests/cpp/conv_ops_test.cc.
"""
import numpy as np

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def window_specs():
    """(id, input shape, attributes) shared by MaxPool, AveragePool and LpPool."""
    return [
        ("2d_basic", (1, 3, 8, 8), {"kernel_shape": [2, 2], "strides": [2, 2]}),
        ("2d_overlap", (2, 2, 7, 9), {"kernel_shape": [3, 3], "strides": [1, 2]}),
        ("2d_pads", (1, 2, 7, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
        ("2d_asym_pads", (1, 2, 6, 7), {"kernel_shape": [3, 2], "pads": [0, 1, 2, 0]}),
        ("2d_ceil", (1, 2, 6, 6), {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
        ("2d_ceil_pads", (1, 2, 6, 7), {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
        ("2d_ceil_clipped", (1, 1, 5, 5), {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1}),
        ("2d_same_upper", (1, 2, 7, 8), {"kernel_shape": [3, 2], "strides": [2, 3], "auto_pad": "SAME_UPPER"}),
        ("2d_same_lower", (1, 2, 7, 8), {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "SAME_LOWER"}),
        ("2d_valid", (1, 2, 7, 8), {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "VALID"}),
        ("2d_valid_ceil", (1, 2, 7, 8), {"kernel_shape": [2, 3], "strides": [2, 2], "auto_pad": "VALID", "ceil_mode": 1}),
        ("1d", (2, 3, 15), {"kernel_shape": [4], "strides": [3], "pads": [1, 2]}),
        ("1d_ceil", (1, 2, 10), {"kernel_shape": [3], "strides": [2], "ceil_mode": 1}),
        ("3d", (1, 2, 5, 6, 7), {"kernel_shape": [2, 3, 2], "strides": [2, 2, 1], "pads": [1, 0, 1, 0, 1, 1]}),
    ]


def dilated_specs():
    """Dilations: MaxPool always, AveragePool from opset 19, LpPool from opset 18."""
    return [
        ("2d_dilated", (1, 2, 9, 10), {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 0]}),
        ("2d_dilated_ceil", (1, 2, 9, 9), {"kernel_shape": [2, 2], "dilations": [2, 2], "strides": [2, 2],
                                           "pads": [1, 1, 1, 1], "ceil_mode": 1}),
        ("1d_dilated", (1, 2, 12), {"kernel_shape": [3], "dilations": [3], "strides": [2]}),
    ]


def max_pool_cases():
    cases = [Case("MaxPool", {"x": f32(*s)}, dict(a), id=name) for name, s, a in window_specs() + dilated_specs()]
    cases += [
        Case("MaxPool", {"x": f32(2, 3, 6, 7)}, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
             n_outputs=2, id="indices"),
        Case("MaxPool", {"x": f32(2, 2, 5, 6)}, {"kernel_shape": [2, 3], "strides": [1, 2], "storage_order": 1},
             n_outputs=2, id="indices_col_major"),
        Case("MaxPool", {"x": f32(1, 2, 9, 9)}, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1,
                                                 "dilations": [1, 2]}, n_outputs=2, id="indices_ceil_dilated"),
        Case("MaxPool", {"x": f32(2, 3, 11)}, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}, n_outputs=2,
             id="indices_1d"),
        Case("MaxPool", {"x": f32(1, 2, 4, 5, 6)}, {"kernel_shape": [2, 2, 3], "storage_order": 1}, n_outputs=2,
             id="indices_3d_col_major"),
        Case("MaxPool", {"x": f32(1, 2, 6, 6).astype(np.float16)}, {"kernel_shape": [2, 2], "strides": [2, 2]},
             id="float16"),
        Case("MaxPool", {"x": f32(1, 2, 6, 6).astype(np.float64)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
             id="float64"),
        Case("MaxPool", {"x": rng().integers(-128, 128, (1, 2, 6, 6), dtype=np.int8)}, {"kernel_shape": [2, 2]},
             id="int8"),
        Case("MaxPool", {"x": rng().integers(0, 256, (1, 2, 6, 6), dtype=np.uint8)},
             {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}, id="uint8"),
        Case("MaxPool", {"x": f32(1, 2, 6, 6)}, {"kernel_shape": [2, 2], "strides": [2, 2]}, opset=13, id="opset13"),
        Case("MaxPool", {"x": f32(1, 2, 9, 8).astype(np.float16)},
             {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1}, id="float16_ceil_asym_pads"),
        Case("MaxPool", {"x": f32(1, 2, 9, 10).astype(np.float16)},
             {"kernel_shape": [3, 2], "dilations": [2, 3], "pads": [1, 1, 2, 0]}, id="float16_dilated"),
    ]
    return cases


def average_pool_cases():
    cases = []
    for name, s, a in window_specs():
        cases.append(Case("AveragePool", {"x": f32(*s)}, dict(a), id=name))
        if "pads" in a or a.get("ceil_mode") or a.get("auto_pad", "").startswith("SAME"):
            cases.append(Case("AveragePool", {"x": f32(*s)}, {**a, "count_include_pad": 1}, id=name + "_include_pad"))
    for name, s, a in dilated_specs():
        cases.append(Case("AveragePool", {"x": f32(*s)}, dict(a), opset=19, id=name))
        cases.append(Case("AveragePool", {"x": f32(*s)}, {**a, "count_include_pad": 1}, opset=19, id=name + "_include_pad"))
    cases += [
        Case("AveragePool", {"x": f32(1, 2, 6, 6).astype(np.float16)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
             id="float16"),
        Case("AveragePool", {"x": f32(1, 2, 6, 6)}, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, opset=13, id="opset13"),
        Case("AveragePool", {"x": f32(1, 2, 9, 8).astype(np.float16)},
             {"kernel_shape": [3, 2], "strides": [2, 2], "pads": [1, 0, 0, 1], "ceil_mode": 1, "count_include_pad": 1},
             id="float16_ceil_asym_include_pad"),
    ]
    return cases


def lp_pool_cases():
    cases = []
    for name, s, a in window_specs():
        cases.append(Case("LpPool", {"x": f32(*s)}, dict(a), id=name))
    for name, s, a in dilated_specs():
        cases.append(Case("LpPool", {"x": f32(*s)}, dict(a), id=name))
    cases += [
        Case("LpPool", {"x": f32(1, 2, 6, 6)}, {"kernel_shape": [2, 2], "p": 1}, id="p1"),
        Case("LpPool", {"x": f32(1, 2, 6, 6)}, {"kernel_shape": [3, 3], "p": 3, "pads": [1, 1, 1, 1]}, id="p3"),
        Case("LpPool", {"x": f32(1, 2, 7, 7).astype(np.float16)}, {"kernel_shape": [3, 3], "strides": [2, 2]},
             id="float16"),
    ]
    return cases


def global_cases():
    cases = []
    for op in ("GlobalMaxPool", "GlobalAveragePool", "GlobalLpPool"):
        cases += [
            Case(op, {"x": f32(2, 3, 5, 7)}, id="2d"),
            Case(op, {"x": f32(2, 4, 9)}, id="1d"),
            Case(op, {"x": f32(1, 2, 3, 4, 5)}, id="3d"),
            Case(op, {"x": f32(1, 16, 14, 14)}, id="wide"),
            Case(op, {"x": f32(2, 3, 33, 35)}, id="large_plane"),  # more pixels than a CUDA block has threads
            Case(op, {"x": f32(1, 3, 17, 19).astype(np.float16)}, id="float16_large_plane"),
        ]
    cases += [
        Case("GlobalLpPool", {"x": f32(2, 3, 4, 4)}, {"p": 3}, id="p3"),
        Case("GlobalAveragePool", {"x": f32(1, 3, 4, 4).astype(np.float16)}, id="float16"),
    ]
    return cases


CASES = max_pool_cases() + average_pool_cases() + lp_pool_cases() + global_cases()
