"""`tessera run --dp` under `tessera launch`: the batch is split between ranks
(Accelerate's split_between_processes), run in micro-batches when the engine's
batch dim is fixed, gathered to rank 0 in the original order and written to
one file. Every result must equal, exactly, a single-process `tessera run` of
the whole batch. Also: a failing rank leaves no output; the engine cache builds
an .onnx model once per job, rebuilds a corrupt entry, and keys on the model's
bytes (external data included)."""
import fcntl
import os
import subprocess

import numpy as np
import onnx
import onnx.helper as h
import pytest
from onnx import TensorProto as T
from onnx import numpy_helper

BIN = os.path.abspath(os.environ.get("TESSERA_BIN", os.path.join(os.path.dirname(__file__), "..", "..", "build", "tessera")))


def mlp_model(path, batch, w, external=False):
    """y = Relu(x @ w) (float32) and s = z * 3 (int64): two inputs, two outputs,
    both batched along dim 0; `batch` is "N" (symbolic) or a fixed int."""
    ins = [h.make_tensor_value_info("x", T.FLOAT, [batch, w.shape[0]]),
           h.make_tensor_value_info("z", T.INT64, [batch, 3])]
    outs = [h.make_tensor_value_info("y", T.FLOAT, [batch, w.shape[1]]),
            h.make_tensor_value_info("s", T.INT64, [batch, 3])]
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array(3, np.int64), "three")]
    nodes = [h.make_node("MatMul", ["x", "w"], ["m"], name="mm"), h.make_node("Relu", ["m"], ["y"], name="relu"),
             h.make_node("Mul", ["z", "three"], ["s"], name="mul")]
    m = h.make_model(h.make_graph(nodes, "mlp", ins, outs, inits), opset_imports=[h.make_opsetid("", 18)])
    onnx.checker.check_model(m)
    if external:
        data = str(path) + ".data"
        if os.path.exists(data):
            os.remove(data)  # onnx appends to an existing data file
        onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=os.path.basename(data), size_threshold=0)
    else:
        onnx.save(m, str(path))


def tessera(*args, timeout=120):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=timeout)


def launch(world, *args, timeout=120):
    return tessera("launch", "--nproc-per-node", world, "--", BIN, *args, timeout=timeout)


def batch(n):
    return {"x": np.random.randn(n, 8).astype(np.float32), "z": np.random.randint(-50, 50, (n, 3)).astype(np.int64)}


def save_inputs(tmp_path, inputs, as_npz):
    """--inputs all.npz, or one --input name=file.npy per array."""
    if as_npz:
        np.savez(tmp_path / "all.npz", **inputs)
        return ["--inputs", tmp_path / "all.npz"]
    args = []
    for name, a in inputs.items():
        np.save(tmp_path / f"{name}.npy", a)
        args += ["--input", f"{name}={tmp_path}/{name}.npy"]
    return args


def load(path):
    with np.load(path) as z:
        return {k: z[k] for k in z.files}


def poison(path):
    np.savez(path, y=np.full((1, 4), np.nan, np.float32))


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    """The same weights compiled twice: symbolic batch, and a fixed batch of 4."""
    d = tmp_path_factory.mktemp("engines")
    w = np.random.randn(8, 4).astype(np.float32)
    out = {}
    for kind, b in (("sym", "N"), ("fixed", 4)):
        mlp_model(d / f"{kind}.onnx", b, w)
        p = tessera("build", d / f"{kind}.onnx", "-o", d / f"{kind}.tsr")
        assert p.returncode == 0, p.stderr
        out[kind] = d / f"{kind}.tsr"
    return out


def reference(tmp_path, engine, input_args):
    """A single-process run of the whole batch, without --dp."""
    out = tmp_path / "ref.npz"
    p = tessera("run", engine, *input_args, "-o", out)
    assert p.returncode == 0, p.stderr
    return load(out)


@pytest.mark.parametrize("kind", ["sym", "fixed"])
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("n", [7, 9, 12])
@pytest.mark.parametrize("pad", [False, True])
def test_dp_equals_single_process(tmp_path, engines, kind, world, n, pad):
    inputs = batch(n)
    args = save_inputs(tmp_path, inputs, as_npz=(n + world) % 2 == 0)
    ref = reference(tmp_path, engines["sym"], args)
    out = tmp_path / "out.npz"
    poison(out)
    p = launch(world, "run", engines[kind], "--dp", *args, "-o", out, *(["--apply-padding"] if pad else []))
    assert p.returncode == 0, p.stdout + p.stderr
    got = load(out)
    assert sorted(got) == ["s", "y"]
    for name in ("y", "s"):
        assert got[name].dtype == ref[name].dtype
        np.testing.assert_array_equal(got[name], ref[name])
    np.testing.assert_array_equal(got["s"], inputs["z"] * 3)  # and in the original order
    assert [t for t in tmp_path.iterdir() if ".tmp." in t.name] == []


