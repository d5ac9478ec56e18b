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
MODEL_PARAMS = [pytest.param(name, ac, id=f"{name}/{ac or 'fp32'}") for name in tm.NAMES for ac in ("", "fp16", "bf16")]
FP32_MODEL_TOL = 1e-5
HALF_TOL = 2e-2


def _save_inputs(path, feeds):
    np.savez(path, **feeds)


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


@pytest.mark.parametrize("pid", [p.id for p in MODEL_PARAMS])
def test_model_cuda(batch, pid):
    _check(batch, pid)
