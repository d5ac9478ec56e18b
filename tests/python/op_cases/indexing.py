"""Cases for the indexing ops (src/ops/indexing.cc): Gather, GatherElements,
GatherND, ScatterND, ScatterElements, NonZero, TopK, ArgMax, ArgMin.

Indices are fresh random valid ones (negatives included); where duplicates
would make the result order-dependent (scatter without reduction) they are
drawn without repetition.
"""
import numpy as np

from . import Case, rng


def f32(*shape):
    return rng().standard_normal(shape).astype(np.float32)


def i64(*shape, lo=-50, hi=50):
    return rng().integers(lo, hi, shape, dtype=np.int64)


def index(n, shape, dtype=np.int64):
    """Random indices into an axis of extent n, in [-n, n)."""
    return rng().integers(-n, n, shape).astype(dtype)


def gather_cases():
    return [
        Case("Gather", {"x": f32(5, 4), "i": index(5, (3,))}, id="axis0"),
        Case("Gather", {"x": f32(2, 3, 6), "i": index(6, (2, 4))}, {"axis": -1}, id="2d_indices_neg_axis"),
        Case("Gather", {"x": i64(4, 3), "i": np.array(2, np.int64)}, {"axis": 0}, id="scalar_index_int64"),
        Case("Gather", {"x": f32(3, 7), "i": index(7, (5,), np.int32)}, {"axis": 1}, id="int32_indices"),
        Case("Gather", {"x": f32(10, 4).astype(np.float16), "i": index(10, (6,))}, id="float16"),
        Case("Gather", {"x": f32(50, 64), "i": index(50, (3, 7))}, id="embedding_rows"),
        Case("Gather", {"x": f32(40, 24).astype(np.float16), "i": index(40, (9,), np.int32)}, id="embedding_float16_int32"),
        Case("Gather", {"x": rng().random((5, 3)) > 0.5, "i": index(5, (4,))}, id="bool"),
        Case("GatherElements", {"x": f32(3, 4), "i": index(3, (2, 4))}, {"axis": 0}, id="axis0"),
        Case("GatherElements", {"x": f32(3, 5), "i": index(5, (3, 2))}, {"axis": -1}, id="neg_axis"),
        Case("GatherElements", {"x": i64(2, 3, 4), "i": index(3, (2, 2, 4), np.int32)}, {"axis": 1}, id="int64_int32"),
        Case("GatherElements", {"x": f32(3, 4).astype(np.float16), "i": index(3, (2, 4))}, {"axis": 0}, id="float16"),
    ]


def gather_nd_cases():
    return [
        Case("GatherND", {"x": f32(3, 4), "i": np.stack([index(3, (5,)), index(4, (5,))], -1)}, id="full_tuples"),
        Case("GatherND", {"x": f32(4, 3, 2), "i": index(4, (2, 1))}, id="slices"),
        Case("GatherND", {"x": i64(2, 5, 3), "i": index(5, (2, 4, 1))}, {"batch_dims": 1}, id="batch_dims1"),
        Case("GatherND", {"x": f32(2, 3, 4, 5), "i": np.stack([index(4, (2, 3, 2)), index(5, (2, 3, 2))], -1)},
             {"batch_dims": 2}, id="batch_dims2"),
        Case("GatherND", {"x": f32(4, 3, 8).astype(np.float16), "i": index(4, (2, 1))}, id="float16_slices"),
    ]


def unique_rows(n, count):
    """`count` distinct indices below n, some written negative."""
    idx = rng().permutation(n)[:count].astype(np.int64)
    flip = rng().random(count) < 0.5
    idx[flip] -= n
    return idx


def scatter_nd_cases():
    return [
        Case("ScatterND", {"x": f32(8), "i": unique_rows(8, 4)[:, None], "u": f32(4)}, id="none_1d"),
        Case("ScatterND", {"x": f32(4, 3), "i": unique_rows(4, 2)[:, None], "u": f32(2, 3)}, id="none_rows"),
        Case("ScatterND", {"x": f32(5, 2), "i": index(5, (6, 1)), "u": f32(6, 2)}, {"reduction": "add"}, id="add_dups"),
        Case("ScatterND", {"x": i64(3, 3, lo=-3, hi=4), "i": np.stack([index(3, (4,)), index(3, (4,))], -1),
                           "u": i64(4, lo=-3, hi=4)}, {"reduction": "mul"}, id="mul_int64"),
        Case("ScatterND", {"x": f32(6), "i": index(6, (5, 1)), "u": f32(5)}, {"reduction": "max"}, id="max"),
        Case("ScatterND", {"x": f32(6, 8).astype(np.float16), "i": unique_rows(6, 3)[:, None], "u": f32(3, 8).astype(np.float16)},
             id="none_float16_rows"),
        Case("ScatterND", {"x": i64(4, 3).astype(np.int32), "i": index(4, (5, 1)), "u": i64(5, 3).astype(np.int32)},
             {"reduction": "min"}, id="min_int32"),
    ]


