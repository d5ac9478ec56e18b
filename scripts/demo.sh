#!/usr/bin/env bash
# The README's demo: the seed's ToyModel compiled and run on one process, then
# tensor-parallel and data-parallel over 2 CPU ranks (gloo), each checked
# against the single-rank result. No downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
./build/tessera demo
./build/tessera launch --nproc-per-node 2 -- ./build/tensor_parallel_simple_example
./build/tessera launch --nproc-per-node 2 -- ./build/data_parallel_simple_example
./build/tessera launch --nproc-per-node 2 -- ./build/data_parallel_gpt2
