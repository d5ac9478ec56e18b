"""How every Python test compares a tessera result with a reference (DESIGN.md §5).

- dtype and shape must be equal;
- floats: relative L2 error ||a - r|| / ||r|| within a tolerance chosen by the
  dtype (fp32/fp64 1e-5, fp16/bf16 2e-2: one fp16 rounding step is ~1e-3, so
  the fp32 bound cannot hold for a half-precision result); a reference that is
  exactly zero has no relative error, so then max |a - r| <= 1e-6;
- integers and bools: exact;
- NaN and Inf never pass: a non-finite value in tessera's output fails unless
  the reference has the same non-finite value at the same position (an op fed
  log(-1) must say NaN where ONNX Runtime does); those positions are then left
  out of the L2 norm.

Failures raise AssertionError with a message that names the output and says
how far off it is and where the worst element is.
"""
import numpy as np

FLOAT_TOL = {np.dtype(np.float64): 1e-5, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-2}
ZERO_REF_ATOL = 1e-6


def rel_l2(actual, expected):
    """||actual - expected|| / ||expected|| in float64; inf if expected is all zero and actual is not."""
    a = np.asarray(actual, dtype=np.float64).ravel()
    r = np.asarray(expected, dtype=np.float64).ravel()
    den = np.linalg.norm(r)
    num = np.linalg.norm(a - r)
    if den == 0.0:
        return 0.0 if num == 0.0 else float("inf")
    return float(num / den)


def tolerance_for(dtype):
    dtype = np.dtype(dtype)
    if dtype in FLOAT_TOL:
        return FLOAT_TOL[dtype]
    if dtype.kind == "V" and dtype.itemsize == 2:  # bfloat16 through ml_dtypes shows up as a 2-byte void
        return 2e-2
    return None


def _worst(a, r):
    diff = np.abs(a.astype(np.float64) - r.astype(np.float64))
    idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
    return idx, a[idx], r[idx]


def assert_close(actual, expected, name="output", tol=None):
    """Compare one tessera output with its reference; raise AssertionError on a mismatch."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype}, expected {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape}, expected {expected.shape}"
    if actual.size == 0:
        return
    kind = expected.dtype.kind
    if kind in "biu":
        bad = actual != expected
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise AssertionError(f"{name}: {int(bad.sum())} of {actual.size} elements differ, first at {idx}: "
                                 f"{actual[idx]!r} vs expected {expected[idx]!r}")
        return
    assert kind in "fc" or tolerance_for(expected.dtype) is not None, f"{name}: no comparison rule for {expected.dtype}"
    a = actual.astype(np.float64)
    r = expected.astype(np.float64)
    fin_a, fin_r = np.isfinite(a), np.isfinite(r)
    # Same non-finite value at the same place (NaN with NaN, +Inf with +Inf) is agreement.
    same_nonfinite = (~fin_r) & (~fin_a) & ((np.isnan(a) & np.isnan(r)) | (a == r))
    bad = ~(fin_a & fin_r) & ~same_nonfinite
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise AssertionError(f"{name}: {int(bad.sum())} non-finite mismatches (NaN/Inf never pass), first at {idx}: "
                             f"{a[idx]!r} vs expected {r[idx]!r}")
    keep = fin_a & fin_r
    a, r = a[keep], r[keep]
    if a.size == 0:
        return
    if tol is None:
        tol = tolerance_for(expected.dtype)
    if not np.any(r):
        err = float(np.max(np.abs(a - r)))
        if err > ZERO_REF_ATOL:
            raise AssertionError(f"{name}: reference is all zero, max |diff| {err:.3g} > {ZERO_REF_ATOL:g}")
        return
    err = rel_l2(a, r)
    if not err <= tol:
        idx, av, rv = _worst(actual.astype(np.float64), expected.astype(np.float64)) if keep.all() else ((), "?", "?")
        raise AssertionError(f"{name}: relative L2 error {err:.3g} > {tol:g} (worst element {idx}: {av!r} vs {rv!r})")


def assert_outputs_close(actual, expected, tol=None, label=""):
    """Compare every output by name. `actual` and `expected` map output names to arrays."""
    prefix = f"{label}: " if label else ""
    missing = [k for k in expected if k not in actual]
    extra = [k for k in actual if k not in expected]
    assert not missing, f"{prefix}outputs missing from tessera's result: {missing} (has {sorted(actual)})"
    assert not extra, f"{prefix}unexpected outputs in tessera's result: {extra}"
    for key, ref in expected.items():
        assert_close(actual[key], ref, name=f"{prefix}{key}", tol=tol)
