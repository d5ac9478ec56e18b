// Rope's block attribute (ops/rope.cc), shared by shape inference and the CPU
// and CUDA kernels: block = [begin, heads, D] over X [..., W] rotates X's
// columns [begin, begin + heads·D) viewed as [..., heads, D].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/shape.h"

namespace tessera::rules {

// Y's shape, or what is wrong ("" when the block fits). W may be unknown (kUnknownDim) at
// inference; the kernels pass static shapes.
inline std::string rope_block_shape(const Shape& x, const std::vector<int64_t>& b, Shape& y) {
  if (b.size() != 3 || b[0] < 0 || b[1] <= 0 || b[2] <= 0) {
    std::string got;
    for (int64_t v : b) got += (got.empty() ? "" : ",") + std::to_string(v);
    return "block must be [begin, heads, head dim] with begin >= 0 and positive heads and head dim, got [" + got + "]";
  }
  if (x.empty()) return "X must have a last dim to take a block of";
  const int64_t w = x.back();
  if (w != kUnknownDim && b[0] + b[1] * b[2] > w)
    return "block columns [" + std::to_string(b[0]) + ", " + std::to_string(b[0] + b[1] * b[2]) + ") run past X's last dim " +
           std::to_string(w);
  y.assign(x.begin(), x.end() - 1);
  y.push_back(b[1]);
  y.push_back(b[2]);
  return "";
}

}  // namespace tessera::rules
