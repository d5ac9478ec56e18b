"""The card's measured ceilings, for the 'fraction of the physical limit'
column: device-to-device copy bandwidth (GB/s, read + write) and the bf16
matrix rate of a large square GEMM (TFLOP/s). Prints one JSON line."""
import json
import sys

import torch


def timed(fn, iters=20):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    a, b = torch.cuda.Event(True), torch.cuda.Event(True)
    a.record()
    for _ in range(iters):
        fn()
    b.record()
    torch.cuda.synchronize()
    return a.elapsed_time(b) / iters


x = torch.empty(1 << 30, dtype=torch.uint8, device="cuda")
y = torch.empty_like(x)
copy_ms = timed(lambda: y.copy_(x))
n = 8192
m1 = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
m2 = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
gemm_ms = timed(lambda: m1 @ m2)
r = {"gpu": torch.cuda.get_device_name(), "copy_GBps": 2 * x.numel() / copy_ms / 1e6, "bf16_TFLOPs": 2 * n ** 3 / gemm_ms / 1e9}
print(json.dumps(r))
if len(sys.argv) > 1:
    json.dump(r, open(sys.argv[1], "w"))
