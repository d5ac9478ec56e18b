// fuse_skip_norm: a residual Add read by a LayerNormalization or
// RMSNormalization over the last dim becomes one SkipLayerNormalization or
// SkipSimplifiedLayerNormalization (ops/skip_norm.cc): the kernel reads both
// addends and writes the norm and, when anything else reads it, the sum (the
// next residual). Runs after fuse_gemm_residual, which takes the residual
// Adds that follow a GEMM into its epilogue (cheaper still), and before
// fuse_elementwise, which would absorb the Add. What is left: GPT-2's token +
// position embeddings into ln_1, and under tensor parallelism the residual
// after an all-reduce into the next norm.
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_skip_norm(Graph& g);

}  // namespace tessera
