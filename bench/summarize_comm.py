"""Markdown rows comparing `tessera bench-comm` (NCCL, in a CUDA graph) with
the NCCL-in-graph peer (bench/peer_allreduce.py) from the same device call.
Usage: python3 bench/summarize_comm.py RESULTS_DIR"""
import re
import sys

d = sys.argv[1]
peer = {}
for line in open(f"{d}/peer_allreduce.txt"):
    m = re.search(r"peer nccl_allreduce\s+(\d+) B\s+([\d.]+) us\s+busbw\s+([\d.]+)", line)
    if m:
        peer[int(m[1])] = (float(m[2]), float(m[3]))
ours = {}
for line in open(f"{d}/bench_comm_all_reduce.txt"):
    f = line.replace("[rank 0]:", "").split()
    if len(f) == 7 and f[0] == "all_reduce":
        ours[int(f[1])] = (float(f[2]), float(f[5]), float(f[6]))
print("| all-reduce size | tessera in graph (µs) | peer in graph (µs) | tessera / peer time | tessera busbw (GB/s) | peer busbw (GB/s) | busbw / 305 GB/s NVLink limit |")
print("|---|---|---|---|---|---|---|")
for size, (pt, pbw) in sorted(peer.items()):
    if size in ours:
        eager, gt, gbw = ours[size]
        print(f"| {size // 1024} KiB | {gt:.2f} | {pt:.2f} | {gt / pt:.2f} | {gbw:.1f} | {pbw:.1f} | {gbw / 305:.2f} |")

print("\n| collective (in a CUDA graph) | size | time (µs) | busbw (GB/s) |\n|---|---|---|---|")
last = {}
for line in open(f"{d}/bench_comm_others.txt"):
    f = line.replace("[rank 0]:", "").split()
    if len(f) == 7 and f[0] in ("all_gather", "reduce_scatter", "all_to_all", "broadcast"):
        last[f[0]] = (int(f[1]), float(f[5]), float(f[6]))
for op, (size, gt, gbw) in last.items():
    print(f"| {op} | {size >> 20} MiB | {gt:.1f} | {gbw:.1f} |")
