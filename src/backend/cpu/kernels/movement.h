// Byte-moving helpers for the CPU kernels of the shape and indexing ops.
// Pure data movement never looks at values, so these work for every dtype
// (f16/bf16 and bool included) by element width alone.
#pragma once
#include <cstring>
#include <vector>

#include "core/tensor.h"

namespace tessera::cpu {

// Fill the contiguous `out` so that its element at multi-index i is element
// base + sum_d i[d] * strides[d] of `in` (strides in elements; 0 repeats,
// negative walks backwards). Transpose, Slice, Expand, Tile and
// DepthToSpace are all this one loop with different strides.
void strided_copy(const Tensor& in, int64_t base, const std::vector<int64_t>& strides, Tensor& out);

// `value` converted to dtype `t`, as a scalar tensor whose bytes can be copied.
Tensor scalar_like(DType t, double value);
// Set every element of `out` to the single element held by `value`.
void fill_with(Tensor& out, const Tensor& value);

// Copy element `src_i` of `src` to element `dst_i` of `dst` (same dtype).
inline void copy_element(const Tensor& src, int64_t src_i, Tensor& dst, int64_t dst_i) {
  size_t es = dtype_size(dst.dtype());
  std::memcpy(static_cast<char*>(dst.raw()) + size_t(dst_i) * es, static_cast<const char*>(src.raw()) + size_t(src_i) * es, es);
}

// Element offset of a multi-index under contiguous strides.
inline int64_t offset_of(const std::vector<int64_t>& idx, const Shape& strides) {
  int64_t off = 0;
  for (size_t d = 0; d < idx.size(); ++d) off += idx[d] * strides[d];
  return off;
}

// Advance a multi-index over `shape` in row-major order; false after the last.
inline bool next_index(std::vector<int64_t>& idx, const Shape& shape) {
  for (size_t d = idx.size(); d-- > 0;) {
    if (++idx[d] < shape[d]) return true;
    idx[d] = 0;
  }
  return false;
}

// A tensor seen around one axis: `outer` blocks (dims before the axis), each
// made of axis-extent slices of `inner` elements (dims after it).
struct AxisBlocks {
  int64_t outer = 1, inner = 1;
};
inline AxisBlocks blocks_around(const Shape& s, size_t axis) {
  AxisBlocks b;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i < axis) b.outer *= s[i];
    if (i > axis) b.inner *= s[i];
  }
  return b;
}

}  // namespace tessera::cpu
