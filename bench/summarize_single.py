"""One table from one device call: for each case of shared/bench/peers.py,
tessera's median ms (tessera bench, CUDA events), the best PyTorch mode's
median ms, their ratio, and the fraction of the measured ceiling (bf16
matrix rate for compute-bound cases, copy bandwidth for memory-bound ones).

  python3 bench/summarize_single.py DIR   (DIR holds peers.json, peak.json, tessera_bench.txt)
"""
import json
import re
import sys
from pathlib import Path

# FLOPs and bytes moved per run (weights once + activations in and out), from the model shapes.
def llama(B, T):
    p = 4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336
    return 2 * p * B * T + 4 * B * 32 * T * T * 128 / 2, 2 * p + 2 * 2 * B * T * 4096


def gpt2(B, T):
    p = 124_000_000
    return 2 * p * B * T + 4 * 12 * B * 12 * T * T * 64 / 2, 2 * p + 2 * B * T * 50257


def mlp(B):
    p = 2 * 4096 * 16384
    return 2 * p * B, 2 * p + 2 * B * (2 * 4096 + 16384)


def toy(B):
    p = 10 * 3200 + 3200 * 1600 + 1600 * 500 + 500 * 100
    return 2 * p * B, 4 * p


CASES = {  # case: (flops, bytes, bound)
    "toy_mlp_B20": (*toy(20), "launch"),
    "mlp_B8": (*mlp(8), "memory"),
    "mlp_B2048": (*mlp(2048), "compute"),
    "llama_layer_B1T2048": (*llama(1, 2048), "compute"),
    "llama_layer_B16T512": (*llama(16, 512), "compute"),
    "llama_layer_B64T1": (*llama(64, 1), "memory"),
    "gpt2_B1T128": (*gpt2(1, 128), "launch"),
    "gpt2_B8T1024": (*gpt2(8, 1024), "compute"),
}


def tessera_ms(path, case):
    """p50 of `case` in tessera_bench.txt, whose sections start with '### <case>'."""
    if not path.exists():
        return None
    for section in path.read_text().split("### ")[1:]:
        name, _, body = section.partition("\n")
        m = re.search(r"latency ms: p50 ([0-9.]+)", body)
        if name.strip() == case and m:
            return float(m.group(1))
    return None


def main(d):
    d = Path(d)
    peers = json.loads((d / "peers.json").read_text()) if (d / "peers.json").exists() else {}
    peak = json.loads((d / "peak.json").read_text()) if (d / "peak.json").exists() else {}
    print(f"GPU: {peers.get('gpu', peak.get('gpu', '?'))}; measured copy {peak.get('copy_GBps', 0):.0f} GB/s, "
          f"bf16 GEMM {peak.get('bf16_TFLOPs', 0):.0f} TFLOP/s")
    print("| case | tessera ms | best peer ms (mode) | tessera / peer time | speed-up | achieved | fraction of measured ceiling |")
    print("|---|---|---|---|---|---|---|")
    for case, (flops, nbytes, bound) in CASES.items():
        t = tessera_ms(d / "tessera_bench.txt", case)
        modes = {k.split("/")[1]: v for k, v in peers.items() if k.startswith(case + "/")}
        best = min(modes.items(), key=lambda kv: kv[1]) if modes else None
        if t is None:
            print(f"| {case} | (no result) | {best[1]:.3f} ({best[0]}) |  |  |  |  |" if best else f"| {case} | (no result) | | | | | |")
            continue
        tf = flops / t / 1e9
        gbs = nbytes / t / 1e6
        if bound == "compute":
            ach, frac = f"{tf:.0f} TFLOP/s", tf / peak.get("bf16_TFLOPs", 795)
        else:
            ach, frac = f"{gbs:.0f} GB/s", gbs / peak.get("copy_GBps", 4200)
        ratio = f"{t / best[1]:.2f}" if best else ""
        speed = f"{best[1] / t:.2f}x" if best else ""
        peer = f"{best[1]:.3f} ({best[0]})" if best else ""
        print(f"| {case} | {t:.3f} | {peer} | {ratio} | {speed} | {ach} | {frac:.2f} ({bound}-bound) |")


if __name__ == "__main__":
    main(sys.argv[1])
