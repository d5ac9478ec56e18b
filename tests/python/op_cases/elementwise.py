"""Cases for the elementwise ops (src/ops/elementwise.cc): binary arithmetic,
variadic Max/Min/Sum/Mean, comparisons and logic, the unary math and
activation functions, Clip, Where, Cast/CastLike, IsNaN, Not and Dropout.

Inputs are fresh random arrays each run, kept inside each op's domain (Log and
Sqrt see positive numbers, integer Div/Mod never a zero divisor) unless a case
is about the edge itself (Round's halves, Softplus far from zero, IsNaN).
Cast's `to` is an ONNX TensorProto code here; the importer converts it.
"""
import numpy as np
from onnx import TensorProto

from . import Case, rng


def f32(*shape, lo=None, hi=None):
    if lo is None:
        return rng().standard_normal(shape).astype(np.float32)
    return rng().uniform(lo, hi, shape).astype(np.float32)


def f16(*shape, **kw):
    return f32(*shape, **kw).astype(np.float16)


def f64(*shape, **kw):
    return f32(*shape, **kw).astype(np.float64)


def ints(*shape, lo=-20, hi=20, dtype=np.int64):
    return rng().integers(lo, hi, shape).astype(dtype)


def nonzero_ints(*shape, lo=-9, hi=10, dtype=np.int64):
    x = ints(*shape, lo=lo, hi=hi, dtype=dtype)
    x[x == 0] = 1
    return x


def bools(*shape):
    return rng().random(shape) > 0.5


def binary_cases():
    cases = []
    for op in ("Add", "Sub", "Mul", "Div"):
        denom = f32(3, 4, lo=0.5, hi=2.0) * np.where(bools(3, 4), 1, -1).astype(np.float32)
        cases += [
            Case(op, {"a": f32(2, 3, 4), "b": f32(2, 3, 4) if op != "Div" else denom[None].repeat(2, 0)}, id="same"),
            Case(op, {"a": f32(2, 3, 4), "b": denom[0]}, id="bcast_last"),
            Case(op, {"a": f32(2, 1, 4), "b": denom[:, :1]}, id="bcast_both"),
            Case(op, {"a": f32(7, 129), "b": np.float32(1.5)}, id="scalar_b"),
            Case(op, {"a": np.float32(-2.5), "b": denom}, id="scalar_a"),
            Case(op, {"a": f32(2, 3, 4), "b": denom}, constants=["b"], id="const_b"),
            Case(op, {"a": ints(3, 4), "b": nonzero_ints(3, 4)}, id="int64"),
            Case(op, {"a": ints(5, dtype=np.int32), "b": nonzero_ints(1, dtype=np.int32)}, id="int32"),
            Case(op, {"a": f16(4, 5), "b": f16(5, lo=0.5, hi=2.0)}, id="float16"),
            Case(op, {"a": f64(4, 5), "b": f64(4, 1, lo=0.5, hi=2.0)}, id="float64"),
            Case(op, {"a": f32(0, 3), "b": f32(3)}, id="empty"),
        ]
    cases += [
        Case("Pow", {"a": f32(3, 4, lo=0.1, hi=3.0), "b": f32(3, 4, lo=-2.0, hi=2.0)}, id="float"),
        Case("Pow", {"a": f32(3, 4), "b": np.array([2.0, 3.0, 0.5, -1.0], np.float32)}, constants=["b"],
             id="neg_base_int_exponents"),
        Case("Pow", {"a": f32(2, 5), "b": np.float32(2.0)}, constants=["b"], id="square"),
        Case("Pow", {"a": f32(2, 5, lo=0.1, hi=3.0), "b": np.array([2, 3, 1, 0, 4], np.int64)}, id="int64_exponent"),
        Case("Pow", {"a": ints(6, lo=-4, hi=5), "b": ints(6, lo=0, hi=4)}, id="int64"),
        Case("Mod", {"a": ints(4, 6), "b": nonzero_ints(4, 6)}, id="int64_sign_of_divisor"),
        Case("Mod", {"a": ints(4, 6, dtype=np.int32), "b": nonzero_ints(6, dtype=np.int32)}, id="int32_bcast"),
        Case("Mod", {"a": ints(4, 6), "b": nonzero_ints(4, 6)}, {"fmod": 1}, id="int64_fmod"),
        Case("Mod", {"a": f32(4, 6) * 5, "b": f32(4, 6, lo=0.5, hi=2.0)}, {"fmod": 1}, id="float_fmod"),
    ]
    return cases


