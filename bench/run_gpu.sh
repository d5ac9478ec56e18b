#!/usr/bin/env bash
# The CUDA backend's device call (issue 3): pick the stages, in one call.
#   bench/run_gpu.sh parity          GPU op harness + model families vs ONNX Runtime (tests/python/test_cuda_parity.py)
#   bench/run_gpu.sh tuning          the GEMM tuner's timing-cache tests alone (tests/python/test_cuda_tuning.py; parity runs them too)
#   bench/run_gpu.sh generate        tessera generate --target cuda vs transformers on the GPU (tests/python/test_cuda_generate.py)
#   bench/run_gpu.sh bench           export the peer models (shared/bench/peers.py export), build them --target cuda, tessera bench
#   bench/run_gpu.sh inspect         after bench: tessera inspect of each engine (CASES="..." picks the cases, TOP=N the profile's length)
#   bench/run_gpu.sh ncu             after bench: Nsight Compute's speed of light per kernel of one run (NCU_CASES="...")
#   bench/run_gpu.sh attention_variants  after bench: the attention engines with TESSERA_ATTENTION=flash (tessera's kernels, not cuDNN's)
#   bench/run_gpu.sh lmhead_variants after bench: gpt2 B8 T1024 built and benched with TESSERA_GEMM_ROW_PHASES=1 (its
#                                    LM head split into row phases instead of N-padded and copied out), then with the
#                                    default again, and the GPU parity's unaligned-N GEMM cases with it
#   bench/run_gpu.sh pdl_variants    after bench: each engine benched twice more, with programmatic dependent launch
#                                    (the default on sm_90) and with TESSERA_PDL=0 (ordinary launches), back to back
#   bench/run_gpu.sh cudnn_variants  after bench: the cuDNN-attention engines benched with TESSERA_CUDNN_AUTOTUNE=1
#                                    (every heuristics plan timed on the first run) and without, back to back
#   bench/run_gpu.sh peers           the card's measured ceilings, then peers.py single (eager / compile / reduce-overhead)
#   bench/run_gpu.sh summary         the table for bench/RESULTS.md (bench/summarize_single.py)
#   bench/run_gpu.sh decode          GPT-2 124M fp16 decode, B1 and B8, prompt 128, 128 new tokens: tessera generate
#                                    vs transformers generate (eager) and static cache + torch.compile (~5 min)
#   bench/run_gpu.sh decode_llama    Llama-3-8B shape bf16 decode, B1, prompt 128, 64 new tokens, the same peers (~5 min)
#   bench/run_gpu.sh onegpu          the one-GPU distributed and cache tests: NCCL gtests, host-staged gloo TP=2 on one GPU, cuda cache entries
#   bench/run_gpu.sh profile         one GPT-2 124M fp16 decode step at B1 and B8, timed per node (generate --profile-step)
#   bench/run_gpu.sh llama_variants  after decode_llama: its tessera step profiled, with cuBLASLt and with the skinny GEMM kernel
#   bench/run_gpu.sh gpt2_variants   GPT-2 124M fp16 B8 decode with cuBLASLt and with the skinny GEMM kernel (step profiles)
#   bench/run_gpu.sh decode_summary  the decode table (bench/summarize_decode.py) from the decode stages run on this machine
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
KEEP=/tmp/decode_keep  # the decode stages' results, for decode_summary in a later call on the same machine
CASES=${CASES:-"toy_mlp_B20 mlp_B8 mlp_B2048 llama_layer_B1T2048 llama_layer_B16T512 llama_layer_B64T1 gpt2_B1T128 gpt2_B8T1024"}
TOP=${TOP:-8}  # bench: the per-layer profile's top nodes
nvidia-smi -L
missing=$(ldd "$G/tessera" "$G/libtessera.so" | grep "not found" | sort -u)
[ -z "$missing" ] || { echo "missing libraries: $missing"; exit 1; }
# One decode case: tessera generate (--stats-json), then bench/decode_peers.py, on the same prompt ids;
# then the stage's results so far, combined into $KEEP/STAGE.json and $OUT (a stage cut off keeps its done cases).
#   decode_case RAW CASE MODEL DTYPE BATCH PROMPT_LEN NEW_TOKENS    (RAW=/tmp/decode_raw/STAGE)
decode_case() {
  local raw=$1 c=$2 m=$3 dt=$4 b=$5 p=$6 n=$7 ids=() line
  while read -r line; do ids+=(--prompt-ids "$line"); done < <(python3 bench/decode_peers.py --model "$m" --batch "$b" --prompt-len "$p" --print-prompt-ids)
  echo "--- $c: tessera generate (${#ids[@]} args)"
  timeout 300 "$G/tessera" generate --model "$m" --target cuda --dtype "$dt" --ignore-eos -q --batch "$b" --max-new-tokens "$n" \
    --max-seq-len $((p + n)) "${ids[@]}" --stats-json "$raw/$c.tessera.json" > "$raw/$c.tessera.log" 2>&1
  tail -3 "$raw/$c.tessera.log"
  [ -s "$raw/$c.tessera.json" ] && rm -f "$raw/$c.tessera.log"  # the log is kept (in the stage's json) only on failure
  echo "--- $c: transformers"
  timeout 420 python3 bench/decode_peers.py --model "$m" --dtype "$dt" --batch "$b" --prompt-len "$p" --new-tokens "$n" \
    --modes eager,static_compile --out "$raw/$c.peers.json" 2>&1 | grep -E "^\[|params|Error|error" | tail -12
  python3 bench/summarize_decode.py combine "$raw" "$KEEP/${raw##*/}.json" && cp "$KEEP/${raw##*/}.json" "$OUT/"
}
for stage in "$@"; do
  echo "=== $stage"
  case $stage in
    parity)
      timeout 560 python3 -m pytest -q -p no:cacheprovider -rf tests/python/test_cuda_parity.py tests/python/test_cuda_tuning.py \
        "tests/python/test_distributed_run.py::test_collective_model_on_cuda_over_nccl" 2>&1 | tee "$OUT/parity.txt" | tail -60 ;;
    tuning)
      timeout 200 python3 -m pytest -q -p no:cacheprovider -rf tests/python/test_cuda_tuning.py 2>&1 | tee "$OUT/tuning_test.txt" | tail -5 ;;
    generate)
      timeout 500 python3 -m pytest -q -p no:cacheprovider -rf -s tests/python/test_cuda_generate.py 2>&1 | tee "$OUT/generate.txt" | tail -40 ;;
    bench)
      [ -d $PM ] || timeout 400 python3 .carry/peers/peers.py export $PM 2>&1 | grep -v Warning | tail -10
      for c in $CASES; do
        [ -f $PM/$c.onnx ] || { echo "$c: not exported"; continue; }
        echo "### $c" >> "$OUT/tuning.txt"
        "$G/tessera" build $PM/$c.onnx -o $PM/$c.tsr --target cuda -v > $PM/$c.build.log 2>&1 || tail -3 $PM/$c.build.log
        grep -E "tuned|note|warning" $PM/$c.build.log >> "$OUT/tuning.txt"
        echo "### $c" >> "$OUT/tessera_bench.txt"
        "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 50 --top $TOP 2>&1 | tee -a "$OUT/tessera_bench.txt" | head -16
      done ;;
    inspect)
      # after bench: each engine's layers (what the passes left), for the launch-bound cases
      for c in $CASES; do
        [ -f $PM/$c.tsr ] && { echo "### $c"; "$G/tessera" inspect $PM/$c.tsr 2>&1; } >> "$OUT/inspect.txt"
      done ;;
    ncu)
      # after bench: each kernel of one run of NCU_CASES under Nsight Compute (duration, DRAM and SM
      # throughput); needs profiling permission on the machine
      for c in ${NCU_CASES:-llama_layer_B64T1}; do
        [ -f $PM/$c.tsr ] || continue
        echo "### $c" >> "$OUT/ncu.txt"
        timeout 200 ncu --section SpeedOfLight --csv --launch-count ${NCU_LAUNCHES:-40} "$G/tessera" bench $PM/$c.tsr \
          --warmup 0 --iterations 1 --no-cuda-graph 2>&1 | grep -E '"(Duration|DRAM Throughput|Compute \(SM\) Throughput)"|ERR|rror' |
          awk -F'","' '{print substr($5, 1, 70) " | " $(NF-2) " " $(NF-1) " " $NF}' >> "$OUT/ncu.txt"
      done ;;
    attention_variants)
      # after bench: the engines with attention again, tessera's own attention kernels instead of cuDNN's
      for c in llama_layer_B1T2048 llama_layer_B16T512 gpt2_B1T128 gpt2_B8T1024; do
        [ -f $PM/$c.tsr ] || continue
        echo "### $c (TESSERA_ATTENTION=flash)" >> "$OUT/attention_variants.txt"
        TESSERA_ATTENTION=flash "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 50 --top 6 2>&1 |
          tee -a "$OUT/attention_variants.txt" | head -9
      done ;;
    pdl_variants)
      for c in $CASES; do
        [ -f $PM/$c.tsr ] || continue
        for pdl in 1 0; do
          echo "### $c TESSERA_PDL=$pdl" >> "$OUT/pdl_variants.txt"
          TESSERA_PDL=$pdl "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 200 --top 3 2>&1 |
            tee -a "$OUT/pdl_variants.txt" | grep latency
        done
      done ;;
    cudnn_variants)
      for c in llama_layer_B1T2048 llama_layer_B16T512 gpt2_B8T1024; do
        [ -f $PM/$c.tsr ] || continue
        for tune in 1 0; do
          echo "### $c TESSERA_CUDNN_AUTOTUNE=$tune" >> "$OUT/cudnn_variants.txt"
          TESSERA_CUDNN_AUTOTUNE=$tune "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 100 --top 3 2>&1 |
            tee -a "$OUT/cudnn_variants.txt" | grep -E "latency|note"
        done
      done ;;
    lmhead_variants)
      c=gpt2_B8T1024
      [ -f $PM/$c.onnx ] || { echo "$c: not exported (run the bench stage first)"; continue; }
      { echo "### $c, TESSERA_GEMM_ROW_PHASES=1 (the LM head split into row phases, no padded copy-out)"
        TESSERA_GEMM_ROW_PHASES=1 "$G/tessera" build $PM/$c.onnx -o $PM/$c.phases.tsr --target cuda -v 2>&1 | grep -E "tuned node_linear |error"
        TESSERA_GEMM_ROW_PHASES=1 "$G/tessera" bench $PM/$c.phases.tsr --warmup 10 --iterations 50 --top 4 2>&1 | head -8
        echo "### $c, the default (N padded, then copied out)"
        "$G/tessera" bench $PM/$c.tsr --warmup 10 --iterations 50 --top 4 2>&1 | head -8
        echo "### GPU parity, unaligned-N GEMM cases, TESSERA_GEMM_ROW_PHASES=1"
        TESSERA_GEMM_ROW_PHASES=1 timeout 300 python3 -m pytest -q -p no:cacheprovider -rf tests/python/test_cuda_parity.py \
          -k "pad-n or phases or linear_unaligned" 2>&1 | tail -5
      } | tee "$OUT/lmhead_variants.txt" ;;
    peers)
      python3 bench/measure_peak.py "$OUT/peak.json"
      timeout 500 python3 .carry/peers/peers.py single --out "$OUT/peers.json" 2>&1 | grep -E "ms|Error" ;;
    summary)
      python3 bench/summarize_single.py "$OUT" | tee "$OUT/summary.md" ;;
    decode)
      R=/tmp/decode_raw/decode; rm -rf $R; mkdir -p $R $KEEP
      [ -f /tmp/ckpt/gpt2/config.json ] ||
        "$G/tessera" make-checkpoint --model-type gpt2 --preset gpt2-124m --dtype f16 -o /tmp/ckpt/gpt2
      for b in 1 8; do decode_case $R gpt2_B$b /tmp/ckpt/gpt2 f16 $b 128 128; done ;;
    onegpu)
      "$G/tessera_tests" --gtest_filter='Nccl*:*Cache*' 2>&1 | tee "$OUT/onegpu.txt" | grep -E "OK|FAILED|PASSED|SKIPPED|error" | head -30
      timeout 300 python3 -m pytest -q -p no:cacheprovider -rfs tests/python/test_cuda_gloo_fallback.py tests/python/test_engine_cache.py \
        "tests/python/test_tensor_parallel.py::test_seed_simple_example_on_cuda" 2>&1 |
        tee -a "$OUT/onegpu.txt" | tail -15 ;;
    profile)
      [ -f /tmp/ckpt/gpt2/config.json ] ||
        "$G/tessera" make-checkpoint --model-type gpt2 --preset gpt2-124m --dtype f16 -o /tmp/ckpt/gpt2
      for b in 1 8; do
        echo "--- gpt2 f16 B$b" | tee -a "$OUT/profile.txt"
        ids=(); for i in $(seq $b); do ids+=(--prompt-ids "$(seq -s, $((i * 100)) $((i * 100 + 127)))"); done
        timeout 200 "$G/tessera" generate --model /tmp/ckpt/gpt2 --target cuda --dtype f16 --ignore-eos -q --batch $b \
          --max-new-tokens 32 --max-seq-len 256 "${ids[@]}" --profile-step 30 2>&1 | tee -a "$OUT/profile.txt" | head -70
      done ;;
    decode_llama)
      R=/tmp/decode_raw/decode_llama; rm -rf $R; mkdir -p $R $KEEP
      # transformers on the GPU, not make-checkpoint: its one-thread writer needs ~20 min for 16 GB (random_checkpoint.py)
      [ -f /tmp/ckpt/llama3-8b/config.json ] || { rm -rf /tmp/ckpt/llama3-8b.part &&
        timeout 300 python3 bench/random_checkpoint.py /tmp/ckpt/llama3-8b.part --dtype bf16 2>&1 | grep -E "^wrote|Error" &&
        mv /tmp/ckpt/llama3-8b.part /tmp/ckpt/llama3-8b; }
      "$G/tessera" inspect-checkpoint /tmp/ckpt/llama3-8b > /dev/null || { echo "llama3-8b checkpoint: invalid"; continue; }
      [ -f "$OUT/peak.json" ] && cp "$OUT/peak.json" $KEEP/  # from the peers stage of this call
      [ -f $KEEP/peak.json ] || python3 bench/measure_peak.py $KEEP/peak.json
      cp $KEEP/peak.json "$OUT/"
      decode_case $R llama3_8b_B1 /tmp/ckpt/llama3-8b bf16 1 128 64 ;;
    llama_variants)
      ids=$(seq -s, 1000 1127)
      for skinny in 0 16; do
        echo "--- llama3-8b bf16 B1, TESSERA_SKINNY_GEMM_MAX_M=$skinny" | tee -a "$OUT/llama_variants.txt"
        TESSERA_SKINNY_GEMM_MAX_M=$skinny timeout 200 "$G/tessera" generate --model /tmp/ckpt/llama3-8b --target cuda --dtype bf16 \
          --ignore-eos -q --batch 1 --max-new-tokens 64 --max-seq-len 192 --prompt-ids "$ids" --profile-step 14 2>&1 |
          tee -a "$OUT/llama_variants.txt" | head -36
      done ;;
    gpt2_variants)
      # GPT-2 124M fp16 B8 decode, cuBLASLt vs the skinny GEMM kernel for m <= 16 (the step is latency-bound there)
      [ -f /tmp/ckpt/gpt2/config.json ] ||
        "$G/tessera" make-checkpoint --model-type gpt2 --preset gpt2-124m --dtype f16 -o /tmp/ckpt/gpt2
      ids=(); for i in $(seq 8); do ids+=(--prompt-ids "$(seq -s, $((i * 100)) $((i * 100 + 127)))"); done
      for skinny in 0 16; do
        echo "--- gpt2 f16 B8, TESSERA_SKINNY_GEMM_MAX_M=$skinny" | tee -a "$OUT/gpt2_variants.txt"
        TESSERA_SKINNY_GEMM_MAX_M=$skinny timeout 200 "$G/tessera" generate --model /tmp/ckpt/gpt2 --target cuda --dtype f16 \
          --ignore-eos -q --batch 8 --max-new-tokens 128 --max-seq-len 256 "${ids[@]}" --profile-step 60 2>&1 |
          tee -a "$OUT/gpt2_variants.txt" | grep -iE "replayed|tok/s|step" | head -8
      done ;;
    decode_summary)
      [ -f $KEEP/peak.json ] || { [ -f "$OUT/peak.json" ] && cp "$OUT/peak.json" $KEEP/; }
      python3 bench/summarize_decode.py $KEEP | tee "$OUT/decode_summary.md" ;;
    *) echo "unknown stage $stage"; exit 2 ;;
  esac
done
