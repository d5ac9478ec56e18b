"""Build targets and precision settings through the CLI, on any machine:
--autocast and the deprecated --enabled-precisions (run on the CPU backend,
whose f16/bf16 kernels compute in fp32, so CI proves the pass), and the
errors of --target cuda and `tessera batch` where they cannot work."""
import json

import numpy as np
import pytest

import test_cuda_parity
import test_models as tm
from tsr_cli import WARNING_PREFIX, error_line
from tsr_compare import assert_outputs_close

HALF_TOL = 2e-2


@pytest.mark.parametrize("flags", [("--autocast", "bf16"), ("--autocast", "fp16"), ("--enabled-precisions", "fp16")],
                         ids=["autocast-bf16", "autocast-fp16", "enabled_precisions"])
@pytest.mark.parametrize("name", ["mlp_dynamo", "llama_dynamo", "resnet_torchscript"])
def test_autocast_matches_fp32_reference(tessera, tmp_path, name, flags):
    model, inputs, _ = tm.fixture_paths(name)
    engine = tmp_path / "m.tsr"
    p = tessera.build_ok(model, engine, *flags)
    if flags[0] == "--enabled-precisions":
        assert any(ln.startswith(WARNING_PREFIX) and "deprecated" in ln for ln in p.stderr.splitlines()), p.stderr
    dump = tessera("inspect", engine).stdout
    assert "Cast" in dump, "autocast inserted no casts"
    fresh = tm.fresh_inputs(tm.load_npz(inputs))
    np.savez(tmp_path / "in.npz", **fresh)
    actual = tessera.run_ok(engine, tmp_path / "out.npz", inputs_npz=tmp_path / "in.npz")
    assert_outputs_close(actual, tm.run_ort(name, fresh), tol=HALF_TOL, label=f"{name} {' '.join(flags)}")


def test_bad_enabled_precision(tessera, tmp_path):
    model, _, _ = tm.fixture_paths("mlp_dynamo")
    msg = error_line(tessera.build(model, tmp_path / "m.tsr", "--enabled-precisions", "int4"))
    assert "int4" in msg and not (tmp_path / "m.tsr").exists()


@pytest.mark.skipif(test_cuda_parity.gpu_present(), reason="this machine has a GPU")
def test_target_cuda_without_gpu_is_a_clear_error(tessera, tmp_path):
    model, _, _ = tm.fixture_paths("mlp_dynamo")
    msg = error_line(tessera.build(model, tmp_path / "m.tsr", "--target", "cuda"))
    assert "cuda" in msg and ("GPU" in msg or "CUDA" in msg), msg
    assert not (tmp_path / "m.tsr").exists()


def test_batch_bad_manifest(tessera, tmp_path):
    bad = tmp_path / "manifest.json"
    bad.write_text("{not json")
    msg = error_line(tessera("batch", bad))
    assert str(bad) in msg


def test_batch_reports_each_failing_case(tessera, tmp_path):
    model, inputs, _ = tm.fixture_paths("mlp_dynamo")
    cases = [{"model": str(model), "inputs": str(inputs), "output": str(tmp_path / "ok.npz")},
             {"model": str(tmp_path / "missing.onnx"), "inputs": str(inputs), "output": str(tmp_path / "bad.npz")}]
    (tmp_path / "m.json").write_text(json.dumps(cases))
    p = tessera("batch", tmp_path / "m.json")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / "ok.npz").is_file() and not (tmp_path / "bad.npz").exists()
    assert "missing.onnx" in (tmp_path / "bad.npz.err").read_text()