def variadic_cases():
    cases = []
    for op in ("Max", "Min", "Sum", "Mean"):
        cases += [
            Case(op, {"a": f32(3, 4)}, id="one"),
            Case(op, {"a": f32(3, 4), "b": f32(3, 4)}, id="two"),
            Case(op, {"a": f32(2, 3, 4), "b": f32(4), "c": f32(3, 1), "d": np.float32(0.25)}, id="four_bcast"),
            Case(op, {"a": f16(3, 4), "b": f16(4)}, id="float16"),
        ]
    for op in ("Max", "Min"):  # Sum and Mean are float-only in ONNX
        cases.append(Case(op, {"a": ints(3, 4), "b": ints(4), "c": ints(3, 1)}, id="int64"))
    nan = np.array([np.nan, 1.0, np.nan, -1.0], np.float32)
    cases += [
        Case("Max", {"a": nan, "b": np.array([0.0, np.nan, 2.0, -2.0], np.float32)}, id="nan_propagates"),
        Case("Min", {"a": nan, "b": np.array([0.0, np.nan, 2.0, -2.0], np.float32)}, id="nan_propagates"),
        Case("Max", {"a": ints(5, dtype=np.int32), "b": ints(5, dtype=np.int32)}, id="int32"),
    ]
    return cases


def compare_cases():
    cases = []
    for op in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
        a = np.round(f32(3, 4) * 2) / 2  # coarse grid so equal pairs occur
        b = np.round(f32(3, 4) * 2) / 2
        b[0] = a[0]
        cases += [
            Case(op, {"a": a, "b": b}, id="float_with_ties"),
            Case(op, {"a": a, "b": b[1]}, id="bcast"),
            Case(op, {"a": ints(4, 5, lo=-3, hi=3), "b": ints(5, lo=-3, hi=3)}, id="int64"),
            Case(op, {"a": ints(6, lo=-3, hi=3, dtype=np.int32), "b": np.int32(0)}, id="int32_scalar"),
            Case(op, {"a": f32(2, 3), "b": np.array([np.nan, 0.0, np.inf], np.float32)}, id="nan_inf"),
        ]
    cases.append(Case("Equal", {"a": bools(3, 4), "b": bools(4)}, id="bool"))
    for op in ("And", "Or", "Xor"):
        cases += [
            Case(op, {"a": bools(3, 4), "b": bools(3, 4)}, id="same"),
            Case(op, {"a": bools(2, 3, 4), "b": bools(3, 1)}, id="bcast"),
            Case(op, {"a": bools(5), "b": np.array(True)}, constants=["b"], id="const_scalar"),
        ]
    cases += [
        Case("Not", {"x": bools(3, 4)}),
        Case("Not", {"x": np.array(False)}, id="scalar"),
    ]
    return cases


# Unary ops: (op, input maker, attrs); every one also gets a float16 case where
# ONNX Runtime's CPU provider has a float16 kernel for it.
UNARY = [
    ("Neg", lambda: f32(3, 4), {}),
    ("Abs", lambda: f32(3, 4), {}),
    ("Exp", lambda: f32(3, 4) * 3, {}),
    ("Log", lambda: f32(3, 4, lo=1e-3, hi=50.0), {}),
    ("Sqrt", lambda: f32(3, 4, lo=0.0, hi=50.0), {}),
    ("Reciprocal", lambda: f32(3, 4, lo=0.2, hi=5.0) * np.where(bools(3, 4), 1, -1).astype(np.float32), {}),
    ("Tanh", lambda: f32(3, 4) * 3, {}),
    ("Erf", lambda: f32(3, 4) * 2, {}),
    ("Sigmoid", lambda: f32(3, 4) * 4, {}),
    ("Relu", lambda: f32(3, 4), {}),
    ("Sin", lambda: f32(3, 4) * 4, {}),
    ("Cos", lambda: f32(3, 4) * 4, {}),
    ("Floor", lambda: f32(3, 4) * 5, {}),
    ("Ceil", lambda: f32(3, 4) * 5, {}),
    ("Round", lambda: f32(3, 4) * 5, {}),
    ("Sign", lambda: np.round(f32(3, 4)), {}),
    ("LeakyRelu", lambda: f32(3, 4), {}),
    ("LeakyRelu", lambda: f32(3, 4), {"alpha": 0.2}),
    ("HardSigmoid", lambda: f32(3, 4) * 4, {}),
    ("HardSigmoid", lambda: f32(3, 4) * 4, {"alpha": 0.25, "beta": 0.4}),
    ("HardSwish", lambda: f32(3, 4) * 4, {}),
    ("Gelu", lambda: f32(3, 4) * 3, {}),
    ("Gelu", lambda: f32(3, 4) * 3, {"approximate": "tanh"}),
    ("Elu", lambda: f32(3, 4) * 2, {}),
    ("Elu", lambda: f32(3, 4) * 2, {"alpha": 0.5}),
    ("Softplus", lambda: f32(3, 4) * 3, {}),
    ("Identity", lambda: f32(3, 4), {}),
    ("Selu", lambda: f32(3, 4) * 2, {}),
    ("Selu", lambda: f32(3, 4) * 2, {"alpha": 1.5, "gamma": 1.1}),
    ("Celu", lambda: f32(3, 4) * 2, {}),
    ("Celu", lambda: f32(3, 4) * 2, {"alpha": 2.0}),
    ("Mish", lambda: f32(3, 4) * 3, {}),
    ("Softsign", lambda: f32(3, 4) * 3, {}),
]
OPSET = {"Gelu": 20}  # Gelu entered the default domain at opset 20
NO_FLOAT64 = {"Erf", "Gelu", "Celu"}  # float-only in ONNX (Celu) or in ONNX Runtime's CPU kernels
FLOAT16_UNARY = {"Neg", "Abs", "Exp", "Log", "Sqrt", "Reciprocal", "Tanh", "Erf", "Sigmoid", "Relu", "Floor",
                 "Ceil", "Round", "Sign", "LeakyRelu", "HardSigmoid", "Identity"}


