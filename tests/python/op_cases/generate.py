"""Cases for the generating ops (src/ops/generate.cc): Constant,
ConstantOfShape, Range, EyeLike, OneHot, Trilu, CumSum.

Tensor-valued attributes are onnx TensorProtos; `dtype` attributes carry ONNX
type codes (the importer turns them into tessera dtypes).
"""
import numpy as np
from onnx import TensorProto, numpy_helper

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def i64(*shape, lo=-50, hi=50):
    return rng().integers(lo, hi, shape, dtype=np.int64)


def scalar(v, dtype):
    return np.array(v, dtype=dtype)


def constant_cases():
    return [
        Case("Constant", {}, {"value": numpy_helper.from_array(f32(2, 3))}, id="tensor"),
        Case("Constant", {}, {"value": numpy_helper.from_array(i64(4))}, id="tensor_int64"),
        Case("Constant", {}, {"value_float": float(f32(1)[0])}, id="value_float"),
        Case("Constant", {}, {"value_floats": [float(v) for v in f32(3)]}, id="value_floats"),
        Case("Constant", {}, {"value_int": int(i64(1)[0])}, id="value_int"),
        Case("Constant", {}, {"value_ints": [int(v) for v in i64(5)]}, id="value_ints"),
    ]


def constant_of_shape_cases():
    return [
        Case("ConstantOfShape", {"shape": np.array([2, 3], np.int64)}, constants=["shape"], id="default_zero"),
        Case("ConstantOfShape", {"shape": np.array([4], np.int64)},
             {"value": numpy_helper.from_array(np.array([7], np.int64))}, constants=["shape"], id="int64"),
        Case("ConstantOfShape", {"shape": np.array([2, 1, 3], np.int64)},
             {"value": numpy_helper.from_array(f32(1))}, constants=["shape"], id="float_value"),
        Case("ConstantOfShape", {"shape": np.array([], np.int64)},
             {"value": numpy_helper.from_array(np.array([2.5], np.float32))}, constants=["shape"], id="scalar"),
        Case("ConstantOfShape", {"shape": np.array([2, 3], np.int64)},
             {"value": numpy_helper.from_array(np.array([1.5], np.float16))}, constants=["shape"], id="float16"),
    ]


def range_case(start, limit, delta, dtype, id):
    inputs = {"start": scalar(start, dtype), "limit": scalar(limit, dtype), "delta": scalar(delta, dtype)}
    return Case("Range", inputs, constants=list(inputs), id=id)


def range_cases():
    g = rng()
    return [
        range_case(int(g.integers(-5, 5)), int(g.integers(10, 30)), int(g.integers(1, 4)), np.int64, "int64"),
        range_case(10, -3, -3, np.int32, "int32_negative"),
        range_case(float(g.uniform(-2, 0)), float(g.uniform(1, 3)), 0.25, np.float32, "float"),
        range_case(1.0, -1.0, -0.3, np.float64, "float64_negative"),
        range_case(5, 5, 1, np.int64, "empty"),
    ]


def eye_like_cases():
    return [
        Case("EyeLike", {"x": f32(3, 3)}, id="square"),
        Case("EyeLike", {"x": f32(3, 5)}, {"k": 2}, id="k2"),
        Case("EyeLike", {"x": f32(4, 3)}, {"k": -1, "dtype": TensorProto.INT64}, id="k_neg_int64"),
        Case("EyeLike", {"x": i64(2, 4)}, {"dtype": TensorProto.FLOAT}, id="int_to_float"),
        Case("EyeLike", {"x": f32(3, 4).astype(np.float16)}, {"k": -1}, id="float16"),
    ]


def one_hot_cases():
    values = np.array([0.0, 1.0], np.float32)
    depth = lambda d, t=np.int64: np.array(d, t)  # noqa: E731
    return [
        Case("OneHot", {"i": rng().integers(-4, 4, (5,)), "depth": depth(4), "values": values},
             constants=["depth", "values"], id="default_axis"),
        Case("OneHot", {"i": rng().integers(0, 3, (2, 3)), "depth": depth(3), "values": np.array([-1.0, 2.5], np.float32)},
             {"axis": 0}, constants=["depth", "values"], id="axis0"),
        Case("OneHot", {"i": rng().integers(-5, 8, (2, 4)), "depth": depth(5), "values": np.array([3, 9], np.int64)},
             {"axis": 1}, constants=["depth", "values"], id="out_of_range_int64"),
        Case("OneHot", {"i": rng().integers(0, 6, (4,)), "depth": depth(6.0, np.float32), "values": values},
             {"axis": -2}, constants=["depth", "values"], id="float_depth"),
        Case("OneHot", {"i": rng().integers(-3, 3, (2, 5)), "depth": depth(3), "values": np.array([0.0, 1.0], np.float16)},
             {"axis": -1}, constants=["depth", "values"], id="float16_values"),
    ]


def trilu_cases():
    k = lambda v: np.array(v, np.int64)  # noqa: E731
    return [
        Case("Trilu", {"x": f32(4, 5)}, id="upper"),
        Case("Trilu", {"x": f32(4, 5)}, {"upper": 0}, id="lower"),
        Case("Trilu", {"x": f32(2, 3, 4), "k": k(1)}, constants=["k"], id="upper_k1_batched"),
        Case("Trilu", {"x": i64(5, 3), "k": k(-2)}, {"upper": 0}, constants=["k"], id="lower_kneg_int64"),
        Case("Trilu", {"x": f32(3, 3), "k": k(5)}, constants=["k"], id="k_past_end"),
        Case("Trilu", {"x": f32(2, 4, 5).astype(np.float16), "k": k(-1)}, constants=["k"], id="upper_kneg_float16"),
        Case("Trilu", {"x": rng().random((3, 4)) > 0.5}, {"upper": 0}, id="lower_bool"),
    ]


def cumsum_cases():
    axis = lambda v, t=np.int64: np.array(v, t)  # noqa: E731
    return [
        Case("CumSum", {"x": f32(3, 4), "axis": axis(1)}, constants=["axis"], id="axis1"),
        Case("CumSum", {"x": f32(5), "axis": axis(0)}, {"exclusive": 1}, constants=["axis"], id="exclusive"),
        Case("CumSum", {"x": f32(3, 4), "axis": axis(-2, np.int32)}, {"reverse": 1}, constants=["axis"], id="reverse_int32_axis"),
        Case("CumSum", {"x": i64(2, 3, 4), "axis": axis(-1)}, {"exclusive": 1, "reverse": 1}, constants=["axis"],
             id="both_int64"),
        Case("CumSum", {"x": f32(3, 4).astype(np.float16), "axis": axis(-1)}, constants=["axis"], id="float16"),
        Case("CumSum", {"x": i64(3, 4).astype(np.int32), "axis": axis(0)}, {"reverse": 1}, constants=["axis"], id="reverse_int32"),
    ]


CASES = (constant_cases() + constant_of_shape_cases() + range_cases() + eye_like_cases() + one_hot_cases()
         + trilu_cases() + cumsum_cases())
