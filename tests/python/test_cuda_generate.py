"""Generation on the GPU (issue 7's GPU acceptance): checkpoints written by
transformers' own save_pretrained, here on the GPU machine, run by
`tessera generate --target cuda` with the KV cache kept on the device and
updated in place, the decode step replayed as a CUDA graph:

- prompt logits match transformers' forward on the same GPU: fp32 rel. L2
  <= 1e-4 (TF32 off on both sides), bf16 <= 2e-2 against the fp32 forward;
- greedy decoding in fp32 gives the 32 tokens of transformers' `generate`;
- five prompts of different lengths through two slots (continuous batching,
  prefill into a slot's rows at the caller's address) give each prompt's
  single-sequence tokens, with and without CUDA graphs;
- TP=2 over NCCL gives the TP=1 tokens (needs two GPUs).

Skips cleanly without a GPU (CI); `bench/run_gpu.sh generate` runs it.
"""
import json
import pathlib
import sys

import numpy as np
import pytest

from test_cuda_parity import gpu_present

pytestmark = pytest.mark.skipif(not gpu_present(), reason="no GPU visible: GPU generation runs on the GPU machine")

FIXTURE_DIR = pathlib.Path(__file__).resolve().parents[1] / "fixtures"
MODELS = ["gpt2-tiny", "llama-tiny", "llama-tiny-tied"]
PROMPT = [3, 17, 200, 45, 99, 7, 311, 64]
PROMPTS = [[3, 17, 200], [5], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50], [100, 7], [9, 8, 7, 6, 5]]


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.isfinite(a).all(), "non-finite values in tessera's output"
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """save_pretrained on this machine; transformers' fp32 and bf16 logits and greedy tokens on its GPU."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    sys.path.insert(0, str(FIXTURE_DIR))
    import make_hf_checkpoints as mk

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    root = tmp_path_factory.mktemp("hf")
    out = {}
    for name in MODELS:
        torch.manual_seed(1234)
        model = mk.MODELS[name]().eval()
        model.save_pretrained(root / name)
        model = model.cuda()
        ids = torch.tensor([PROMPT], device="cuda")
        with torch.no_grad():
            f32 = model(ids).logits.float().cpu().numpy()
            greedy = model.generate(ids, do_sample=False, max_new_tokens=32, min_new_tokens=32, pad_token_id=0)
            bf16 = model.to(torch.bfloat16)(ids).logits.float().cpu().numpy()
        out[name] = {"dir": root / name, "f32": f32, "bf16": bf16, "greedy": greedy[0, len(PROMPT):].cpu().tolist()}
    return out


def generate(tessera, tmp_path, model_dir, *args, ranks=1):
    out = tmp_path / f"gen-{len(list(tmp_path.iterdir()))}.json"
    cmd = ["generate", "--model", model_dir, "--target", "cuda", "-q", "-o", out, *args]
    if ranks > 1:
        cmd = ["launch", "--nproc-per-node", ranks, "--", tessera.binary, *cmd]
    p = tessera(*cmd, timeout=300)
    assert p.returncode == 0, f"tessera generate failed ({p.returncode}): {p.stderr.strip()[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("dtype,tol", [("f32", 1e-4), ("bf16", 2e-2)])
@pytest.mark.parametrize("model", MODELS)
def test_prompt_logits_match_transformers_on_gpu(tessera, tmp_path, checkpoints, model, dtype, tol):
    ref = checkpoints[model]
    out = tmp_path / "logits.npz"
    p = tessera("generate", "--model", ref["dir"], "--target", "cuda", "--dtype", dtype, "--prompt-ids", ids_arg(PROMPT),
                "--prompt-logits", out)
    assert p.returncode == 0, p.stderr
    with np.load(out) as z:
        logits = z["logits"]
    assert logits.shape == ref["f32"].shape
    err = rel_l2(logits, ref["f32"])
    print(f"{model} {dtype}: rel L2 {err:.2e} vs transformers fp32 (transformers bf16: {rel_l2(ref['bf16'], ref['f32']):.2e})")
    assert err <= tol


@pytest.mark.parametrize("model", MODELS)
def test_greedy_tokens_match_transformers_on_gpu(tessera, tmp_path, checkpoints, model):
    ref = checkpoints[model]
    [res] = generate(tessera, tmp_path, ref["dir"], "--prompt-ids", ids_arg(PROMPT), "--max-new-tokens", 32)
    assert res["tokens"] == ref["greedy"]


@pytest.mark.parametrize("graphs", [True, False], ids=["cuda-graph", "op-by-op"])
@pytest.mark.parametrize("model", ["gpt2-tiny", "llama-tiny"])
def test_continuous_batching_on_gpu_equals_single(tessera, tmp_path, checkpoints, model, graphs):
    d = checkpoints[model]["dir"]
    flags = [] if graphs else ["--no-cuda-graph"]
    single = [generate(tessera, tmp_path, d, "--prompt-ids", ids_arg(p), "--max-new-tokens", 12, *flags)[0]["tokens"] for p in PROMPTS]
    args = [a for p in PROMPTS for a in ("--prompt-ids", ids_arg(p))]
    batched = generate(tessera, tmp_path, d, *args, "--max-new-tokens", 12, "--batch", 2, *flags)
    assert [r["tokens"] for r in batched] == single


def gpu_count():
    torch = pytest.importorskip("torch")
    return torch.cuda.device_count()


@pytest.mark.parametrize("model", ["gpt2-tiny", "llama-tiny"])
def test_tp2_over_nccl_equals_tp1(tessera, tmp_path, checkpoints, model):
    if gpu_count() < 2:
        pytest.skip("TP=2 over NCCL needs two GPUs")
    d = checkpoints[model]["dir"]
    args = ["--prompt-ids", ids_arg(PROMPT), "--max-new-tokens", 32]
    one = generate(tessera, tmp_path, d, *args)
    two = generate(tessera, tmp_path, d, *args, "--tp", 2, ranks=2)
    assert [r["tokens"] for r in two] == [r["tokens"] for r in one]
