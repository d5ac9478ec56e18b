"""Cases for the shape ops (src/ops/shape.cc): Reshape, Transpose, Concat,
Split, Slice, Squeeze, Unsqueeze, Expand, Flatten, Tile, Pad, Shape, Size,
DepthToSpace, SpaceToDepth.

Inputs are fresh random arrays each run; shape parameters (targets, starts,
axes, repeats, pads) are listed in `constants` so they become initializers.
"""
import numpy as np

from . import Case, rng

I64_MAX = np.iinfo(np.int64).max


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def i64(*shape, lo=-50, hi=50):
    return rng().integers(lo, hi, shape, dtype=np.int64)


def ints(*v, dtype=np.int64):
    return np.array(v, dtype=dtype)


def reshape_cases():
    return [
        Case("Reshape", {"x": f32(2, 3, 4), "shape": ints(4, -1)}, constants=["shape"], id="minus1"),
        Case("Reshape", {"x": f32(2, 3, 4), "shape": ints(0, -1)}, constants=["shape"], id="zero_copies"),
        Case("Reshape", {"x": f32(2, 3, 4), "shape": ints(-1)}, constants=["shape"], id="to_1d"),
        Case("Reshape", {"x": i64(6, 2), "shape": ints(3, 0, 2, 1)}, constants=["shape"], id="int64"),
        Case("Reshape", {"x": f32(0, 3), "shape": ints(3, 0)}, {"allowzero": 1}, constants=["shape"], id="allowzero"),
        Case("Reshape", {"x": f32(1, 2, 3), "shape": ints(2, 3)}, {"allowzero": 1}, constants=["shape"], id="allowzero_nonzero"),
    ]


def transpose_cases():
    return [
        Case("Transpose", {"x": f32(2, 3, 4)}, id="default_reverse"),
        Case("Transpose", {"x": f32(2, 3, 4, 5)}, {"perm": [0, 2, 1, 3]}, id="heads"),
        Case("Transpose", {"x": i64(3, 5)}, {"perm": [1, 0]}, id="int64"),
        Case("Transpose", {"x": f32(2, 3, 4).astype(np.float16)}, {"perm": [2, 0, 1]}, id="float16"),
        Case("Transpose", {"x": rng().random((3, 2)) > 0.5}, id="bool"),
        # Shapes for the CUDA paths: widened rows, 32x32 tiles with ragged edges, 1- and 8-byte tiles.
        Case("Transpose", {"x": f32(2, 5, 3, 64)}, {"perm": [0, 2, 1, 3]}, id="heads_wide_rows"),
        Case("Transpose", {"x": f32(2, 3, 40, 33)}, {"perm": [0, 1, 3, 2]}, id="last_two_tiled"),
        Case("Transpose", {"x": f32(3, 70, 45).astype(np.float16)}, {"perm": [2, 0, 1]}, id="tiled_float16"),
        Case("Transpose", {"x": i64(3, 40, 33).astype(np.int8)}, {"perm": [0, 2, 1]}, id="tiled_int8"),
        Case("Transpose", {"x": i64(33, 50)}, id="tiled_int64"),
    ]


def concat_cases():
    return [
        Case("Concat", {"a": f32(2, 3), "b": f32(4, 3)}, {"axis": 0}, id="axis0"),
        Case("Concat", {"a": f32(2, 3, 1), "b": f32(2, 3, 4), "c": f32(2, 3, 2)}, {"axis": -1}, id="three_neg_axis"),
        Case("Concat", {"a": i64(2, 2), "b": i64(2, 5)}, {"axis": 1}, id="int64"),
        Case("Concat", {"a": f32(2, 0), "b": f32(2, 3)}, {"axis": 1}, id="empty_part"),
        Case("Concat", {"a": f32(3).astype(np.float16), "b": f32(2).astype(np.float16)}, {"axis": 0}, id="float16"),
        Case("Concat", {"a": f32(2, 3, 5).astype(np.float16), "b": f32(2, 1, 5).astype(np.float16)}, {"axis": -2},
             id="float16_neg_axis"),
        Case("Concat", {"a": f32(3, 2, 16), "b": f32(3, 5, 16)}, {"axis": 1}, id="wide_rows"),
    ]


