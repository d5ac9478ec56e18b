#!/usr/bin/env bash
# One device call on 2 GPUs: the NCCL tests, then bench-comm next to the
# NCCL-in-graph peer (shared/bench/peers.py tp) measured minutes apart.
# Expects a stripped build and the libraries the image lacks under .carry/gpu
# (see bench/README.md) and the peer scripts under .carry/peers.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 NCCL_DEBUG=${NCCL_DEBUG:-WARN}
G=.carry/gpu
export LD_LIBRARY_PATH=$G:$G/lib:${LD_LIBRARY_PATH:-}
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
nvidia-smi -L; nvidia-smi topo -m | head -4
$G/tessera_tests --gtest_filter='Nccl*:Collectives*' 2>&1 | tail -15
$G/tessera launch --nproc-per-node 2 -- $G/tessera bench-comm --backend nccl --op all_reduce \
  --min-bytes 8K --max-bytes 512M --warmup 3 2>&1 | tee "$OUT/bench_comm_all_reduce.txt"
$G/tessera launch --nproc-per-node 2 -- $G/tessera bench-comm --backend nccl \
  --op all_gather --op reduce_scatter --op all_to_all --op broadcast --min-bytes 8K --max-bytes 256M 2>&1 | tee "$OUT/bench_comm_others.txt"
PYTHONUNBUFFERED=1 timeout 240 python3 -m torch.distributed.run --nproc_per_node=2 bench/peer_allreduce.py .carry/peers 2>&1 \
  | grep -E "peer|Error" | tee "$OUT/peer_allreduce.txt"
