// fuse_rmsnorm: the RMSNorm chain PyTorch exporters write for nn.RMSNorm and
// Llama's RMSNorm becomes one RMSNormalization node (ops/rms_norm.cc):
//
//   [v = Cast(x, to=f32)]
//   Pow(v, 2) | Mul(v, v) → ReduceMean(last axis, keepdims=1) → Add(eps)
//     → Sqrt → Reciprocal | Div(1, ·) → Mul(v, ·)     (or Div(v, Sqrt))
//     → [Cast] → Mul(weight, ·)
//
// Constants are checked (exponent 2, one-element eps and 1, weight 1-D of
// v's last dim); each intermediate must have no other reader and must not be
// a graph output, else nothing is fused. A leading upcast to f32 is absorbed
// (the op computes in f32 anyway). Runs after infer_shapes (needs static dims).
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_rmsnorm(Graph& g);

}  // namespace tessera
