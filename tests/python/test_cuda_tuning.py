"""Build-time GEMM tactic timing and its timing cache (`tessera build --target
cuda --timing-cache FILE`), on the GPU machine.

A first build times each GEMM's candidates and writes the winners to the
cache; a rebuild with the same cache times nothing and chooses the same
algorithms; the engine still matches ONNX Runtime. A cache that is not JSON,
or of an older format, is set aside with a message and rewritten, never a
failed build. Skips cleanly where no GPU is visible (CI).
"""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from test_cuda_parity import gpu_present
from tsr_compare import assert_outputs_close

pytestmark = pytest.mark.skipif(not gpu_present(), reason="no GPU visible: GEMM tuning runs on the GPU machine")


def mlp_model(path, rows=64, hidden=512, inner=1024):
    """x[rows, hidden] -> MatMul -> Relu -> MatMul, fp16: two GEMMs of decode-like shape."""
    rng = np.random.default_rng()
    w1 = (rng.standard_normal((hidden, inner)) / np.sqrt(hidden)).astype(np.float16)
    w2 = (rng.standard_normal((inner, hidden)) / np.sqrt(inner)).astype(np.float16)
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
             helper.make_node("Relu", ["h"], ["r"], name="act"),
             helper.make_node("MatMul", ["r", "w2"], ["y"], name="fc2")]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [rows, hidden])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [rows, hidden])],
                              [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, path)
    return rng.standard_normal((rows, hidden)).astype(np.float16)


def tuned_lines(proc):
    return [ln for ln in proc.stderr.splitlines() if ln.startswith("tessera: tuned ")]


def algos(tessera, engine):
    """The cublaslt_algo attribute of each GEMM, as `inspect` prints it."""
    p = tessera("inspect", engine)
    assert p.returncode == 0, p.stderr
    return sorted(ln.split("cublaslt_algo=")[1].split("]")[0] for ln in p.stdout.splitlines() if "cublaslt_algo=" in ln)


def test_timing_cache_is_written_then_reused(tessera, tmp_path):
    model, cache = tmp_path / "mlp.onnx", tmp_path / "cache" / "gemm_timing.json"
    x = mlp_model(model)
    first = tessera.build_ok(model, tmp_path / "a.tsr", "--target", "cuda", "--timing-cache", cache, "-v")
    assert len(tuned_lines(first)) == 2, first.stderr
    saved = json.loads(cache.read_text())
    assert saved["version"] == 3
    assert len(saved["entries"]) == 2
    for key, entry in saved["entries"].items():
        assert len(entry["algo"]) == 8 and entry["us"] > 0 and entry["candidates"] >= 1, (key, entry)

    second = tessera.build_ok(model, tmp_path / "b.tsr", "--target", "cuda", "--timing-cache", cache, "-v")
    assert tuned_lines(second) == [], "a rebuild with the cache timed again: " + second.stderr
    assert algos(tessera, tmp_path / "a.tsr") == algos(tessera, tmp_path / "b.tsr")
    assert len(algos(tessera, tmp_path / "b.tsr")) == 2

    np.save(tmp_path / "x.npy", x)
    got = tessera.run_ok(tmp_path / "b.tsr", tmp_path / "out.npz", {"x": tmp_path / "x.npy"})
    ref = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert_outputs_close(got, {"y": ref}, label="tuned fp16 MLP")


@pytest.mark.parametrize("content,why", [("{not json", "unreadable"),
                                         (json.dumps({"version": 2, "entries": {}}), "has another format")])
def test_bad_timing_cache_is_set_aside(tessera, tmp_path, content, why):
    model, cache = tmp_path / "mlp.onnx", tmp_path / "gemm_timing.json"
    mlp_model(model)
    cache.write_text(content)
    p = tessera.build_ok(model, tmp_path / "a.tsr", "--target", "cuda", "--timing-cache", cache, "-v")
    assert f"GEMM timing cache {cache} {why}" in p.stderr and "starting anew" in p.stderr, p.stderr
    assert len(tuned_lines(p)) == 2, p.stderr
    assert json.loads(cache.read_text())["version"] == 3
