"""The transformers peers of `tessera generate`: decode tokens/s of one
Hugging Face checkpoint directory (config.json + safetensors, e.g. written by
`tessera make-checkpoint`) under transformers' own `generate`, greedy, on
fixed random prompts (seeded), every sequence made to run N new tokens.

Modes (--modes, in this order, on one loaded model):
  eager           model.generate(ids, max_new_tokens=N, min_new_tokens=N,
                  do_sample=False): the default dynamic KV cache, no compile.
  static_compile  cache_implementation="static": on cuda transformers 5.x
                  compiles generate's decode forward itself (compile_config:
                  fullgraph, reduce-overhead CUDA graphs). The docs' extra
                  `model.forward = torch.compile(..., mode="reduce-overhead")`
                  fails on top of it in 5.17 (CUDA-graph outputs overwritten),
                  so it is applied on cpu only.

Per mode: the median wall time of the whole generate call (N new tokens) and
of a prefill-only call (max_new_tokens=1, same prompts), each between
torch.cuda.synchronize() calls, after warm-up calls that compile. Figures:
  tokens_per_s        B*N / generate_s            (end to end, prefill included)
  decode_tokens_per_s B*(N-1) / (generate_s - prefill_s)
                      (the first token of each sequence comes from the
                      prefill; the same definition as `tessera generate`)
  decode_ms_per_step  (generate_s - prefill_s) / (N-1) * 1000

  python3 bench/decode_peers.py --model DIR --dtype f16 --batch 8 --prompt-len 128 \\
      --new-tokens 128 --modes eager,static_compile --out peers.json [--device cpu]
"""
import argparse
import json
import platform
import statistics
import sys
import time
import traceback

import torch
import transformers
from transformers import AutoModelForCausalLM

DTYPES = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
MODES = ("eager", "static_compile")
DEFINITIONS = {
    "generate_s": "wall seconds of one model.generate call producing new_tokens tokens per sequence (median of repeats)",
    "prefill_s": "wall seconds of the same call with max_new_tokens=1 (prompt forward + first token; median)",
    "tokens_per_s": "batch * new_tokens / generate_s (end to end, prefill included)",
    "decode_tokens_per_s": "batch * (new_tokens - 1) / (generate_s - prefill_s): decode steps only, "
                           "the same definition as tessera generate's decode_tokens_per_s",
    "decode_ms_per_step": "(generate_s - prefill_s) / (new_tokens - 1) * 1000: one decode step of the whole batch",
    "warmup_s": "wall seconds of the warm-up calls (compiling, for static_compile), not timed above",
    "decode_weight_bytes": "parameter bytes one decode step reads: all parameters but the input token and "
                           "position embedding tables (a step reads one row of each), counting a tied LM head once",
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="Hugging Face checkpoint directory")
    p.add_argument("--dtype", choices=sorted(DTYPES), default="f16")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--modes", default="eager,static_compile", help="comma-separated: " + ", ".join(MODES))
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each kind per mode")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls of each kind per mode before timing")
    p.add_argument("--seed", type=int, default=0, help="prompt ids: torch.Generator seed")
    p.add_argument("--device", default="cuda")
    p.add_argument("--out", help="JSON file to write")
    p.add_argument("--print-prompt-ids", action="store_true",
                   help="print the prompts (one line each, ids joined by commas, for tessera generate --prompt-ids) and stop")
    a = p.parse_args(argv)
    if not a.out and not a.print_prompt_ids:
        p.error("--out is required")
    a.modes = [m for m in a.modes.split(",") if m]
    bad = [m for m in a.modes if m not in MODES]
    if bad or not a.modes:
        p.error(f"--modes {','.join(a.modes)}: unknown {bad} (known: {', '.join(MODES)})")
    if a.new_tokens < 2:
        p.error("--new-tokens must be at least 2 (decode-only figures subtract a 1-token prefill call)")
    if min(a.batch, a.prompt_len, a.repeats) < 1 or a.warmup < 0:
        p.error("--batch, --prompt-len and --repeats must be positive, --warmup non-negative")
    return a


def prompt_ids(vocab, a):
    """The benchmark's prompts: the same ids for tessera and for every mode here."""
    g = torch.Generator().manual_seed(a.seed)
    return torch.randint(0, vocab, (a.batch, a.prompt_len), generator=g)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def decode_weight_bytes(model):
    """Bytes of the parameters one decode step reads (see DEFINITIONS)."""
    params = dict(model.named_parameters())  # tied weights appear once
    skip = set()
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if head is None or emb.weight is not head.weight:
        skip.add(id(emb.weight))
    for name, w in params.items():
        if name.endswith("wpe.weight"):  # GPT-2's learned positions
            skip.add(id(w))
    return sum(w.numel() * w.element_size() for w in params.values() if id(w) not in skip)


def timed(fn, device):
    sync(device)
    t = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t, out


