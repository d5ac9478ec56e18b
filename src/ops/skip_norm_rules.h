// The Skip norms' input shapes (ops/skip_norm.cc), shared by shape inference
// and passes/fuse_skip_norm.cc, which makes them only where they hold. Dims may
// be unknown (kUnknownDim) at inference; the pass passes static shapes.
#pragma once
#include <cstdint>

#include "core/shape.h"

namespace tessera::rules {

inline bool same_dim(int64_t a, int64_t b) { return a == b || a == kUnknownDim || b == kUnknownDim; }

// Whether skip `s`, leading 1s aside, is the trailing dims of input `x`: its rows then
// repeat over x's.
inline bool skip_repeats(const Shape& s, const Shape& x) {
  if (s.empty() || s.size() > x.size()) return false;
  size_t i = 0;
  while (i + 1 < s.size() && s[i] == 1) ++i;
  for (size_t k = i; k < s.size(); ++k)
    if (!same_dim(s[k], x[x.size() - s.size() + k])) return false;
  return true;
}

// Whether `p` (gamma, beta, bias) is [h], leading 1s allowed.
inline bool hidden_vector(const Shape& p, int64_t h) {
  if (p.empty() || !same_dim(p.back(), h)) return false;
  for (size_t i = 0; i + 1 < p.size(); ++i)
    if (p[i] != 1) return false;
  return true;
}

}  // namespace tessera::rules
