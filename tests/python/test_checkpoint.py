"""Hugging Face checkpoints through the CLI: files written by the Python
`safetensors` package read by `tessera inspect-checkpoint`; checkpoints written
by `tessera make-checkpoint` read by `safetensors` and loaded by
`transformers` (skipped without torch/transformers); truncated and mismatched
files give one error line naming the tensor.
"""
import json
from pathlib import Path

import numpy as np
import pytest

from tsr_cli import error_line

safetensors_numpy = pytest.importorskip("safetensors.numpy")
from safetensors import safe_open  # noqa: E402


def torch_and_transformers():
    try:
        import torch
        import transformers
    except Exception:
        pytest.skip("torch / transformers not installed")
    return torch, transformers


def inspect(tessera, path, *extra):
    p = tessera("inspect-checkpoint", path, *extra)
    assert p.returncode == 0, p.stderr.strip()
    return json.loads(p.stdout)


def make(tessera, out, *args):
    p = tessera("make-checkpoint", *args, "-o", out)
    assert p.returncode == 0, p.stderr.strip()
    return Path(out)


NUMPY_CODES = {"float32": "F32", "float16": "F16", "float64": "F64", "int64": "I64", "int32": "I32",
               "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def test_reads_files_written_by_python_safetensors(tessera, tmp_path):
    rng = np.random.default_rng(0)
    tensors = {f"t.{name}": (rng.standard_normal((3, 4)) * 10).astype(name) for name in NUMPY_CODES}
    tensors["scalar"] = np.array(2.5, dtype=np.float32)
    tensors["odd"] = np.arange(7, dtype=np.int8)  # leaves later offsets unaligned if the writer does not sort
    safetensors_numpy.save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "np"})
    out = inspect(tessera, tmp_path)
    seen = {t["name"]: t for t in out["tensors"]}
    assert sorted(seen) == sorted(tensors)
    for name, a in tensors.items():
        assert seen[name]["shape"] == list(a.shape), name
        assert seen[name]["dtype"] == NUMPY_CODES[str(a.dtype)], name
    assert "config" not in out


def test_reads_python_sharded_index(tessera, tmp_path):
    a = {"a.weight": np.ones((4, 4), np.float32)}
    b = {"b.weight": np.zeros((2, 8), np.float16)}
    safetensors_numpy.save_file(a, str(tmp_path / "model-00001-of-00002.safetensors"))
    safetensors_numpy.save_file(b, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {"metadata": {"total_size": 96},
             "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    out = inspect(tessera, tmp_path)
    files = {t["name"]: Path(t["file"]).name for t in out["tensors"]}
    assert files == index["weight_map"]


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
@pytest.mark.parametrize("shard", [None, "40KB"])
def test_make_checkpoint_reads_in_safetensors(tessera, tmp_path, model_type, shard):
    extra = ["--shard-size", shard] if shard else []
    d = make(tessera, tmp_path / "ckpt", "--model-type", model_type, "--dtype", "f16", "--seed", "3", *extra)
    out = inspect(tessera, d)
    assert out["validated"] and out["config"]["model_type"] == model_type
    files = sorted(d.glob("*.safetensors"))
    assert (len(files) > 1) == bool(shard)
    assert (d / "model.safetensors.index.json").exists() == bool(shard)
    found = {}
    for f in files:
        with safe_open(str(f), "np") as st:
            assert st.metadata() == {"format": "pt"}
            for k in st.keys():
                found[k] = st.get_tensor(k)
    listed = {t["name"]: t for t in out["tensors"]}
    assert sorted(found) == sorted(listed)
    for k, a in found.items():
        assert list(a.shape) == listed[k]["shape"] and a.dtype == np.float16, k
        if k.endswith(".bias"):
            assert not a.any(), k
        elif "ln_" in k or "norm" in k:
            assert (a == 1).all(), k
        else:
            assert 0.005 < float(a.astype(np.float32).std()) < 0.03, k


@pytest.mark.parametrize("model_type", ["gpt2", "llama"])
@pytest.mark.parametrize("shard", [None, "40KB"])
def test_make_checkpoint_loads_in_transformers(tessera, tmp_path, model_type, shard):
    torch, transformers = torch_and_transformers()
    extra = ["--shard-size", shard] if shard else []
    d = make(tessera, tmp_path / "ckpt", "--model-type", model_type, "--seed", "5", *extra)
    model, info = transformers.AutoModelForCausalLM.from_pretrained(str(d), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    cfg = json.loads((d / "config.json").read_text())
    assert model.config.model_type == model_type and model.config.vocab_size == cfg["vocab_size"]
    if model_type == "llama":
        assert model.config.num_key_value_heads == 2
        assert model.config.rope_parameters["rope_type"] == "llama3"
        assert model.config.rope_parameters["rope_theta"] == 500000.0
    # Every parameter equals the bytes tessera wrote.
    state = model.state_dict()
    for f in d.glob("*.safetensors"):
        with safe_open(str(f), "pt") as st:
            for k in st.keys():
                assert torch.equal(state[k], st.get_tensor(k)), k
    with torch.no_grad():
        logits = model(torch.tensor([[1, 2, 3, 4]])).logits
    assert logits.shape == (1, 4, cfg["vocab_size"]) and torch.isfinite(logits).all()


def test_make_checkpoint_set_overrides(tessera, tmp_path):
    d = make(tessera, tmp_path / "c", "--model-type", "llama", "--set", "num_hidden_layers=1",
             "--set", "rope_scaling=none", "--set", "tie_word_embeddings=true")
    out = inspect(tessera, d)
    assert out["config"]["layers"] == 1 and out["config"]["rope_scaling"] is None
    names = [t["name"] for t in out["tensors"]]
    assert "lm_head.weight" not in names and "model.layers.1.input_layernorm.weight" not in names
    p = tessera("make-checkpoint", "--model-type", "bert", "-o", tmp_path / "x")
    assert "gpt2" in error_line(p)


def test_truncated_file_names_the_tensor(tessera, tmp_path):
    d = make(tessera, tmp_path / "c", "--model-type", "gpt2")
    f = d / "model.safetensors"
    data = f.read_bytes()
    f.write_bytes(data[:-100])
    msg = error_line(tessera("inspect-checkpoint", d))
    assert "model.safetensors" in msg and "truncated" in msg
    assert "'transformer." in msg  # the last tensor in the file, by name


def test_mismatched_config_names_the_tensor(tessera, tmp_path):
    d = make(tessera, tmp_path / "c", "--model-type", "llama")
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (d / "config.json").write_text(json.dumps(cfg))
    msg = error_line(tessera("inspect-checkpoint", d))
    assert "'model.layers.0.mlp.gate_proj.weight'" in msg and "[128,64]" in msg and "[96,64]" in msg
    assert inspect(tessera, d, "--no-validate")["validated"] is False


def test_missing_shard_names_tensor_and_file(tessera, tmp_path):
    d = make(tessera, tmp_path / "c", "--model-type", "llama", "--shard-size", "40KB")
    index = json.loads((d / "model.safetensors.index.json").read_text())
    victim = index["weight_map"]["model.norm.weight"]
    (d / victim).unlink()
    msg = error_line(tessera("inspect-checkpoint", d))
    assert victim in msg and "missing" in msg and "'" in msg


def test_pytorch_bin_is_refused_with_advice(tessera, tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02")
    msg = error_line(tessera("inspect-checkpoint", tmp_path))
    assert "safe_serialization" in msg
