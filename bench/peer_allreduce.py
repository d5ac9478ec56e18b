"""The NCCL-in-a-CUDA-graph all-reduce peer of ../shared/bench/peers.py tp, alone
(that script's first section: same sizes, same capture of 20 calls, same
`bench` timer imported from it), plus a 512 MiB point for bus bandwidth.
Run: python3 -m torch.distributed.run --nproc_per_node=2 peer_allreduce.py DIR_WITH_PEERS_PY"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, sys.argv[1])
from peers import bench  # noqa: E402

dist.init_process_group("nccl")
r = dist.get_rank()
torch.cuda.set_device(r)
for nbytes in (8 << 10, 256 << 10, 4 << 20, 64 << 20, 512 << 20):
    x = torch.ones(nbytes // 2, dtype=torch.bfloat16, device="cuda")
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            dist.all_reduce(x)
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        for _ in range(20):
            dist.all_reduce(x)
    us = bench(lambda: g.replay()) * 1e3 / 20
    n = dist.get_world_size()
    if r == 0:
        print(f"peer nccl_allreduce {nbytes:>10d} B  {us:9.2f} us  busbw {nbytes / us / 1e3 * 2 * (n - 1) / n:7.1f} GB/s", flush=True)
dist.destroy_process_group()
