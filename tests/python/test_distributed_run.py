"""`tessera run` under `tessera launch`: an ONNX model holding com.microsoft
collectives (AllReduce, AllGather, AllToAll), on 2 and 3 CPU ranks (gloo),
against NumPy on the gathered per-rank inputs."""
import os
import subprocess
import sys

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T

BIN = os.environ.get("TESSERA_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "tessera"))


def collective_model(world, path):
    x = h.make_tensor_value_info("x", T.FLOAT, [6, 6])
    outs = [h.make_tensor_value_info(n, T.FLOAT, [None, None]) for n in ("s", "g", "a", "r")]
    nodes = [
        h.make_node("AllReduce", ["x"], ["s"], domain="com.microsoft", name="ar"),
        h.make_node("AllGather", ["x"], ["g"], domain="com.microsoft", group_size=world, axis=1, name="ag"),
        h.make_node("AllToAll", ["x"], ["a"], domain="com.microsoft", group_size=world, name="a2a"),
        h.make_node("Relu", ["s"], ["r"], name="relu"),  # compute on a collective's result
    ]
    m = h.make_model(h.make_graph(nodes, "coll", [x], outs),
                     opset_imports=[h.make_opsetid("", 18), h.make_opsetid("com.microsoft", 1)])
    onnx.checker.check_model(m)
    onnx.save(m, path)


def launch(world, *args, timeout=120):
    cmd = [BIN, "launch", "--nproc-per-node", str(world), "--", BIN, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("fuse", [True, False])
def test_collective_model_matches_numpy(tmp_path, world, fuse):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(world, str(model))
    build = [BIN, "build", str(model), "-o", str(engine)] + ([] if fuse else ["--no-fuse-distributed-ops"])
    subprocess.run(build, check=True, capture_output=True)
    xs = [np.random.randn(6, 6).astype(np.float32) for _ in range(world)]
    for r, x in enumerate(xs):
        np.save(tmp_path / f"x{r}.npy", x)
    for r in range(world):  # poison: a stale output must not pass
        np.savez(tmp_path / f"out{r}.npz", s=np.full((6, 6), np.nan, np.float32))
    p = launch(world, "run", str(engine), "--input", f"x={tmp_path}/x{{rank}}.npy", "-o", f"{tmp_path}/out{{rank}}.npz")
    assert p.returncode == 0, p.stdout + p.stderr
    c = 6 // world
    for r in range(world):
        o = np.load(tmp_path / f"out{r}.npz")
        np.testing.assert_allclose(o["s"], sum(xs), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(o["r"], np.maximum(sum(xs), 0), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(o["g"], np.concatenate(xs, axis=1))
        np.testing.assert_array_equal(o["a"], np.concatenate([x[r * c:(r + 1) * c] for x in xs], axis=0))


def test_engine_for_another_world_size_is_refused(tmp_path):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(3, str(model))
    subprocess.run([BIN, "build", str(model), "-o", str(engine)], check=True, capture_output=True)
    np.save(tmp_path / "x.npy", np.zeros((6, 6), np.float32))
    p = launch(2, "run", str(engine), "--input", f"x={tmp_path}/x.npy", "-o", f"{tmp_path}/o.npz")
    assert p.returncode != 0
    assert "compiled for 3 ranks but runs on 2" in p.stdout + p.stderr


def test_single_process_collectives_are_identities(tmp_path):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(1, str(model))
    subprocess.run([BIN, "build", str(model), "-o", str(engine)], check=True, capture_output=True)
    np.save(tmp_path / "x.npy", np.ones((6, 6), np.float32))
    # A single process holding collectives forms a world of one: the collectives are identities.
    p = subprocess.run([BIN, "run", str(engine), "--input", f"x={tmp_path}/x.npy", "-o", f"{tmp_path}/o.npz"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "o.npz")["s"], np.ones((6, 6), np.float32))


def test_model_with_collectives_and_distributed_mode_off_warns(tmp_path):
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(2, str(model))
    p = subprocess.run([BIN, "build", str(model), "-o", str(engine), "--distributed", "off"], capture_output=True, text=True)
    assert p.returncode == 0
    assert "use_distributed_mode is off" in p.stderr and "--distributed on" in p.stderr


def gpu_count():
    try:
        p = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return 0
    return sum(1 for ln in p.stdout.splitlines() if ln.startswith("GPU")) if p.returncode == 0 else 0


@pytest.mark.skipif(gpu_count() == 0, reason="no GPU: the NCCL path of collective nodes runs on the GPU machine")
@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("fuse", [True, False])
def test_collective_model_on_cuda_over_nccl(tmp_path, world, fuse):
    """The same model built --target cuda: collectives run over NCCL on the
    engine's stream, inside the CUDA graph (the second run replays it)."""
    if world > gpu_count():
        pytest.skip(f"needs {world} GPUs")
    model, engine = tmp_path / "m.onnx", tmp_path / "m.tsr"
    collective_model(world, str(model))
    build = [BIN, "build", str(model), "-o", str(engine), "--target", "cuda"] + ([] if fuse else ["--no-fuse-distributed-ops"])
    subprocess.run(build, check=True, capture_output=True)
    xs = [np.random.randn(6, 6).astype(np.float32) for _ in range(world)]
    for r, x in enumerate(xs):
        np.save(tmp_path / f"x{r}.npy", x)
    p = launch(world, "run", str(engine), "--input", f"x={tmp_path}/x{{rank}}.npy", "-o", f"{tmp_path}/out{{rank}}.npz")
    assert p.returncode == 0, p.stdout + p.stderr
    c = 6 // world
    for r in range(world):
        o = np.load(tmp_path / f"out{r}.npz")
        np.testing.assert_allclose(o["s"], sum(xs), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(o["r"], np.maximum(sum(xs), 0), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(o["g"], np.concatenate(xs, axis=1))
        np.testing.assert_array_equal(o["a"], np.concatenate([x[r * c:(r + 1) * c] for x in xs], axis=0))
