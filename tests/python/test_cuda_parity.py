"""GPU parity (the CUDA backend's half of the per-op harness, and the model
families): every op case of test_ops.py and every model fixture of
test_models.py is built for --target cuda and run, all in ONE process
(`tessera batch`, so the GPU is initialised once), then compared here with
ONNX Runtime exactly as the CPU tests compare: fp32 rel. L2 <= 1e-5 (ops and
models), autocast fp16/bf16 model builds <= 2e-2 against the fp32 reference.
Each case runs twice in the batch: the compared run replays the CUDA graph
captured after the first.

Skips cleanly where no GPU is visible (CI); on the GPU machine
`bench/run_gpu.sh` runs it.
"""
import json
import shutil
import subprocess

import numpy as np
import onnx
import pytest

import test_models as tm
import test_ops as to
from tsr_compare import assert_outputs_close


def gpu_present():
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    p = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return p.returncode == 0 and "GPU" in p.stdout


pytestmark = pytest.mark.skipif(not gpu_present(), reason="no GPU visible: the CUDA parity harness runs on the GPU machine")

OP_PARAMS = to._params()
# Attention shapes that reach the CUDA flash kernel (head dim 64/128, f16), which
# the small model fixtures (head dim 16) do not: (B, Hq, Hkv, T, D, causal).
ATTN_SHAPES = [(1, 8, 2, 100, 128, True), (2, 4, 4, 64, 64, True), (1, 4, 1, 200, 128, False), (1, 2, 2, 17, 64, True)]
ATTN_PARAMS = [pytest.param(*sh, id="attention/B{}_Hq{}_Hkv{}_T{}_D{}_{}".format(*sh[:5], "causal" if sh[5] else "full"))
               for sh in ATTN_SHAPES]
# Decode-shaped attention (few query rows against a long, partly written
# cache): the CUDA decode kernel. (B, Hq, Hkv, Tq, Tk, D, dtype, visible keys
# for query row 0; row i sees one more.)
DECODE_SHAPES = [(1, 12, 12, 1, 256, 64, "float16", 129), (8, 32, 8, 1, 300, 128, "float16", 300),
                 (2, 4, 4, 3, 70, 64, "float16", 40), (1, 4, 2, 1, 200, 64, "float32", 77),
                 (2, 8, 2, 2, 1000, 128, "float32", 999)]
DECODE_PARAMS = [pytest.param(*sh, id="decode_attention/B{}_Hq{}_Hkv{}_Tq{}_Tk{}_D{}_{}_vis{}".format(*sh))
                 for sh in DECODE_SHAPES]
MODEL_PARAMS = [pytest.param(name, ac, id=f"{name}/{ac or 'fp32'}") for name in tm.NAMES for ac in ("", "fp16", "bf16")]
FP32_MODEL_TOL = 1e-5
HALF_TOL = 2e-2


def _save_inputs(path, feeds):
    np.savez(path, **feeds)