@pytest.mark.parametrize("pad", [False, True])
def test_fewer_items_than_ranks(tmp_path, engines, pad):
    inputs = batch(2)
    args = save_inputs(tmp_path, inputs, as_npz=True)
    out = tmp_path / "out.npz"
    poison(out)
    p = launch(3, "run", engines["fixed"], "--dp=3", *args, "-o", out, *(["--apply-padding"] if pad else []))
    assert p.returncode == 0, p.stdout + p.stderr
    np.testing.assert_array_equal(load(out)["s"], inputs["z"] * 3)


def test_progress_only_on_rank_0_and_only_for_several_micro_batches(tmp_path, engines):
    args = save_inputs(tmp_path, batch(12), as_npz=True)
    p = launch(2, "run", engines["fixed"], "--dp", *args, "-o", tmp_path / "o.npz")
    assert p.returncode == 0, p.stderr
    dp_lines = [ln for ln in p.stderr.splitlines() if "[dp]" in ln]
    assert dp_lines == ["[rank 0]: [dp] 1/2 micro-batches", "[rank 0]: [dp] 2/2 micro-batches"]
    p = launch(2, "run", engines["sym"], "--dp", *args, "-o", tmp_path / "o.npz")
    assert p.returncode == 0 and "[dp]" not in p.stderr, p.stderr


def test_a_failing_rank_fails_the_job_and_leaves_no_output(tmp_path, engines):
    """Rank 1 reads a float64 x (its own file through {rank}; same batch size,
    so it passes the batch check) and fails in the engine's input check while
    rank 0 has run its part and waits in the gather."""
    good = batch(9)
    np.save(tmp_path / "x0.npy", good["x"])
    np.save(tmp_path / "x1.npy", good["x"].astype(np.float64))
    np.save(tmp_path / "z.npy", good["z"])
    out = tmp_path / "out.npz"
    p = launch(2, "run", engines["sym"], "--dp", "--timeout", "10", "--input", f"x={tmp_path}/x{{rank}}.npy",
               "--input", f"z={tmp_path}/z.npy", "-o", out)
    assert p.returncode != 0
    assert "[rank 1]: tessera: error: input 'x'" in p.stderr, p.stderr
    assert "tessera: error: rank 1" in p.stderr, p.stderr
    assert not out.exists()
    assert [t for t in tmp_path.iterdir() if ".tmp." in t.name] == []


