// Build-time choice of cuBLASLt algorithms (TensorRT's tactic timing): for
// each GEMM of fully static shape, time the heuristic's top candidates on the
// device and store the fastest in the node's `cublaslt_algo` attribute, which
// the kernel then uses instead of the heuristic's first pick. Results are kept
// in a JSON timing cache keyed by GPU name, arch, cuBLASLt version and the
// problem, so a rebuild on the same machine times nothing.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace tessera::cuda {

class DeviceContext;
struct GemmProblem;

struct TunedAlgo {
  std::vector<int64_t> algo;  // 8 words of cublasLtMatmulAlgo_t; empty when cuBLASLt offers none
  double us = 0;              // median time of one call
  int candidates = 0;         // how many were timed
};

// Time up to `candidates` heuristic algorithms for `p` (4x as many, and split-K versions of
// each, when its output tiles are too few to fill the GPU); the fastest wins.
// Each candidate runs as the engine runs it: a captured CUDA graph of many
// calls (no host launch overhead per call) whose calls rotate through enough
// operand copies to exceed the L2 cache twice over (weights come from memory);
// the median of a few CUDA-event timed replays, after warm-up.
TunedAlgo tune_gemm(DeviceContext& dev, const GemmProblem& p, int candidates = 8);

// Walk MatMul / Gemm / FusedMatMul nodes whose operands have static shapes and
// a float dtype, and set `cublaslt_algo` on each, through the timing cache at
// `timing_cache_path` (loaded if present, saved if anything was timed; "" for
// none). `verbose` prints one line per GEMM to stderr.
void tune_gemms(Graph& g, DeviceContext& dev, const std::string& timing_cache_path, bool verbose);

}  // namespace tessera::cuda
