"""The comparison rules themselves (tsr_compare): a harness that passes wrong
answers is worse than none, so check that it fails the things it must."""
import numpy as np
import pytest

from tsr_compare import assert_close, assert_outputs_close, rel_l2


def test_rel_l2_of_known_vectors():
    assert rel_l2(np.array([3.0, 4.0]), np.array([3.0, 4.0])) == 0.0
    assert rel_l2(np.array([3.0, 4.0 + 5e-5]), np.array([3.0, 4.0])) == pytest.approx(1e-5)


def test_float_within_and_beyond_tolerance():
    r = np.linspace(1, 2, 100, dtype=np.float32)
    assert_close(r * np.float32(1 + 1e-7), r)
    with pytest.raises(AssertionError, match="relative L2"):
        assert_close(r * np.float32(1 + 1e-4), r)


def test_nan_and_inf_never_pass():
    r = np.ones(4, np.float32)
    for poison in (np.nan, np.inf, -np.inf):
        a = r.copy()
        a[2] = poison
        with pytest.raises(AssertionError, match="non-finite"):
            assert_close(a, r)


def test_matching_nonfinite_reference_passes_only_in_place():
    r = np.array([np.nan, np.inf, 1.0], np.float32)
    assert_close(r.copy(), r)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close(np.array([np.nan, -np.inf, 1.0], np.float32), r)
    with pytest.raises(AssertionError, match="non-finite"):
        assert_close(np.array([1.0, np.inf, np.nan], np.float32), r)


def test_zero_reference_uses_absolute_bound():
    z = np.zeros(8, np.float32)
    assert_close(z + np.float32(1e-7), z)
    with pytest.raises(AssertionError, match="all zero"):
        assert_close(z + np.float32(1e-3), z)


def test_dtype_shape_and_exact_kinds():
    with pytest.raises(AssertionError, match="dtype"):
        assert_close(np.zeros(3, np.float64), np.zeros(3, np.float32))
    with pytest.raises(AssertionError, match="shape"):
        assert_close(np.zeros((3, 1), np.float32), np.zeros(3, np.float32))
    with pytest.raises(AssertionError, match="differ"):
        assert_close(np.array([1, 2, 3]), np.array([1, 2, 4]))
    with pytest.raises(AssertionError, match="differ"):
        assert_close(np.array([True, False]), np.array([True, True]))
    assert_close(np.array([True, False]), np.array([True, False]))


def test_half_precision_uses_its_own_tolerance():
    r = np.linspace(1, 2, 64).astype(np.float16)
    a = (r.astype(np.float32) * 1.001).astype(np.float16)
    assert_close(a, r)
    with pytest.raises(AssertionError, match="relative L2"):
        assert_close((r.astype(np.float32) * 1.1).astype(np.float16), r)


def test_outputs_by_name():
    ref = {"y": np.ones(2, np.float32)}
    assert_outputs_close({"y": np.ones(2, np.float32)}, ref)
    with pytest.raises(AssertionError, match="missing"):
        assert_outputs_close({"z": np.ones(2, np.float32)}, ref)
    with pytest.raises(AssertionError, match="unexpected"):
        assert_outputs_close({"y": np.ones(2, np.float32), "z": np.ones(1, np.float32)}, ref)
