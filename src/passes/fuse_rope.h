// fuse_rope: the rotate-half RoPE PyTorch exporters write for Llama-style
// attention becomes one Rope node (ops/rope.cc):
//
//   x1 = Slice(x, 0, D/2, last axis)    x2 = Slice(x, D/2, >= D, last axis)
//     (or x1, x2 = Split(x, last axis) in two equal halves: num_outputs = 2 or
//      a constant split = [D/2, D/2] -- torch.chunk(2, -1) through dynamo)
//   rot = Concat(Neg(x2), x1, axis = last)
//   Add(Mul(x, cos), Mul(rot, sin))      (either operand order)
//
// Slice parameters must be constants (steps 1); x's last dim is static and
// even; cos and sin share x's dtype and broadcast to x; every intermediate has
// this one reader and is no graph output, else nothing is fused. The Add is
// rewritten in place (it comes after all the chain's inputs). Runs after
// infer_shapes, before fuse_elementwise (which would absorb the Neg/Mul/Add).
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_rope(Graph& g);

}  // namespace tessera