def test_ranks_holding_different_batches_are_refused(tmp_path, engines):
    for r, n in enumerate((9, 8)):
        np.save(tmp_path / f"x{r}.npy", batch(n)["x"])
        np.save(tmp_path / f"z{r}.npy", batch(n)["z"])
    out = tmp_path / "out.npz"
    p = launch(2, "run", engines["sym"], "--dp", "--input", f"x={tmp_path}/x{{rank}}.npy",
               "--input", f"z={tmp_path}/z{{rank}}.npy", "-o", out)
    assert p.returncode != 0
    assert "rank 1 holds a batch of 8 rows but rank 0 holds 9" in p.stderr, p.stderr
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--dp", "-o", "out{rank}.npz"], "drop {rank}"),
    (["--apply-padding", "-o", "out.npz"], "--apply-padding only applies with --dp"),
    (["--dp=2", "-o", "out.npz"], "--dp=2 needs 2 ranks, but the job has 1"),
    (["--dp=0", "-o", "out.npz"], "--dp=0: expected a positive rank count"),
])
def test_bad_flags(tmp_path, engines, args, message):
    np.savez(tmp_path / "all.npz", **batch(3))
    p = subprocess.run([BIN, "run", str(engines["sym"]), "--inputs", str(tmp_path / "all.npz"), *args],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode != 0 and message in p.stderr, p.stderr
    assert not any(f.name.startswith("out") for f in tmp_path.iterdir())


# --- the engine cache -------------------------------------------------------

def cache_entries(d):
    return sorted(f.name for f in d.iterdir() if f.name.endswith(".tsr"))


def run_cached(world, model, cache, args, out, **kw):
    return subprocess.Popen([BIN, "launch", "--nproc-per-node", str(world), "--", BIN, "run", str(model), "--dp", "-v",
                             "--cache-dir", str(cache), *map(str, args), "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def finish(p):
    stdout, stderr = p.communicate(timeout=120)
    assert p.returncode == 0, stdout + stderr
    return stderr


def expected(model, inputs):
    w = numpy_helper.to_array(onnx.load(str(model)).graph.initializer[0])
    return np.maximum(inputs["x"] @ w, 0)


def test_two_concurrent_jobs_build_the_engine_once(tmp_path):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    inputs = batch(10)
    args = save_inputs(tmp_path, inputs, as_npz=True)
    jobs = [run_cached(3, model, cache, args, tmp_path / f"out{j}.npz") for j in range(2)]
    logs = "".join(finish(p) for p in jobs)
    assert logs.count("built engine") == 1, logs
    assert logs.count("loaded engine from cache") == 5, logs
    assert len(cache_entries(cache)) == 1
    for j in range(2):
        np.testing.assert_allclose(load(tmp_path / f"out{j}.npz")["y"], expected(model, inputs), rtol=1e-5, atol=1e-6)


def test_corrupt_cache_entry_is_rebuilt(tmp_path):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    inputs = batch(5)
    args = save_inputs(tmp_path, inputs, as_npz=True)
    finish(run_cached(2, model, cache, args, tmp_path / "a.npz"))
    [entry] = cache_entries(cache)
    data = bytearray((cache / entry).read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: the CRC check fails
    (cache / entry).write_bytes(bytes(data))
    logs = finish(run_cached(2, model, cache, args, tmp_path / "b.npz"))
    assert logs.count("built engine") == 1 and "does not load" in logs, logs
    assert cache_entries(cache) == [entry]
    np.testing.assert_allclose(load(tmp_path / "b.npz")["y"], expected(model, inputs), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("external", [False, True])
def test_changed_model_gets_a_new_entry(tmp_path, external):
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32), external=external)
    inputs = batch(4)
    args = save_inputs(tmp_path, inputs, as_npz=True)
    finish(run_cached(1, model, cache, args, tmp_path / "a.npz"))
    if external:  # only the weights file changes; the .onnx bytes stay the same
        before = model.read_bytes()
        mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32), external=True)
        assert model.read_bytes() == before
    else:
        mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    logs = finish(run_cached(1, model, cache, args, tmp_path / "b.npz"))
    assert "built engine" in logs, logs
    assert len(cache_entries(cache)) == 2
    np.testing.assert_allclose(load(tmp_path / "b.npz")["y"], expected(model, inputs), rtol=1e-5, atol=1e-6)


def test_cache_dir_defaults_to_tessera_cache(tmp_path):
    model = tmp_path / "model.onnx"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    np.savez(tmp_path / "all.npz", **batch(3))
    env = dict(os.environ, TESSERA_CACHE=str(tmp_path / "envcache"))
    p = subprocess.run([BIN, "run", str(model), "--inputs", str(tmp_path / "all.npz"), "-o", str(tmp_path / "o.npz")],
                       capture_output=True, text=True, timeout=60, env=env)
    assert p.returncode == 0, p.stderr
    assert len(cache_entries(tmp_path / "envcache")) == 1


def test_waiting_for_another_build_is_bounded_by_timeout(tmp_path):
    """Another process holds the entry's lock (as a builder would) and never
    finishes: the run gives up after --timeout, naming the lock."""
    model, cache = tmp_path / "model.onnx", tmp_path / "cache"
    mlp_model(model, "N", np.random.randn(8, 4).astype(np.float32))
    np.savez(tmp_path / "all.npz", **batch(3))
    finish(run_cached(1, model, cache, ["--inputs", tmp_path / "all.npz"], tmp_path / "a.npz"))
    [entry] = cache_entries(cache)
    (cache / entry).unlink()
    with open(cache / (entry + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        p = tessera("run", model, "--cache-dir", cache, "--timeout", "1", "--inputs", tmp_path / "all.npz",
                    "-o", tmp_path / "b.npz", timeout=30)
    assert p.returncode != 0
    assert entry + ".lock" in p.stderr and "raise --timeout" in p.stderr, p.stderr
    assert not (tmp_path / "b.npz").exists()


def test_failed_build_leaves_no_cache_entry(tmp_path):
    model, cache = tmp_path / "bad.onnx", tmp_path / "cache"
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 2])
    y = h.make_tensor_value_info("y", T.FLOAT, ["N", 2])
    g = h.make_graph([h.make_node("NoSuchOp", ["x"], ["y"], name="mystery")], "bad", [x], [y])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), str(model))
    np.savez(tmp_path / "all.npz", x=np.zeros((2, 2), np.float32))
    p = launch(2, "run", model, "--dp", "--cache-dir", cache, "--inputs", tmp_path / "all.npz", "-o", tmp_path / "o.npz")
    assert p.returncode != 0 and "NoSuchOp" in p.stderr, p.stderr
    assert cache_entries(cache) == []
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize("world", [1, 2, 3])
def test_data_parallel_simple_example(world):
    example = os.path.join(os.path.dirname(os.path.abspath(BIN)), "data_parallel_simple_example")
    p = subprocess.run([BIN, "launch", "--nproc-per-node", str(world), "--", example], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"data parallel over {world} ranks: 21 requests -> output [21,100] in the original order" in p.stdout
