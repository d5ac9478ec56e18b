// Operand geometry of the Attention op (ops/attention.cc) under its layout
// attribute, shared by shape inference and the CPU and CUDA kernels (STYLE.md:
// no second copy of shape logic in a backend). Each of Q, K, V and the output
// is stored [B, H, T, X] (layout 0) or [B, T, H, X] (layout 1), X contiguous;
// or Q, K and V are column blocks of one [B, T, W] tensor (packed).
#pragma once
#include <cstdint>
#include <string>
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

// The packed attribute [Hq, Hkv]: Q, K and V are column blocks of [B, T, (Hq + 2·Hkv)·D]
// inputs (usually one tensor, a fused QKV projection's output, as inputs 0, 1 and 2): Q
// columns [0, Hq·D), K [Hq·D, (Hq + Hkv)·D), V [(Hq + Hkv)·D, (Hq + 2·Hkv)·D), each
// seq-major (layout 1).
inline bool valid_packed(const std::vector<int64_t>& p) { return p.size() == 2 && p[0] > 0 && p[1] > 0 && p[0] % p[1] == 0; }

// Everything the kernels need to address Q, K, V and the output.
struct Geometry {
  int64_t B = 0, Hq = 0, Hkv = 0, Tq = 0, Tk = 0, D = 0, Dv = 0;
  RowStrides st[4];          // Q, K, V, output
  int64_t offset[3] = {};    // element offset of Q, K and V in their inputs (packed), else 0
  Shape out;                 // the output's shape
};

// The geometry of static shapes q, k, v under `layout` and `packed` (empty: not packed), or
// what does not fit ("" when they fit).
inline std::string geometry(const Shape& q, const Shape& k, const Shape& v, const std::vector<int64_t>& layout,
                            const std::vector<int64_t>& packed, Geometry& g) {
  if (!valid_layout(layout)) return "layout must be 4 entries of 0 or 1";
  if (!packed.empty()) {
    if (!valid_packed(packed)) return "packed must be [query heads, key/value heads], a multiple of the second";
    if (q.size() != 3 || k != q || v != q) return "packed Q, K, V must be one [B, T, W] shape, got " + to_string(q) + ", " + to_string(k) + ", " + to_string(v);
    const int64_t cols = packed[0] + 2 * packed[1];
    if (q[2] % cols) return "packed width " + std::to_string(q[2]) + " is not (Hq + 2 Hkv) = " + std::to_string(cols) + " heads";
    g.B = q[0], g.Hq = packed[0], g.Hkv = packed[1], g.Tq = g.Tk = q[1], g.D = g.Dv = q[2] / cols;
    g.st[0] = g.st[1] = g.st[2] = RowStrides{q[1] * q[2], g.D, q[2]};
    g.offset[0] = 0, g.offset[1] = g.Hq * g.D, g.offset[2] = (g.Hq + g.Hkv) * g.D;
  } else {
    if (q.size() != 4 || k.size() != 4 || v.size() != 4) return "Q, K, V must be rank 4";
    g.B = q[0], g.Hq = q[heads_dim(layout[0])], g.Tq = q[length_dim(layout[0])], g.D = q[3];
    g.Hkv = k[heads_dim(layout[1])], g.Tk = k[length_dim(layout[1])], g.Dv = v[3];
    if (k[0] != g.B || v[0] != g.B || v[heads_dim(layout[2])] != g.Hkv || v[length_dim(layout[2])] != g.Tk || k[3] != g.D)
      return "Q " + to_string(q) + ", K " + to_string(k) + ", V " + to_string(v) + " do not fit together";
    for (size_t i = 0; i < 3; ++i) g.st[i] = row_strides(i == 0 ? q : i == 1 ? k : v, layout[i]);
  }
  if (g.Hkv == 0 || g.Hq % g.Hkv) return "query heads " + std::to_string(g.Hq) + " are not a multiple of key/value heads " + std::to_string(g.Hkv);
  g.out = layout[3] ? Shape{g.B, g.Tq, g.Hq, g.Dv} : Shape{g.B, g.Hq, g.Tq, g.Dv};
  g.st[3] = row_strides(g.out, layout[3]);
  return "";
}

// The rope tables (inputs 4 and 5, cos and sin): each broadcasts to [B, T, 1, D], so row
// (b, h, t) of Q and of K is rotated with the tables' row (b, t) (positions are shared:
// Tq == Tk). Their element strides along batch and position (0 where a table broadcasts;
// D is contiguous), or what does not fit ("" when it fits). B and T may be unknown
// (kUnknownDim) at inference.
struct TableStrides {
  int64_t b = 0, t = 0;
};
inline std::string rope_table(const Shape& s, int64_t B, int64_t T, int64_t D, TableStrides& st) {
  const std::string want = "[" + std::to_string(B) + ", " + std::to_string(T) + ", 1, " + std::to_string(D) + "]";
  if (s.empty() || s.size() > 4) return "rope table " + to_string(s) + " must have rank 1 to 4 (it broadcasts to " + want + ")";
  Shape p(4 - s.size(), 1);
  p.insert(p.end(), s.begin(), s.end());
  auto fits = [](int64_t got, int64_t full) { return got == 1 || got == kUnknownDim || full == kUnknownDim || got == full; };
  const bool d_ok = p[3] == D || p[3] == kUnknownDim || D == kUnknownDim;
  if (!fits(p[0], B) || !fits(p[1], T) || (p[2] != 1 && p[2] != kUnknownDim) || !d_ok)
    return "rope table " + to_string(s) + " does not broadcast to " + want + " (batch, position, 1, head dim)";
  st.t = p[1] == 1 ? 0 : p[3];
  st.b = p[0] == 1 ? 0 : p[1] * p[3];
  return "";
}

}  // namespace tessera::rules
