// fuse_split_blocks: a Split along the last axis whose every output is read
// only by FusedElementwise nodes disappears: each reader reads the Split's
// input instead, as the column block its output was (FusedElementwise's
// `blocks`), so the Split's copy is never made. This is how the gate and up
// projections that merge_matmuls made one GEMM feed SwiGLU. Runs after
// fuse_elementwise.
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_split_blocks(Graph& g);

}  // namespace tessera
