// Device helpers around the cuBLASLt GEMMs (gemm_util.cu), callable from
// plain C++: expanding a broadcast MatMul operand to the full batch, the
// bias/activation epilogue cuBLASLt cannot do (exact-erf GELU, f64), and a
// plain GEMM for integer dtypes, which cuBLASLt does not multiply like the
// CPU reference does. Each enqueues on `s` and returns the launch's status.
#pragma once
#include <cuda_runtime.h>

#include "core/tensor.h"

namespace tessera::cuda {

enum class GemmAct { none, relu, gelu_tanh, gelu };

// out (shape `out_shape`) = in (shape `in_shape`) broadcast, elements of `elem_bytes`.
cudaError_t gemm_broadcast_copy(const void* in, const Shape& in_shape, void* out, const Shape& out_shape,
                                size_t elem_bytes, cudaStream_t s);

// out [rows, n] (contiguous) = the first n columns of padded [rows, ld] (the N-padded GEMM's
// result copied out). elem_bytes 2 or 4 with 16-byte aligned pointers and rows·ld < 2^31 take a
// kernel writing 16 aligned bytes a thread; otherwise cudaMemcpy2DAsync.
cudaError_t gemm_unpad_rows(const void* padded, int64_t ld, void* out, int64_t rows, int64_t n, size_t elem_bytes,
                            cudaStream_t s);

// Each row phase's aligned column span (gemm_lt.h, row_phase): the columns
// [col0[j], col0[j] + cols[j]) that phase j's GEMM writes in its rows r,
// r % phases == j.
struct PhaseSpans {
  static constexpr int kMax = 8;  // 16-byte rows of 2- or 4-byte elements
  int phases = 0;
  int64_t col0[kMax] = {}, cols[kMax] = {};
};

// The columns a row-phase split leaves out of its GEMMs: for each row r of
// out [m, n], those outside its phase's span. out[r, c] = act(alpha · A[r, :]·B[c, :] + bias[c]),
// A [m, k] and B [n, k] row-major, float accumulation; bias may be null.
// `act` is none, relu or gelu_tanh (what cuBLASLt's epilogue would apply).
cudaError_t gemm_edge_columns(DType dtype, const void* a, const void* b, const void* bias, void* out, int64_t m,
                              int64_t n, int64_t k, const PhaseSpans& spans, float alpha, GemmAct act, cudaStream_t s);

// In place on `total` elements of a float dtype laid out [..., n]:
// out[i] = act(scale * out[i] + bias[i % n]) (bias may be null), computed in
// float (f64: double).
cudaError_t gemm_epilogue(void* out, DType dtype, int64_t total, int64_t n, double scale, const void* bias,
                          GemmAct act, cudaStream_t s);

// Integer GEMM mirroring the CPU loop (accumulates in T):
// out[b] = alpha * op(A[b]) op(B[b]) + beta * out[b], row-major, where A[b]
// and B[b] are the matrices at batch index b of `batch` read through the
// batch shapes a_batch / b_batch broadcast to `batch`.
cudaError_t gemm_integer(DType dtype, const Shape& batch, const Shape& a_batch, const Shape& b_batch, int64_t m,
                         int64_t n, int64_t k, bool ta, bool tb, const void* a, const void* b, int64_t alpha,
                         int64_t beta, void* out, cudaStream_t s);

}  // namespace tessera::cuda