def split_cases():
    return [
        Case("Split", {"x": f32(6, 4), "split": ints(1, 2, 3)}, n_outputs=3, constants=["split"], id="sizes"),
        Case("Split", {"x": f32(3, 8)}, {"axis": -1}, n_outputs=2, opset=13, id="equal_opset13"),
        Case("Split", {"x": f32(7, 2)}, {"num_outputs": 3}, n_outputs=3, id="num_outputs_uneven"),
        Case("Split", {"x": i64(2, 9)}, {"axis": 1, "num_outputs": 3}, n_outputs=3, id="num_outputs_int64"),
        Case("Split", {"x": f32(2, 5), "split": ints(5, 0)}, {"axis": 1}, n_outputs=2, constants=["split"], id="zero_size"),
        Case("Split", {"x": f32(4, 6).astype(np.float16)}, {"axis": -1, "num_outputs": 3}, n_outputs=3, id="float16_neg_axis"),
    ]


def slice_case(x, starts, ends, axes=None, steps=None, id=""):
    inputs = {"x": x, "starts": ints(*starts), "ends": ints(*ends),
              "axes": None if axes is None else ints(*axes), "steps": None if steps is None else ints(*steps)}
    if steps is None:
        del inputs["steps"]
        if axes is None:
            del inputs["axes"]
    return Case("Slice", inputs, constants=[k for k, v in inputs.items() if k != "x" and v is not None], id=id)


def slice_cases():
    c = [
        slice_case(f32(10), [2], [8], id="basic"),
        slice_case(f32(4, 10), [1, -3], [3, I64_MAX], id="2d_to_end"),
        slice_case(f32(10), [-1], [-I64_MAX], steps=[-2], id="reverse_step2"),
        slice_case(f32(5, 6), [20], [-20], axes=[-1], steps=[-1], id="clamped_reverse"),
        slice_case(i64(3, 4, 5), [0, 1], [3, 5], axes=[2, 0], steps=[2, 1], id="axes_steps_int64"),
        slice_case(f32(4, 4), [3], [1], axes=[0], id="empty"),
        slice_case(f32(2, 8), [0], [8], axes=[1], steps=[3], id="step3"),
        slice_case(f32(4, 6).astype(np.float16), [-1], [-100], axes=[-1], steps=[-2], id="float16_reverse"),
        slice_case(f32(4, 64), [8, 1], [40, 3], axes=[1, 0], id="wide_rows"),
    ]
    c.append(Case("Slice", {"x": f32(6, 3), "starts": ints(1, dtype=np.int32), "ends": ints(5, dtype=np.int32),
                            "axes": ints(0, dtype=np.int32)}, constants=["starts", "ends", "axes"], id="int32_params"))
    return c


def squeeze_cases():
    return [
        Case("Squeeze", {"x": f32(1, 3, 1, 2)}, id="all_ones"),
        Case("Squeeze", {"x": f32(1, 3, 1), "axes": ints(-1)}, constants=["axes"], id="neg_axis"),
        Case("Squeeze", {"x": i64(1, 4, 1), "axes": ints(0, 2)}, constants=["axes"], id="int64_two"),
        Case("Unsqueeze", {"x": f32(2, 3), "axes": ints(0)}, constants=["axes"], id="front"),
        Case("Unsqueeze", {"x": f32(2, 3), "axes": ints(-1, 1)}, constants=["axes"], id="neg_and_mid"),
        Case("Unsqueeze", {"x": np.array(3.5, np.float32), "axes": ints(0, 1)}, constants=["axes"], id="scalar"),
        Case("Unsqueeze", {"x": i64(4), "axes": ints(1)}, constants=["axes"], id="int64"),
    ]


def expand_cases():
    return [
        Case("Expand", {"x": f32(3, 1), "shape": ints(2, 3, 4)}, constants=["shape"], id="grow_rank"),
        Case("Expand", {"x": f32(1, 4), "shape": ints(3, 1)}, constants=["shape"], id="bidirectional"),
        Case("Expand", {"x": i64(2, 1, 3), "shape": ints(2, 5, 3)}, constants=["shape"], id="int64"),
        Case("Expand", {"x": f32(4), "shape": ints(1)}, constants=["shape"], id="shape_of_ones"),
        Case("Expand", {"x": f32(3, 1).astype(np.float16), "shape": ints(2, 3, 4)}, constants=["shape"], id="float16"),
        Case("Expand", {"x": rng().random((1, 3)) > 0.5, "shape": ints(4, 3)}, constants=["shape"], id="bool"),
    ]


