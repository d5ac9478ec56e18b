"""`tessera generate`'s benchmark flags (bench/run_gpu.sh decode), on the CPU
with the tiny GPT-2 fixture: --ignore-eos runs every prompt to --max-new-tokens
past its EOS, with the tokens it would have made anyway; --stats-json FILE
writes rank 0's gen::Stats with the engine's target and dtype; a --stats-json
path that cannot be written fails before the model is loaded, with one error
line naming the flag, and leaves no file behind.
"""
import json
import shutil

from tsr_cli import binary_path, error_line

FIXTURE = binary_path().parents[1] / "tests" / "fixtures" / "hf" / "gpt2-tiny"
PROMPT = "3,17,200,45"
N = 16


def generate(tessera, model, tmp_path, *args):
    out = tmp_path / f"gen-{len(list(tmp_path.iterdir()))}.json"
    p = tessera("generate", "--model", model, "-q", "-o", out, "--max-new-tokens", N, *args, timeout=300)
    assert p.returncode == 0, f"tessera generate failed ({p.returncode}): {p.stderr.strip()[-3000:]}"
    return json.loads(out.read_text())


def with_eos(tmp_path, eos):
    """The fixture with its EOS id changed to `eos` (config.json and generation_config.json)."""
    d = tmp_path / f"gpt2-eos{eos}"
    shutil.copytree(FIXTURE, d)
    for name in ("config.json", "generation_config.json"):
        f = d / name
        if f.exists():
            cfg = json.loads(f.read_text())
            cfg["eos_token_id"] = eos
            f.write_text(json.dumps(cfg))
    return d


def test_ignore_eos_runs_past_eos(tessera, tmp_path):
    [ref] = generate(tessera, FIXTURE, tmp_path, "--prompt-ids", PROMPT)
    assert len(ref["tokens"]) == N
    # Make the greedy sequence's fourth token the EOS: without the flag it stops there.
    eos = ref["tokens"][3]
    model = with_eos(tmp_path, eos)
    [stopped] = generate(tessera, model, tmp_path, "--prompt-ids", PROMPT)
    assert stopped["finish_reason"] == "eos"
    assert stopped["tokens"] == ref["tokens"][: ref["tokens"].index(eos) + 1]
    [full] = generate(tessera, model, tmp_path, "--prompt-ids", PROMPT, "--ignore-eos")
    assert full["finish_reason"] == "length"
    assert full["tokens"] == ref["tokens"]


def test_stats_json(tessera, tmp_path):
    stats = tmp_path / "stats.json"
    prompts = [PROMPT, "5,6", "9,8,7,6,5,4"]
    args = [a for p in prompts for a in ("--prompt-ids", p)]
    res = generate(tessera, FIXTURE, tmp_path, *args, "--batch", 2, "--ignore-eos", "--stats-json", stats)
    assert [len(r["tokens"]) for r in res] == [N] * len(prompts)
    s = json.loads(stats.read_text())
    assert (s["target"], s["dtype"], s["slots"], s["requests"], s["ignore_eos"]) == ("cpu", "f32", 2, 3, True)
    assert s["prompt_tokens"] == sum(len(p.split(",")) for p in prompts)
    assert s["generated_tokens"] == N * len(prompts)
    # Two slots, three prompts of N tokens (the first from the prefill): at least 2 * (N - 1) steps.
    assert 2 * (N - 1) <= s["decode_steps"] <= 3 * (N - 1)
    assert s["prefill_ms"] > 0 and s["decode_ms"] > 0
    expected = (s["generated_tokens"] - s["requests"]) / (s["decode_ms"] / 1000)
    assert abs(s["decode_tokens_per_s"] - expected) <= 1e-6 * expected
    assert s["wall_s"] * 1000 >= s["prefill_ms"] + s["decode_ms"]


def test_stats_json_bad_path_fails_first(tessera, tmp_path):
    out = tmp_path / "out.json"
    missing = tmp_path / "no-such-dir" / "stats.json"
    p = tessera("generate", "--model", FIXTURE, "-q", "-o", out, "--prompt-ids", PROMPT, "--stats-json", missing)
    msg = error_line(p)
    assert "--stats-json" in msg and "does not exist" in msg, msg
    assert not missing.parent.exists() and not out.exists()
    # A directory is not a file to write either.
    p = tessera("generate", "--model", FIXTURE, "-q", "-o", out, "--prompt-ids", PROMPT, "--stats-json", tmp_path)
    msg = error_line(p)
    assert "--stats-json" in msg and "is a directory" in msg, msg
    assert not out.exists()
