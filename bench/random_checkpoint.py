"""A random Llama-3-8B-shaped Hugging Face checkpoint, made by transformers on
the GPU and written by save_pretrained, for the decode benchmark
(bench/run_gpu.sh decode_llama).

Why not `tessera make-checkpoint --preset llama3-8b`: it draws every weight on
one CPU thread, about 75 s per GB on a 2-core build machine (a 2-layer
llama3-8b, 2.97 GB, took 3 min 38 s with a compile running alongside), so the
16 GB checkpoint would take most of a 10-minute device command or more;
transformers' init on the GPU plus save_pretrained is bound by the disk. The shapes are tessera's preset (src/frontend/hf/config.cc,
preset_config "llama3-8b"), and the stage checks the result with
`tessera inspect-checkpoint` before using it.

  python3 bench/random_checkpoint.py OUT_DIR [--dtype bf16] [--device cuda] [--set key=value ...]
"""
import argparse
import json
import time

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
# tessera's llama3-8b preset, in transformers' names.
LLAMA3_8B = dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                 num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=131072,
                 rms_norm_eps=1e-5, hidden_act="silu", tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                 bos_token_id=128000, eos_token_id=128001, rope_theta=500000.0,
                 rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                               "original_max_position_embeddings": 8192})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="bf16")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field (a JSON value or a bare word), e.g. num_hidden_layers=2")
    a = ap.parse_args()
    fields = dict(LLAMA3_8B)
    for kv in a.set:
        key, eq, value = kv.partition("=")
        if not eq or not key:
            ap.error(f"--set '{kv}': expected key=value")
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value
    if "hidden_size" in fields and "num_attention_heads" in fields:
        fields["head_dim"] = fields["hidden_size"] // fields["num_attention_heads"]
    t0 = time.perf_counter()
    torch.manual_seed(a.seed)
    with torch.device(a.device):
        model = AutoModelForCausalLM.from_config(LlamaConfig(**fields), dtype=DTYPES[a.dtype])
    t1 = time.perf_counter()
    model.save_pretrained(a.out)
    t2 = time.perf_counter()
    n = sum(p.numel() for p in model.parameters())
    print(f"wrote {a.out}: llama {n / 1e9:.2f}B params {a.dtype} "
          f"({n * DTYPES[a.dtype].itemsize / 1e9:.1f} GB; init {t1 - t0:.1f} s, save {t2 - t1:.1f} s)")


if __name__ == "__main__":
    main()