def run_mode(model, mode, ids, mask, a, device):
    B, P, N = ids.shape[0], ids.shape[1], a.new_tokens
    eos = model.generation_config.eos_token_id
    kw = dict(attention_mask=mask, do_sample=False, pad_token_id=(eos[0] if isinstance(eos, list) else eos) or 0)
    if mode == "static_compile":
        kw["cache_implementation"] = "static"
        # transformers 5.x compiles generate's decode forward itself when the
        # cache is static on cuda (GenerationConfig.compile_config: fullgraph,
        # mode "reduce-overhead"); wrapping model.forward in a second
        # reduce-overhead compile as well fails in 5.17 ("accessing tensor
        # output of CUDAGraphs that has been overwritten"), so on cuda the
        # library's own compile is the recipe; on cpu forward is compiled here.
        if device.type != "cuda":
            model.forward = torch.compile(model.forward, fullgraph=True)
        recipe = ('generate(..., cache_implementation="static"): transformers compiles the decode forward '
                  '(torch.compile, compile_config defaults: fullgraph, reduce-overhead / CUDA graphs)')
    else:
        kw["cache_implementation"] = None
        recipe = "generate(...) with the default dynamic cache, no compile"

    def gen(n):
        return lambda: model.generate(ids, max_new_tokens=n, min_new_tokens=n, **kw)

    r = {"recipe": recipe}
    # The N-token call first: a static cache keeps the largest length seen, so
    # the 1-token call that follows reuses its shapes (no recompile).
    t0 = time.perf_counter()
    for _ in range(a.warmup):
        _, out = timed(gen(N), device)
        if tuple(out.shape) != (B, P + N):
            raise RuntimeError(f"{mode}: generate returned shape {tuple(out.shape)}, expected {(B, P + N)}")
        timed(gen(1), device)
    r["warmup_s"] = time.perf_counter() - t0
    full = [timed(gen(N), device)[0] for _ in range(a.repeats)]
    pre = [timed(gen(1), device)[0] for _ in range(a.repeats)]
    g, f = statistics.median(full), statistics.median(pre)
    r.update(generate_s=g, prefill_s=f, generate_s_all=full, prefill_s_all=pre, tokens_per_s=B * N / g)
    if g > f:
        r.update(decode_tokens_per_s=B * (N - 1) / (g - f), decode_ms_per_step=(g - f) / (N - 1) * 1000)
    else:  # noise larger than the decode time: say so instead of a negative rate
        r.update(decode_tokens_per_s=None, decode_ms_per_step=None, note="generate_s <= prefill_s")
    if mode == "static_compile":  # transformers 5.x: a static cache on cuda also compiles generate's decode call
        r["generate_auto_compile"] = device.type == "cuda" and not model.generation_config.disable_compile
    print(f"[{mode}] generate {g * 1000:.1f} ms, prefill {f * 1000:.1f} ms, {r['tokens_per_s']:.1f} tokens/s end to end, "
          f"{r['decode_tokens_per_s'] or float('nan'):.1f} decode tokens/s (warm-up {r['warmup_s']:.1f} s)", flush=True)
    return r


def main(argv=None):
    a = parse_args(argv)
    if a.print_prompt_ids:  # no model load: the vocabulary size is all it needs
        with open(f"{a.model}/config.json") as f:
            vocab = json.load(f)["vocab_size"]
        for row in prompt_ids(vocab, a).tolist():
            print(",".join(map(str, row)))
        return 0
    device = torch.device(a.device)
    t0 = time.perf_counter()
    # On cuda straight onto the device (device_map needs accelerate, which the GPU image has): no host
    # copy of a 16 GB checkpoint first.
    kw = {"device_map": a.device} if device.type == "cuda" else {}
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=DTYPES[a.dtype], **kw).to(device).eval()
    load_s = time.perf_counter() - t0
    cfg = model.config
    vocab = cfg.vocab_size
    ids = prompt_ids(vocab, a).to(device)
    mask = torch.ones_like(ids)
    res = {
        "tool": "bench/decode_peers.py",
        "model": a.model,
        "model_type": cfg.model_type,
        "layers": cfg.num_hidden_layers,
        "hidden": cfg.hidden_size,
        "vocab": vocab,
        "params": sum(p.numel() for p in model.parameters()),
        "decode_weight_bytes": decode_weight_bytes(model),
        "dtype": a.dtype,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "attn_implementation": getattr(cfg, "_attn_implementation", None),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "batch": a.batch,
        "prompt_len": a.prompt_len,
        "new_tokens": a.new_tokens,
        "seed": a.seed,
        "prompt_ids": "torch.randint(0, vocab, (batch, prompt_len), generator=torch.Generator().manual_seed(seed))",
        "repeats": a.repeats,
        "warmup": a.warmup,
        "load_s": load_s,
        "definitions": DEFINITIONS,
        "modes": {},
    }
    print(f"{a.model}: {cfg.model_type} {res['params'] / 1e6:.1f}M params {a.dtype} on {res['gpu'] or device}, "
          f"B{a.batch} P{a.prompt_len} N{a.new_tokens}; torch {torch.__version__}, transformers {transformers.__version__}",
          flush=True)
    failed = False
    for mode in a.modes:  # generate runs under no_grad itself
        try:
            res["modes"][mode] = run_mode(model, mode, ids, mask, a, device)
        except Exception as e:  # one failing mode must not lose the others' figures
            failed = True
            traceback.print_exc()
            res["modes"][mode] = {"error": f"{type(e).__name__}: {e}"[:2000]}
    with open(a.out, "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
