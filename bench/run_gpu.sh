#!/usr/bin/env bash
# The CUDA backend's device call (issue 3): pick the stages, in one call.
#   bench/run_gpu.sh parity          GPU op harness + model families vs ONNX Runtime (tests/python/test_cuda_parity.py)
#   bench/run_gpu.sh generate        tessera generate --target cuda vs transformers on the GPU (tests/python/test_cuda_generate.py)
#   bench/run_gpu.sh bench           export the peer models (shared/bench/peers.py export), build them --target cuda, tessera bench
#   bench/run_gpu.sh peers           the card's measured ceilings, then peers.py single (eager / compile / reduce-overhead)
#   bench/run_gpu.sh summary         the table for bench/RESULTS.md (bench/summarize_single.py)
# Expects the build packed by bench/pack_gpu.sh under .carry/gpu and the peer
# scripts under .carry/peers; writes raw files to $OUT (few: the device returns at most 8).
set -uo pipefail
cd "$(dirname "$0")/.."
G=$PWD/.carry/gpu
[ -d /tmp/tessera_lib/lib ] || { mkdir -p /tmp/tessera_lib && tar -C /tmp/tessera_lib -xJf "$G/lib.tar.xz"; }
export LD_LIBRARY_PATH=$G:/tmp/tessera_lib/lib:${LD_LIBRARY_PATH:-}
export TESSERA_BIN=$G/tessera PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
PM=/tmp/peer_models
CASES="toy_mlp_B20 mlp_B8 mlp_B2048 llama_layer_B1T2048 llama_layer_B16T512 llama_layer_B64T1 gpt2_B1T128 gpt2_B8T1024"
nvidia-smi -L
missing=$(ldd "$G/tessera" "$G/libtessera.so" | grep "not found" | sort -u)
[ -z "$missing" ] || { echo "missing libraries: $missing"; exit 1; }
for stage in "$@"; do
  echo "=== $stage"
  case $stage in
    parity)
      timeout 560 python3 -m pytest -q -p no:cacheprovider -rf tests/python/test_cuda_parity.py \
        "tests/python/test_distributed_run.py::test_collective_model_on_cuda_over_nccl" 2>&1 | tee "$OUT/parity.txt" | tail -60 ;;
    generate)
      timeout 500 python3 -m pytest -q -p no:cacheprovider -rf -s tests/python/test_cuda_generate.py 2>&1 | tee "$OUT/generate.txt" | tail -40 ;;
    bench)
      [ -d $PM ] || timeout 400 python3 .carry/peers/peers.py export $PM 2>&1 | grep -v Warning | tail -10
      for c in $CASES; do
        [ -f $PM/$c.onnx ] || { echo "$c: not exported"; continue; }
        "$G/tessera" build $PM/$c.onnx -o $PM/$c.tsr --target cuda 2>&1 | tail -3
        echo "### $c" >> "$OUT/tessera_bench.txt"
        "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 50 --top 8 2>&1 | tee -a "$OUT/tessera_bench.txt" | head -16
      done ;;
    peers)
      python3 bench/measure_peak.py "$OUT/peak.json"
      timeout 500 python3 .carry/peers/peers.py single --out "$OUT/peers.json" 2>&1 | grep -E "ms|Error" ;;
    summary)
      python3 bench/summarize_single.py "$OUT" | tee "$OUT/summary.md" ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
