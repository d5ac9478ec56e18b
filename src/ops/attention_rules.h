// Operand geometry of the Attention op (ops/attention.cc) under its layout
// attribute, shared by shape inference and the CPU and CUDA kernels (STYLE.md:
// no second copy of shape logic in a backend). Each of Q, K, V and the output
// is stored [B, H, T, X] (layout 0) or [B, T, H, X] (layout 1), X contiguous.
#pragma once
#include <cstdint>
#include <vector>

#include "core/shape.h"

namespace tessera::rules {

// Where an operand stored in `layout` keeps its heads and its length (positions).
inline size_t heads_dim(int64_t layout) { return layout ? 2 : 1; }
inline size_t length_dim(int64_t layout) { return layout ? 1 : 2; }

// The layout attribute's form: 4 entries (Q, K, V, output) of 0 or 1.
inline bool valid_layout(const std::vector<int64_t>& l) {
  if (l.size() != 4) return false;
  for (int64_t v : l)
    if (v != 0 && v != 1) return false;
  return true;
}

// Element strides of a contiguous rank-4 operand along batch, head and position.
struct RowStrides {
  int64_t b = 0, h = 0, t = 0;
};
inline RowStrides row_strides(const Shape& s, int64_t layout) {
  const int64_t h = s[heads_dim(layout)], n = s[length_dim(layout)], x = s[3];
  return layout ? RowStrides{n * h * x, x, h * x} : RowStrides{h * n * x, n * x, x};
}

}  // namespace tessera::rules