def attention_case(B, Hq, Hkv, Tq, Tk, D, dt, mask):
    """The exporters' pattern: softmax(Q·Kᵀ·s + mask)·V, Q [B, Hq, Tq, D] against
    K, V [B, Hkv, Tk, D] repeated to Hq heads (Unsqueeze → Expand → Reshape);
    fuse_attention turns it into Attention. Returns the model, fresh inputs and
    a float64 reference from those inputs, cast to `dt`."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh
    r, dt = Hq // Hkv, np.dtype(dt)
    et = TP.FLOAT16 if dt == np.float16 else TP.FLOAT
    inits = [nh.from_array(np.array([2], np.int64), "ax"), nh.from_array(np.array([B, Hkv, r, Tk, D], np.int64), "to"),
             nh.from_array(np.array([B, Hq, Tk, D], np.int64), "shape"), nh.from_array(np.array(1 / np.sqrt(D), dt), "scale"),
             nh.from_array(mask.astype(dt), "mask")]
    nodes = []
    for x in ("k", "v"):
        nodes += [h.make_node("Unsqueeze", [x, "ax"], [x + "u"]), h.make_node("Expand", [x + "u", "to"], [x + "e"]),
                  h.make_node("Reshape", [x + "e", "shape"], [x + "r"])]
    nodes += [h.make_node("Transpose", ["kr"], ["kt"], perm=[0, 1, 3, 2]), h.make_node("MatMul", ["q", "kt"], ["s"]),
              h.make_node("Mul", ["s", "scale"], ["ss"]), h.make_node("Add", ["ss", "mask"], ["sm"]),
              h.make_node("Softmax", ["sm"], ["p"], axis=-1), h.make_node("MatMul", ["p", "vr"], ["out"])]
    ins = [h.make_tensor_value_info("q", et, [B, Hq, Tq, D])] + [h.make_tensor_value_info(x, et, [B, Hkv, Tk, D]) for x in ("k", "v")]
    g = h.make_graph(nodes, "attn", ins, [h.make_tensor_value_info("out", et, [B, Hq, Tq, D])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 18)])
    rng = np.random.default_rng()
    feeds = {"q": rng.standard_normal((B, Hq, Tq, D)).astype(dt),
             "k": rng.standard_normal((B, Hkv, Tk, D)).astype(dt),
             "v": rng.standard_normal((B, Hkv, Tk, D)).astype(dt)}
    q, k, v = (feeds[x].astype(np.float64) for x in ("q", "k", "v"))
    k, v = np.repeat(k, r, axis=1), np.repeat(v, r, axis=1)
    sc = q @ k.transpose(0, 1, 3, 2) / np.sqrt(D) + mask.astype(dt).astype(np.float64)
    p = np.exp(sc - sc.max(-1, keepdims=True))
    ref = (p / p.sum(-1, keepdims=True)) @ v
    return m, feeds, {"out": ref.astype(dt)}


def attention_model(B, Hq, Hkv, T, D, causal):
    """Self-attention in f16, causal or full."""
    mask = np.where(np.tril(np.ones((T, T), bool)), 0, -np.inf) if causal else np.zeros((T, T))
    return attention_case(B, Hq, Hkv, T, T, D, np.float16, mask)


def decode_attention_model(B, Hq, Hkv, Tq, Tk, D, dtype, visible):
    """Few query rows against a longer cache; key j is visible to query row i when j < visible + i."""
    vis = np.arange(Tk)[None, :] < visible + np.arange(Tq)[:, None]
    model, feeds, ref = attention_case(B, Hq, Hkv, Tq, Tk, D, dtype, np.where(vis, 0, -np.inf))
    return model, feeds, ref, (HALF_TOL if np.dtype(dtype) == np.float16 else FP32_MODEL_TOL)


@pytest.fixture(scope="session")
def batch(tessera, tmp_path_factory):
    """Export every case, run them all in one `tessera batch` process, return id -> (output path, expected, tol)."""
    d = tmp_path_factory.mktemp("cuda_parity")
    manifest, refs = [], {}
    for i, param in enumerate(OP_PARAMS):
        case = param.values[0]
        try:
            model = to.make_model(case)
        except Exception as e:  # a malformed case fails in test_ops.py too
            refs[param.id] = ("invalid", str(e), None)
            continue
        feeds = to.feeds_of(case)
        onnx.save(model, d / f"op{i}.onnx")
        _save_inputs(d / f"op{i}.inputs.npz", feeds)
        out = d / f"op{i}.out.npz"
        manifest.append({"model": str(d / f"op{i}.onnx"), "inputs": str(d / f"op{i}.inputs.npz"), "output": str(out), "target": "cuda"})
        refs[param.id] = (out, to.run_ort(model, feeds), getattr(case, "tol", None))
    cases = [(p, *attention_model(*p.values), HALF_TOL) for p in ATTN_PARAMS]
    cases += [(p, *decode_attention_model(*p.values)) for p in DECODE_PARAMS]
    for param, model, feeds, expected, tol in cases:
        tag = param.id.replace("/", "_")
        onnx.save(model, d / f"{tag}.onnx")
        _save_inputs(d / f"{tag}.inputs.npz", feeds)
        out = d / f"{tag}.out.npz"
        manifest.append({"model": str(d / f"{tag}.onnx"), "inputs": str(d / f"{tag}.inputs.npz"), "output": str(out), "target": "cuda"})
        refs[param.id] = (out, expected, tol)
    for param in MODEL_PARAMS:
        name, ac = param.values
        model, inputs, _ = tm.fixture_paths(name)
        fresh = tm.fresh_inputs(tm.load_npz(inputs))
        tag = f"{name}.{ac or 'fp32'}"
        _save_inputs(d / f"{tag}.inputs.npz", fresh)
        out = d / f"{tag}.out.npz"
        manifest.append({"model": str(model), "inputs": str(d / f"{tag}.inputs.npz"), "output": str(out), "target": "cuda", "autocast": ac})
        refs[param.id] = (out, tm.run_ort(name, fresh), HALF_TOL if ac else FP32_MODEL_TOL)
    (d / "manifest.json").write_text(json.dumps(manifest))
    p = tessera("batch", d / "manifest.json", timeout=1200)
    assert p.returncode == 0, f"tessera batch failed: {p.stderr.strip()[-2000:]}"
    return refs


def _check(batch, pid):
    out, expected, tol = batch[pid]
    if out == "invalid":
        pytest.fail(f"case could not be made: {expected}")
    err = out.with_name(out.name + ".err")
    if err.exists():
        pytest.fail(f"tessera (cuda) failed: {err.read_text().strip()}")
    actual = tm.load_npz(out)
    assert_outputs_close(actual, expected, tol=tol, label=f"{pid} (cuda)")


@pytest.mark.parametrize("pid", [p.id for p in OP_PARAMS])
def test_op_cuda(batch, pid):
    _check(batch, pid)


@pytest.mark.parametrize("pid", [p.id for p in ATTN_PARAMS])
def test_attention_cuda(batch, pid):
    _check(batch, pid)


@pytest.mark.parametrize("pid", [p.id for p in DECODE_PARAMS])
def test_decode_attention_cuda(batch, pid):
    _check(batch, pid)


@pytest.mark.parametrize("pid", [p.id for p in MODEL_PARAMS])
def test_model_cuda(batch, pid):
    _check(batch, pid)
