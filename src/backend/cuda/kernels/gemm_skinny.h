// Skinny GEMMs: out[m, n] = act(alpha * x[m, k] op(W) + bias[n]) for few rows
// (m <= 64, the default use m <= 16), f16/bf16 with fp32 accumulation. Such a
// product is a stream over the weight: cuBLASLt's tiles are built for large m
// and leave most of the memory bandwidth unused there (measured: 1.44 TB/s of
// 4.2 for m = 8), so this kernel reads W once with 16-byte loads, several in
// flight per thread, and does the arithmetic on tensor cores (mma.sync), where
// it costs nothing next to the loads. Both weight layouts: W[N, K] (Gemm
// transB = 1, FusedMatMul trans_b) and W[K, N] (MatMul). Split-K across blocks
// when n alone gives too few blocks; the fp32 partials are then summed in a
// fixed order by a second kernel, so results do not vary from run to run.
#pragma once
#include <cuda_runtime.h>

#include "backend/cuda/kernels/gemm_util.h"

namespace tessera::cuda {

struct SkinnyGemm {
  DType dtype = DType::f16;
  int64_t m = 0, n = 0, k = 0;
  bool w_nk = false;    // W stored [N, K]; else [K, N]
  int64_t ksplit = 1;   // blocks along k
  int64_t kslice = 0;   // k per block (a multiple of 32)
};

// Whether the kernel takes this problem: f16/bf16, 1 <= m <= 64, k > 0 and a
// multiple of 8, and n a multiple of 8 when W is [K, N] (16-byte rows).
bool skinny_gemm_supports(DType dtype, int64_t m, int64_t n, int64_t k, bool w_nk);

// The launch for a device of `sm_count` SMs (how k splits).
SkinnyGemm skinny_gemm_plan(DType dtype, int64_t m, int64_t n, int64_t k, bool w_nk, int sm_count);

// fp32 partials when k splits (0 otherwise): the scratch skinny_gemm needs.
size_t skinny_gemm_scratch_bytes(const SkinnyGemm& p);

// Enqueue on `s`. x, w 16-byte aligned; bias (n elements) may be null;
// `scratch` holds skinny_gemm_scratch_bytes(p).
cudaError_t skinny_gemm(const SkinnyGemm& p, const void* x, const void* w, const void* bias, float alpha, GemmAct act,
                        void* out, void* scratch, cudaStream_t s);

}  // namespace tessera::cuda
