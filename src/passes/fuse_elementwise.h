// fuse_elementwise: merges regions of elementwise nodes into FusedElementwise
// nodes (ops/fused_elementwise.h), so a chain such as Mul → Add → Tanh → Mul
// reads its inputs and writes its result once. Run after infer_shapes.
#pragma once
#include "ir/graph.h"

namespace tessera {

// A region is a set of fusible elementwise nodes with one exit value: every
// other value it computes is read only inside it and is no graph output.
// Single nodes are left alone; collectives and other ops are never fused.
void fuse_elementwise(Graph& g);

}  // namespace tessera