def flatten_cases():
    return [
        Case("Flatten", {"x": f32(2, 3, 4)}, id="default"),
        Case("Flatten", {"x": f32(2, 3, 4)}, {"axis": 0}, id="axis0"),
        Case("Flatten", {"x": f32(2, 3, 4)}, {"axis": -1}, id="neg_axis"),
        Case("Flatten", {"x": i64(2, 3, 4)}, {"axis": 3}, id="axis_rank_int64"),
    ]


def tile_cases():
    return [
        Case("Tile", {"x": f32(2, 3), "repeats": ints(2, 2)}, constants=["repeats"], id="2d"),
        Case("Tile", {"x": f32(2, 1, 3), "repeats": ints(1, 4, 2)}, constants=["repeats"], id="3d"),
        Case("Tile", {"x": i64(3), "repeats": ints(3)}, constants=["repeats"], id="int64"),
        Case("Tile", {"x": f32(2, 2), "repeats": ints(0, 1)}, constants=["repeats"], id="zero_repeat"),
        Case("Tile", {"x": f32(2, 3, 1).astype(np.float16), "repeats": ints(2, 1, 3)}, constants=["repeats"], id="float16"),
    ]


def pad_cases():
    x = f32(3, 4)
    return [
        Case("Pad", {"x": x, "pads": ints(1, 2, 0, 1), "value": np.array(1.5, np.float32)},
             constants=["pads", "value"], id="constant_value"),
        Case("Pad", {"x": f32(2, 3), "pads": ints(0, 1, 2, 0)}, constants=["pads"], id="constant_default"),
        Case("Pad", {"x": f32(3, 4), "pads": ints(2, 1, 1, 3)}, {"mode": "reflect"}, constants=["pads"], id="reflect"),
        Case("Pad", {"x": f32(3, 4), "pads": ints(2, 2, 3, 1)}, {"mode": "edge"}, constants=["pads"], id="edge"),
        Case("Pad", {"x": f32(3, 4), "pads": ints(1, 2, 2, 1)}, {"mode": "wrap"}, constants=["pads"], opset=19, id="wrap"),
        Case("Pad", {"x": i64(2, 3, 4), "pads": ints(1, 2), "value": None, "axes": ints(-1)},
             constants=["pads", "axes"], id="axes_int64"),
        Case("Pad", {"x": f32(4, 5), "pads": ints(-1, 1, 0, -2)}, constants=["pads"], id="negative_crop"),
        Case("Pad", {"x": f32(3, 4).astype(np.float16), "pads": ints(1, 2, 2, 1)}, {"mode": "reflect"}, constants=["pads"],
             id="reflect_float16"),
        Case("Pad", {"x": f32(3, 4).astype(np.float16), "pads": ints(1, 2, 2, 1), "value": np.array(0.5, np.float16)},
             constants=["pads", "value"], id="constant_float16"),
    ]


def shape_size_cases():
    return [
        Case("Shape", {"x": f32(2, 3, 4)}, id="all"),
        Case("Shape", {"x": f32(2, 3, 4)}, {"start": 1}, id="start"),
        Case("Shape", {"x": f32(2, 3, 4, 5)}, {"start": -3, "end": -1}, id="neg_start_end"),
        Case("Shape", {"x": i64(5)}, {"end": 10}, id="end_clamped"),
        Case("Size", {"x": f32(2, 3, 4)}, id="3d"),
        Case("Size", {"x": i64(0, 3)}, id="empty"),
        Case("Size", {"x": np.array(1.0, np.float32)}, id="scalar"),
    ]


def depth_space_cases():
    return [
        Case("DepthToSpace", {"x": f32(1, 8, 2, 3)}, {"blocksize": 2}, id="dcr"),
        Case("DepthToSpace", {"x": f32(2, 18, 2, 2)}, {"blocksize": 3, "mode": "CRD"}, id="crd"),
        Case("SpaceToDepth", {"x": f32(2, 3, 4, 6)}, {"blocksize": 2}, id="b2"),
        Case("SpaceToDepth", {"x": f32(1, 2, 3, 6)}, {"blocksize": 3}, id="b3"),
        Case("DepthToSpace", {"x": f32(1, 8, 2, 3).astype(np.float16)}, {"blocksize": 2}, id="dcr_float16"),
    ]


CASES = (reshape_cases() + transpose_cases() + concat_cases() + split_cases() + slice_cases() + squeeze_cases()
         + expand_cases() + flatten_cases() + tile_cases() + pad_cases() + shape_size_cases() + depth_space_cases())
