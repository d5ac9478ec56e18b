"""`tessera run MODEL.onnx --target ...` through the engine cache: the target
is part of the entry's key (cpu and cuda entries live side by side), a .tsr
given with another --target is refused, and --target cuda where no GPU is
visible fails with one clear error, leaving no cache entry and no output.
(The key's GPU architecture and foreign entries: tests/cpp/engine_cache_test.cc.)"""
import numpy as np
import pytest

import test_cuda_parity
from test_data_parallel import batch, expected, load, mlp_model
from tsr_cli import error_line


def cache_files(d):
    return sorted(f.name for f in d.iterdir()) if d.exists() else []


@pytest.fixture
def model(tmp_path):
    path = tmp_path / "model.onnx"
    mlp_model(path, "N", np.random.randn(8, 4).astype(np.float32))
    np.savez(tmp_path / "all.npz", **batch(3))
    return path


def run(tessera, model, cache, out, *flags):
    return tessera("run", model, "--cache-dir", cache, "-v", "--inputs", model.parent / "all.npz", "-o", out, *flags,
                   timeout=120)


def test_explicit_cpu_target_shares_the_default_entry(tessera, tmp_path, model):
    cache = tmp_path / "cache"
    p = run(tessera, model, cache, tmp_path / "a.npz")
    assert p.returncode == 0 and "built engine" in p.stderr, p.stderr
    p = run(tessera, model, cache, tmp_path / "b.npz", "--target", "cpu")
    assert p.returncode == 0 and "loaded engine from cache" in p.stderr, p.stderr
    inputs = load(model.parent / "all.npz")
    np.testing.assert_allclose(load(tmp_path / "b.npz")["y"], expected(model, inputs), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(test_cuda_parity.gpu_present(), reason="this machine has a GPU")
def test_cuda_target_without_gpu_is_a_clear_error(tessera, tmp_path, model):
    cache, out = tmp_path / "cache", tmp_path / "o.npz"
    msg = error_line(run(tessera, model, cache, out, "--target", "cuda"))
    assert "cuda" in msg and ("GPU" in msg or "CUDA" in msg), msg
    assert cache_files(cache) == []  # the key (with the GPU's arch) is made before any file
    assert not out.exists()


def test_engine_of_another_target_is_refused(tessera, tmp_path, model):
    engine, out = tmp_path / "m.tsr", tmp_path / "o.npz"
    tessera.build_ok(model, engine)
    msg = error_line(tessera("run", engine, "--target", "cuda", "--inputs", model.parent / "all.npz", "-o", out))
    assert str(engine) in msg and "built for target cpu" in msg and "--target cuda" in msg, msg
    assert not out.exists()


def test_unknown_target_is_refused(tessera, tmp_path, model):
    p = run(tessera, model, tmp_path / "cache", tmp_path / "o.npz", "--target", "tpu")
    assert p.returncode != 0 and "tpu" in p.stderr, p.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not test_cuda_parity.gpu_present(), reason="no GPU visible")
def test_cuda_entry_is_built_once_beside_the_cpu_one(tessera, tmp_path, model):
    cache = tmp_path / "cache"
    p = run(tessera, model, cache, tmp_path / "a.npz", "--target", "cuda")
    assert p.returncode == 0 and "built engine" in p.stderr, p.stderr
    p = run(tessera, model, cache, tmp_path / "b.npz", "--target", "cuda")
    assert p.returncode == 0 and "loaded engine from cache" in p.stderr, p.stderr
    p = run(tessera, model, cache, tmp_path / "c.npz")
    assert p.returncode == 0 and "built engine" in p.stderr, p.stderr
    assert len([f for f in cache_files(cache) if f.endswith(".tsr")]) == 2
    inputs = load(model.parent / "all.npz")
    for name in ("a", "b", "c"):
        np.testing.assert_allclose(load(tmp_path / f"{name}.npz")["y"], expected(model, inputs), rtol=1e-4, atol=1e-5)
