// What every Attention kernel of attention.cu reads: the operands' geometry
// (Dims: sizes and (batch, head, position) strides from ops/attention_rules.h)
// and the mask's broadcast strides. Included by attention.cu and its kernel
// headers only.
#pragma once
#include <cstdint>

#include "ops/attention_rules.h"

namespace tessera::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;

// Mask strides (elements) as read at [b, h, i, j]; 0 along broadcast dims.
struct MaskView {
  const void* ptr = nullptr;  // compute-type values (float, or double for f64), or null
  int64_t sb = 0, sh = 0, sq = 0, sk = 0;
};

// Element strides of one [B, H, T, X] operand along batch, head and position (X is contiguous).
using Strides = rules::RowStrides;

struct Dims {
  int B, Hq, Hkv, Tq, Tk, D, Dv;
  float scale;
  bool causal;
  Strides q, k, v, o;
};

// Element offset of row (b, h, t) of an operand.
__device__ __forceinline__ int64_t row_offset(const Strides& s, int b, int h, int t) {
  return int64_t(b) * s.b + int64_t(h) * s.h + int64_t(t) * s.t;
}

}  // namespace tessera::cuda::attn