def _label(attrs):
    return "_".join(f"{k}{v}" for k, v in sorted(attrs.items()))


def unary_cases():
    cases = []
    for op, make, attrs in UNARY:
        opset = OPSET.get(op, 18)
        label = _label(attrs)
        cases.append(Case(op, {"x": make()}, attrs, opset=opset, id=label or "float"))
        if not attrs:
            cases.append(Case(op, {"x": f32(7, 129)}, opset=opset, id="odd_size"))
            if op not in NO_FLOAT64:
                cases.append(Case(op, {"x": f64(2, 3)}, opset=opset, id="float64"))
            cases.append(Case(op, {"x": np.abs(f32()) + np.float32(0.5)}, opset=opset, id="scalar"))
            cases.append(Case(op, {"x": f32(0, 4)}, opset=opset, id="empty"))
            if op in FLOAT16_UNARY:
                x = make()
                cases.append(Case(op, {"x": x.astype(np.float16)}, opset=opset, id="float16"))
    for op in ("Neg", "Abs", "Sign"):
        cases.append(Case(op, {"x": ints(3, 4)}, id="int64"))
        cases.append(Case(op, {"x": ints(3, 4, dtype=np.int32)}, id="int32"))
    cases += [
        Case("Relu", {"x": ints(3, 4, dtype=np.int32)}, id="int32"),
        Case("Identity", {"x": ints(3, 4)}, id="int64"),
        Case("Identity", {"x": bools(3, 4)}, id="bool"),
        Case("Round", {"x": np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, -0.49, 0.51], np.float32)},
             id="halves_to_even"),
        Case("Softplus", {"x": np.array([-100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 80.0, 100.0], np.float32)},
             id="far_from_zero"),
        Case("Sigmoid", {"x": np.array([-100.0, -30.0, 0.0, 30.0, 100.0], np.float32)}, id="far_from_zero"),
        Case("Exp", {"x": np.array([-100.0, 0.0, 88.0, 89.0], np.float32)}, id="overflow_to_inf"),
        Case("Log", {"x": np.array([0.0, 1.0, 2.0, -1.0], np.float32)}, id="zero_and_negative"),
        Case("Sqrt", {"x": np.array([0.0, 4.0, -1.0], np.float32)}, id="negative"),
        Case("IsNaN", {"x": np.where(bools(3, 4), np.nan, f32(3, 4)).astype(np.float32)}),
        Case("IsNaN", {"x": np.array([np.inf, -np.inf, np.nan, 0.0], np.float16)}, id="float16_inf"),
        Case("IsNaN", {"x": np.array([np.nan, 1.0], np.float64)}, id="float64"),
    ]
    return cases


def clip_cases():
    lo, hi = np.float32(-0.5), np.float32(0.7)
    return [
        Case("Clip", {"x": f32(3, 4), "min": lo, "max": hi}, constants=["min", "max"], id="both"),
        Case("Clip", {"x": f32(3, 4), "min": lo, "max": hi}, id="bounds_as_inputs"),
        Case("Clip", {"x": f32(3, 4), "min": None, "max": hi}, constants=["max"], id="max_only"),
        Case("Clip", {"x": f32(3, 4), "min": lo}, constants=["min"], id="min_only"),
        Case("Clip", {"x": f32(3, 4)}, id="no_bounds"),
        Case("Clip", {"x": f32(7, 129) * 3, "min": np.float32(0.0), "max": np.float32(6.0)},
             constants=["min", "max"], id="relu6"),
        Case("Clip", {"x": ints(3, 4), "min": np.int64(-5), "max": np.int64(5)}, constants=["min", "max"], id="int64"),
        Case("Clip", {"x": f16(3, 4), "min": np.float16(-0.5), "max": np.float16(0.5)}, constants=["min", "max"],
             id="float16"),
    ]


