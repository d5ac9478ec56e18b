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
//
// Then, for every RMSNormalization (fused here or imported): when its f32
// output's only reader is a Cast to f16/bf16 and its scale is an f32 constant
// whose values are all exactly representable in that dtype, the scale is
// replaced by that dtype's constant and the Cast is dropped, so the node
// writes the low-precision output itself. Bit-identical: both kernels round
// the f32 product once into Y's dtype (see emit_low_precision_directly).
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_rmsnorm(Graph& g);

}  // namespace tessera
