// The one data-movement primitive of the CUDA shape and indexing kernels: a
// strided copy between two buffers, by element width only (so one kernel
// serves every dtype). Transpose, Slice, Expand, Tile, DepthToSpace, Concat
// and Split are all this copy with different strides and base offsets, as on
// the CPU (backend/cpu/kernels/movement.h).
//
// Before launching, dims of extent 1 are dropped and dims that walk both
// buffers contiguously are merged; the copy then moves the widest word
// (up to 16 bytes) the layout allows, and a copy whose innermost source and
// destination dims differ (a transpose of the last dim) goes through a
// shared-memory tile so that reads and writes are both coalesced.
#pragma once
#include <vector>

#include "backend/cuda/device_util.cuh"

namespace tessera::cuda {

// For every multi-index i over `sizes` (element units, strides may be 0 or negative):
//   dst[dst_base + sum_d i[d] * dst[d]] = src[src_base + sum_d i[d] * src[d]]
struct CopyPlan {
  std::vector<int64_t> sizes, src, dst;
  int64_t src_base = 0, dst_base = 0;
};

// A plan filling the contiguous tensor of shape `out` from `src` through the
// per-output-dim source strides `src_strides` (offset by `src_base`).
CopyPlan gather_plan(const Shape& out, const std::vector<int64_t>& src_strides, int64_t src_base = 0);

// Enqueue `plan` on ctx.stream() for elements of `elem_bytes` bytes (1, 2, 4 or 8).
void strided_copy(const KernelContext& ctx, const void* src, void* dst, size_t elem_bytes, CopyPlan plan);

// The unsigned word type of `bytes` bytes (1, 2, 4, 8, 16): values are only moved.
template <size_t Bytes> struct WordOf;
template <> struct WordOf<1> { using type = uint8_t; };
template <> struct WordOf<2> { using type = uint16_t; };
template <> struct WordOf<4> { using type = uint32_t; };
template <> struct WordOf<8> { using type = unsigned long long; };
template <> struct WordOf<16> { using type = uint4; };

// Call f.template operator()<W>() with W the word type of `bytes` (1, 2, 4, 8 or 16).
template <typename F>
decltype(auto) visit_word(size_t bytes, F&& f) {
  switch (bytes) {
    case 1: return f.template operator()<uint8_t>();
    case 2: return f.template operator()<uint16_t>();
    case 4: return f.template operator()<uint32_t>();
    case 8: return f.template operator()<unsigned long long>();
    case 16: return f.template operator()<uint4>();
  }
  fail(ErrorKind::Internal, "[cuda] no word type of ", bytes, " bytes");
}

// The widest word (<= 16 bytes, a multiple of `elem_bytes`) that divides every
// byte count in `counts` and the addresses of every pointer in `ptrs`.
size_t widest_word(size_t elem_bytes, std::initializer_list<int64_t> counts, std::initializer_list<const void*> ptrs);

// Index i wrapped once from the end (negative counts from n); -1 when out of
// range. The CPU kernels fail on such an index; on the device it must not
// crash, so gathers write zeros and scatters skip it.
__device__ __forceinline__ int64_t wrap_index(int64_t i, int64_t n) {
  if (i < 0) i += n;
  return (i >= 0 && i < n) ? i : -1;
}

// Host bits of the single element of `value` (converted to `dtype`), for a
// fill value passed to a kernel by value.
unsigned long long element_bits(const Tensor& value, DType dtype);

}  // namespace tessera::cuda
