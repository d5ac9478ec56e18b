"""`tessera generate` on Hugging Face checkpoints written by transformers'
save_pretrained (tests/fixtures/hf, made by tests/fixtures/make_hf_checkpoints.py):
prompt logits match transformers' forward (fp32 rel. L2 <= 1e-4), greedy
decoding gives transformers' 32 tokens, continuous batching of prompts of
different lengths gives each prompt's single-sequence tokens, and TP=2, DP=2
and 2 DP x 2 TP ranks (gloo, under `tessera launch`) give the 1-rank tokens.
Bad checkpoints fail with one error line naming the tensor or file.
"""
import json
import shutil

import numpy as np
import pytest

from tsr_cli import binary_path, error_line

FIXTURES = binary_path().parents[1] / "tests" / "fixtures" / "hf"
MODELS = ["gpt2-tiny", "llama-tiny", "llama-tiny-tied"]


def fixture(name):
    with np.load(FIXTURES / f"{name}.npz") as z:
        return {k: z[k] for k in z.files}


def ids_arg(ids):
    return ",".join(str(int(i)) for i in ids)


def rel_l2(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.isfinite(a).all(), "non-finite values in tessera's output"
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def generate(tessera, tmp_path, model, *args, ranks=1, timeout=300):
    out = tmp_path / f"gen-{len(list(tmp_path.iterdir()))}.json"
    cmd = ["generate", "--model", FIXTURES / model, "-q", "-o", out, *args]
    if ranks > 1:
        cmd = ["launch", "--nproc-per-node", ranks, "--", tessera.binary, *cmd]
    p = tessera(*cmd, timeout=timeout)
    assert p.returncode == 0, f"tessera generate failed ({p.returncode}): {p.stderr.strip()[-3000:]}"
    return json.loads(out.read_text())


@pytest.mark.parametrize("model", MODELS)
def test_prompt_logits_match_transformers(tessera, tmp_path, model):
    ref = fixture(model)
    out = tmp_path / "logits.npz"
    p = tessera("generate", "--model", FIXTURES / model, "--prompt-ids", ids_arg(ref["prompt_ids"][0]), "--prompt-logits", out)
    assert p.returncode == 0, p.stderr
    with np.load(out) as z:
        logits = z["logits"]
    assert logits.shape == ref["logits"].shape
    assert rel_l2(logits, ref["logits"]) <= 1e-4


@pytest.mark.parametrize("model", MODELS)
def test_greedy_tokens_match_transformers(tessera, tmp_path, model):
    ref = fixture(model)
    [res] = generate(tessera, tmp_path, model, "--prompt-ids", ids_arg(ref["prompt_ids"][0]), "--max-new-tokens", 32)
    assert res["tokens"] == ref["greedy"].tolist()
    assert res["finish_reason"] == "length"


PROMPTS = [[3, 17, 200], [5], [40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50], [100, 7], [9, 8, 7, 6, 5]]


def prompt_args(prompts=PROMPTS):
    return [a for p in prompts for a in ("--prompt-ids", ids_arg(p))]


@pytest.fixture(scope="module")
def single_tokens(tessera, tmp_path_factory):
    """Each prompt alone, one sequence at a time: the reference for batching and ranks."""
    out = {}
    for model in ["gpt2-tiny", "llama-tiny"]:
        tmp = tmp_path_factory.mktemp(model)
        out[model] = [generate(tessera, tmp, model, "--prompt-ids", ids_arg(p), "--max-new-tokens", 12)[0]["tokens"] for p in PROMPTS]
    return out


@pytest.mark.parametrize("model", ["gpt2-tiny", "llama-tiny"])
def test_continuous_batching_matches_single_sequences(tessera, tmp_path, model, single_tokens):
    # 5 prompts of different lengths through 2 slots: finished sequences hand their slot to the next prompt.
    res = generate(tessera, tmp_path, model, *prompt_args(), "--max-new-tokens", 12, "--batch", 2)
    assert [r["index"] for r in res] == list(range(len(PROMPTS)))
    for r, want in zip(res, single_tokens[model]):
        assert r["tokens"] == want, f"prompt {r['index']}"


@pytest.mark.parametrize("model", ["gpt2-tiny", "llama-tiny"])
@pytest.mark.parametrize("mesh", [("--tp", 2), ("--dp", 2), ("--dp", 2, "--tp", 2)], ids=["tp2", "dp2", "dp2xtp2"])
def test_ranks_match_one_rank(tessera, tmp_path, model, mesh, single_tokens):
    ranks = int(np.prod([m for m in mesh if isinstance(m, int)]))
    res = generate(tessera, tmp_path, model, *prompt_args(), "--max-new-tokens", 12, *map(str, mesh), ranks=ranks)
    assert [r["index"] for r in res] == list(range(len(PROMPTS)))
    for r, want in zip(res, single_tokens[model]):
        assert r["tokens"] == want, f"prompt {r['index']}"


def test_sampling_is_seeded(tessera, tmp_path):
    args = [*prompt_args(PROMPTS[:2]), "--max-new-tokens", 10, "--do-sample", "--temperature", "0.8", "--top-k", "50", "--top-p", "0.9"]
    a = generate(tessera, tmp_path, "llama-tiny", *args, "--seed", 7)
    b = generate(tessera, tmp_path, "llama-tiny", *args, "--seed", 7, "--batch", 1)
    assert [r["tokens"] for r in a] == [r["tokens"] for r in b]


def copy_model(tmp_path, model):
    dst = tmp_path / model
    shutil.copytree(FIXTURES / model, dst)
    return dst


def run_bad(tessera, model_dir, *args):
    p = tessera("generate", "--model", model_dir, "--prompt-ids", "1,2,3", "-q", *args)
    return error_line(p)


def test_missing_checkpoint_file(tessera, tmp_path):
    d = copy_model(tmp_path, "llama-tiny")
    (d / "model.safetensors").unlink()
    assert "model.safetensors" in run_bad(tessera, d)


def test_truncated_checkpoint(tessera, tmp_path):
    d = copy_model(tmp_path, "gpt2-tiny")
    f = d / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    msg = run_bad(tessera, d)
    assert "model.safetensors" in msg


def poison(model_dir, tensor):
    """Overwrite one tensor of model.safetensors with NaN, in place."""
    f = model_dir / "model.safetensors"
    raw = bytearray(f.read_bytes())
    n = int.from_bytes(raw[:8], "little")
    entry = json.loads(raw[8:8 + n])[tensor]
    begin, end = (8 + n + o for o in entry["data_offsets"])
    dt = {"F32": np.float32, "F16": np.float16, "BF16": np.uint16}[entry["dtype"]]
    nan = np.full((end - begin) // np.dtype(dt).itemsize, np.nan if dt != np.uint16 else 0x7FC0, dt)
    raw[begin:end] = nan.tobytes()
    f.write_bytes(bytes(raw))


@pytest.mark.parametrize("args", [[], ["--repetition-penalty", "1.3"]], ids=["greedy", "repetition-penalty"])
def test_nan_logits_are_refused(tessera, tmp_path, args):
    d = copy_model(tmp_path, "gpt2-tiny")
    poison(d, "transformer.ln_f.weight")
    msg = run_bad(tessera, d, "--max-new-tokens", "4", *args)
    assert "NaN" in msg, msg


def test_config_disagrees_with_weights(tessera, tmp_path):
    d = copy_model(tmp_path, "llama-tiny")
    cfg = json.loads((d / "config.json").read_text())
    cfg["intermediate_size"] = 96
    (d / "config.json").write_text(json.dumps(cfg))
    msg = run_bad(tessera, d)
    assert "mlp" in msg and "96" in msg


def test_bad_prompts(tessera, tmp_path):
    d = FIXTURES / "gpt2-tiny"
    assert "vocabulary" in error_line(tessera("generate", "--model", d, "--prompt-ids", "1,99999", "-q"))
    assert "not a token id" in error_line(tessera("generate", "--model", d, "--prompt-ids", "1,x", "-q"))
    long = ids_arg(range(1, 40))
    assert "KV cache" in error_line(tessera("generate", "--model", d, "--prompt-ids", long, "--max-seq-len", 16, "-q"))
    assert "ranks" in error_line(tessera("generate", "--model", d, "--prompt-ids", "1", "--tp", 2, "-q"))


def with_tokenizer(tmp_path, model="gpt2-tiny"):
    """The fixture plus a GPT-2-style byte-level BPE tokenizer trained to the model's 512-token vocabulary."""
    tokenizers = pytest.importorskip("tokenizers")
    d = copy_model(tmp_path, model)
    tok = tokenizers.Tokenizer(tokenizers.models.BPE())
    tok.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = tokenizers.decoders.ByteLevel()
    trainer = tokenizers.trainers.BpeTrainer(vocab_size=512, special_tokens=["<|endoftext|>"],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=rng.integers(2, 9))) for _ in range(3000)]
    corpus = ["the quick brown fox jumps over the lazy dog", "hello world, tensor parallel inference"] * 50 + \
        [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    tok.train_from_iterator(corpus, trainer)
    assert tok.get_vocab_size() == 512, "every id the model can produce must decode"
    tok.save(str(d / "tokenizer.json"))
    return d, tok


def generate_text(tessera, d, tmp_path, *args):
    out = tmp_path / f"text-{len(list(tmp_path.iterdir()))}.json"
    p = tessera("generate", "--model", d, "-q", "-o", out, *args, timeout=120)
    assert p.returncode == 0, p.stderr
    return json.loads(out.read_text())


def test_text_prompts_and_stop_strings(tessera, tmp_path):
    d, tok = with_tokenizer(tmp_path)
    prompt = "hello world, the quick"
    [r] = generate_text(tessera, d, tmp_path, "--prompt", prompt, "--max-new-tokens", 24)
    assert r["prompt_ids"] == tok.encode(prompt).ids
    assert r["text"] == tok.decode(r["tokens"], skip_special_tokens=True)
    full = r["text"]
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop, f"generated text too short to pick a stop string: {full!r}"
    [s] = generate_text(tessera, d, tmp_path, "--prompt", prompt, "--max-new-tokens", 24, "--stop", stop)
    assert s["text"] == full[: full.find(stop)]
    assert s["finish_reason"] == "stop"
    # The streamed text on the terminal (one prompt, one slot) is the prompt followed by the generation.
    p = tessera("generate", "--model", d, "--prompt", prompt, "--max-new-tokens", 24, timeout=120)
    assert p.returncode == 0 and p.stdout == prompt + full + "\n", p.stdout


def test_data_parallel_gpt2_example(tessera, tmp_path):
    example = binary_path().parent / "data_parallel_gpt2"
    if not example.is_file():
        pytest.skip(f"{example} not built")
    p = tessera("launch", "--nproc-per-node", 2, "--", example, FIXTURES / "gpt2-tiny", timeout=120)
    assert p.returncode == 0, p.stderr + p.stdout
    lines = [ln for ln in p.stdout.splitlines() if "-> " in ln]
    assert len(lines) == 6 and all("(= alone)" in ln for ln in lines), p.stdout
    assert {ln.split("]: ")[0] for ln in lines} == {"[rank 0", "[rank 1"}


def test_tp4_replicates_kv_heads(tessera, tmp_path, single_tokens):
    # llama-tiny has 2 KV heads: at TP=4 each rank keeps a replica of the one its query head reads.
    res = generate(tessera, tmp_path, "llama-tiny", *prompt_args(), "--max-new-tokens", 12, "--tp", 4, ranks=4)
    for r, want in zip(res, single_tokens["llama-tiny"]):
        assert r["tokens"] == want, f"prompt {r['index']}"
