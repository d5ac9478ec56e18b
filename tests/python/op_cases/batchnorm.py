"""Cases for BatchNormalization (inference form) and InstanceNormalization
(src/ops/batchnorm.cc): 2-D to 5-D inputs, epsilon, parameters as graph
inputs or initializers, float16/float64, and opsets 13-15 for BatchNorm.
ONNX Runtime has no float64 InstanceNormalization on CPU; tests/cpp covers it.
"""
import numpy as np

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def bn_inputs(shape, dtype=np.float32):
    c = shape[1]
    return {"x": f32(*shape).astype(dtype), "scale": f32(c).astype(dtype), "b": f32(c).astype(dtype),
            "mean": f32(c).astype(dtype), "var": (rng().random(c) + 0.1).astype(dtype)}


PARAMS = ["scale", "b", "mean", "var"]


def batch_norm_cases():
    return [
        Case("BatchNormalization", bn_inputs((2, 3, 5, 6)), id="2d"),
        Case("BatchNormalization", bn_inputs((2, 3, 5, 6)), constants=PARAMS, id="2d_const"),
        Case("BatchNormalization", bn_inputs((4, 5)), id="rank2"),
        Case("BatchNormalization", bn_inputs((2, 4, 7)), {"epsilon": 1e-2}, id="1d_epsilon"),
        Case("BatchNormalization", bn_inputs((1, 3, 2, 3, 4)), constants=PARAMS, id="3d"),
        Case("BatchNormalization", bn_inputs((1, 16, 8, 8)), {"momentum": 0.8}, constants=PARAMS, id="momentum_ignored"),
        Case("BatchNormalization", bn_inputs((2, 3, 4, 4), np.float16), constants=PARAMS, id="float16"),
        Case("BatchNormalization", bn_inputs((2, 3, 4, 4), np.float64), id="float64"),
        Case("BatchNormalization", bn_inputs((2, 3, 4, 4)), {"training_mode": 0}, opset=15, id="opset15"),
        Case("BatchNormalization", bn_inputs((2, 3, 4, 4)), opset=14, id="opset14"),
        Case("BatchNormalization", bn_inputs((2, 3, 4, 4)), opset=13, id="opset13"),
    ]


def instance_norm_cases():
    def ins(shape, dtype=np.float32):
        c = shape[1]
        return {"x": f32(*shape).astype(dtype), "scale": f32(c).astype(dtype), "b": f32(c).astype(dtype)}
    return [
        Case("InstanceNormalization", ins((2, 3, 5, 6)), id="2d"),
        Case("InstanceNormalization", ins((2, 3, 5, 6)), constants=["scale", "b"], id="2d_const"),
        Case("InstanceNormalization", ins((2, 4, 9)), {"epsilon": 1e-3}, id="1d_epsilon"),
        Case("InstanceNormalization", ins((1, 2, 3, 4, 5)), id="3d"),
        Case("InstanceNormalization", ins((1, 8, 32, 32)), id="large_plane"),
        Case("InstanceNormalization", ins((2, 3, 4, 4), np.float16), id="float16"),
    ]


CASES = batch_norm_cases() + instance_norm_cases()