def scatter_elements_cases():
    x = f32(3, 5)
    # Distinct rows per column so that reduction "none" has one writer per element.
    rows = np.stack([unique_rows(3, 2) for _ in range(5)], 1)
    return [
        Case("ScatterElements", {"x": x, "i": rows, "u": f32(2, 5)}, id="none_axis0"),
        Case("ScatterElements", {"x": f32(2, 6), "i": np.stack([unique_rows(6, 3) for _ in range(2)]), "u": f32(2, 3)},
             {"axis": -1}, id="none_neg_axis"),
        Case("ScatterElements", {"x": f32(4, 3), "i": index(4, (5, 3)), "u": f32(5, 3)}, {"reduction": "add"}, id="add"),
        Case("ScatterElements", {"x": i64(2, 4, lo=-4, hi=5), "i": index(4, (2, 6), np.int32), "u": i64(2, 6, lo=-4, hi=5)},
             {"axis": 1, "reduction": "mul"}, id="mul_int64"),
        Case("ScatterElements", {"x": f32(5), "i": index(5, (7,)), "u": f32(7)}, {"reduction": "min"}, id="min"),
        Case("ScatterElements", {"x": f32(4, 3).astype(np.float16), "i": index(4, (5, 3)), "u": f32(5, 3).astype(np.float16)},
             {"reduction": "max"}, id="max_float16"),
        Case("ScatterElements", {"x": i64(4, 3).astype(np.int32), "i": index(4, (5, 3)), "u": i64(5, 3).astype(np.int32)},
             {"reduction": "add"}, id="add_int32"),
    ]


def nonzero_cases():
    x = f32(3, 4)
    x[rng().random(x.shape) < 0.5] = 0
    return [
        Case("NonZero", {"x": x}, id="float"),
        Case("NonZero", {"x": i64(2, 3, 4, lo=-1, hi=2)}, id="int64_3d"),
        Case("NonZero", {"x": rng().random(7) < 0.3}, id="bool"),
        Case("NonZero", {"x": np.zeros((2, 2), np.float32)}, id="none"),
    ]


def topk_cases():
    # No sorted=0 cases: ONNX leaves that order undefined and ONNX Runtime returns
    # heap order, which no other implementation is bound to reproduce.
    k = lambda v: np.array([v], np.int64)  # noqa: E731
    return [
        Case("TopK", {"x": f32(3, 8), "k": k(3)}, n_outputs=2, constants=["k"], id="largest"),
        Case("TopK", {"x": f32(5, 4), "k": k(2)}, {"axis": 0, "largest": 0}, n_outputs=2, constants=["k"], id="smallest_axis0"),
        Case("TopK", {"x": i64(2, 10, lo=-3, hi=3), "k": k(4)}, n_outputs=2, constants=["k"], id="int64_ties"),
        Case("TopK", {"x": f32(2, 6, 3), "k": k(6)}, {"axis": -2}, n_outputs=2, constants=["k"], id="k_is_all"),
        Case("TopK", {"x": f32(4), "k": k(0)}, n_outputs=2, constants=["k"], id="k0"),
        Case("TopK", {"x": f32(3, 8).astype(np.float16), "k": k(3)}, n_outputs=2, constants=["k"], id="float16"),
        Case("TopK", {"x": f32(2, 300), "k": k(5)}, n_outputs=2, constants=["k"], id="long_rows"),
    ]


def arg_cases():
    return [
        Case("ArgMax", {"x": f32(3, 5)}, id="default"),
        Case("ArgMax", {"x": f32(3, 5)}, {"axis": -1, "keepdims": 0}, id="no_keepdims"),
        Case("ArgMax", {"x": i64(4, 6, lo=0, hi=3)}, {"axis": 1, "select_last_index": 1}, id="last_index_int64"),
        Case("ArgMin", {"x": f32(2, 3, 4)}, {"axis": 1}, id="axis1"),
        Case("ArgMin", {"x": i64(5, 3, lo=0, hi=3)}, {"axis": 0, "keepdims": 0}, id="first_index_int64"),
        Case("ArgMin", {"x": i64(5, 3, lo=0, hi=3)}, {"select_last_index": 1}, id="last_index"),
        Case("ArgMax", {"x": f32(3, 5).astype(np.float16)}, {"axis": -1}, id="float16"),
        # Rows long enough for the CUDA block-per-row path, with ties.
        Case("ArgMax", {"x": i64(3, 2000, lo=0, hi=4)}, {"axis": -1, "select_last_index": 1}, id="long_rows_last_index"),
        Case("ArgMin", {"x": i64(2, 1500, lo=0, hi=4)}, {"axis": 1, "keepdims": 0}, id="long_rows_first_index"),
        Case("ArgMax", {"x": f32(2, 3000)}, {"axis": -1}, id="long_rows_float"),
    ]


CASES = (gather_cases() + gather_nd_cases() + scatter_nd_cases() + scatter_elements_cases() + nonzero_cases()
         + topk_cases() + arg_cases())