def where_cases():
    return [
        Case("Where", {"c": bools(3, 4), "x": f32(3, 4), "y": f32(3, 4)}, id="same"),
        Case("Where", {"c": bools(3, 1), "x": f32(4), "y": f32(2, 1, 1)}, id="bcast_all"),
        Case("Where", {"c": bools(2, 3), "x": ints(2, 3), "y": np.int64(-1)}, constants=["y"], id="int64"),
        Case("Where", {"c": bools(1, 4), "x": f32(3, 4), "y": np.float32(-1e9)}, constants=["y"], id="mask_fill"),
        Case("Where", {"c": bools(5), "x": ints(5, dtype=np.int32), "y": ints(5, dtype=np.int32)}, id="int32"),
        Case("Where", {"c": bools(4), "x": f16(4), "y": f16(4)}, id="float16"),
    ]


def cast_cases():
    T = TensorProto
    wide = f32(3, 4) * 100
    return [
        Case("Cast", {"x": wide}, {"to": T.INT64}, id="f32_to_i64_truncates"),
        Case("Cast", {"x": wide}, {"to": T.INT32}, id="f32_to_i32"),
        Case("Cast", {"x": f32(3, 4, lo=-100, hi=100)}, {"to": T.INT8}, id="f32_to_i8"),
        Case("Cast", {"x": f32(3, 4, lo=0, hi=250)}, {"to": T.UINT8}, id="f32_to_u8"),
        Case("Cast", {"x": f32(3, 4)}, {"to": T.FLOAT16}, id="f32_to_f16"),
        Case("Cast", {"x": f16(3, 4)}, {"to": T.FLOAT}, id="f16_to_f32"),
        Case("Cast", {"x": f32(3, 4)}, {"to": T.DOUBLE}, id="f32_to_f64"),
        Case("Cast", {"x": f64(3, 4)}, {"to": T.FLOAT}, id="f64_to_f32"),
        Case("Cast", {"x": ints(3, 4, lo=-1000, hi=1000)}, {"to": T.FLOAT}, id="i64_to_f32"),
        Case("Cast", {"x": ints(3, 4, dtype=np.int32)}, {"to": T.INT64}, id="i32_to_i64"),
        Case("Cast", {"x": ints(3, 4, lo=-100, hi=100)}, {"to": T.INT32}, id="i64_to_i32"),
        Case("Cast", {"x": ints(3, 4, lo=0, hi=200, dtype=np.uint8)}, {"to": T.FLOAT}, id="u8_to_f32"),
        Case("Cast", {"x": ints(3, 4, lo=-100, hi=100, dtype=np.int8)}, {"to": T.INT64}, id="i8_to_i64"),
        Case("Cast", {"x": bools(3, 4)}, {"to": T.FLOAT}, id="bool_to_f32"),
        Case("Cast", {"x": bools(3, 4)}, {"to": T.INT64}, id="bool_to_i64"),
        Case("Cast", {"x": np.round(f32(3, 4))}, {"to": T.BOOL}, id="f32_to_bool"),
        Case("Cast", {"x": ints(3, 4, lo=-2, hi=3)}, {"to": T.BOOL}, id="i64_to_bool"),
        Case("Cast", {"x": f32(3, 4)}, {"to": T.FLOAT}, id="same_type"),
        Case("Cast", {"x": np.float32(2.75)}, {"to": T.INT64}, id="scalar"),
        Case("CastLike", {"x": wide, "like": np.zeros((), np.int64)}, constants=["like"], id="to_i64"),
        Case("CastLike", {"x": ints(3, 4), "like": f32(2)}, id="to_f32_like_input"),
        Case("CastLike", {"x": f32(3, 4), "like": np.zeros(1, np.float16)}, constants=["like"], id="to_f16"),
        Case("CastLike", {"x": bools(3, 4), "like": np.zeros((), np.float32)}, constants=["like"], id="bool_to_f32"),
    ]


def dropout_cases():
    return [
        Case("Dropout", {"x": f32(3, 4)}, id="inference"),
        Case("Dropout", {"x": f32(3, 4)}, n_outputs=2, id="with_mask"),
        Case("Dropout", {"x": f32(2, 3), "ratio": np.float32(0.3)}, constants=["ratio"], id="ratio"),
        Case("Dropout", {"x": f32(2, 3), "ratio": np.float32(0.3), "training_mode": np.array(False)},
             constants=["ratio", "training_mode"], n_outputs=2, id="training_off"),
    ]


CASES = binary_cases() + variadic_cases() + compare_cases() + unary_cases() + clip_cases() + where_cases() \
    + cast_cases() + dropout_cases()
