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

// rope_blocks (after merge_matmuls): a Split of X [..., W] along W whose
// outputs are, but for at most one, read only as Rope(Reshape(output) to
// [..., H, D]) -- Llama's q, k, v from one merged projection -- has those
// Ropes read X directly with block = [column offset, H, D]; the one output
// left becomes a Slice (V's copy alone), or the Split goes.
void rope_blocks(Graph& g);

}  // namespace tessera
