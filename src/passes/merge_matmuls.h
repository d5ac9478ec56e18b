// merge_matmuls: sibling MatMuls that read one activation A [.., K] with
// constant 2-D weights [K, N_i] of A's float dtype become one MatMul on the
// weights concatenated along N, then a Split of its output along the last
// axis into the old outputs: Llama's q/k/v projections run as one GEMM. When
// each MatMul's one reader adds a constant bias [N_i] (BERT's Linear layers),
// the biases join too: one Add of [N_0 + N_1 + ...] before the Split (which
// fuse_gemm_epilogue puts in the GEMM's epilogue). Only
// when every N_i is a multiple of 8 and the sum is at most kMergeMaxN (the
// wide MLP projections are efficient alone, and their Split would copy more
// than the launch saves) -- or, wider, when A has at most kMergeWideMaxRows
// rows (decode: the GEMMs stream their weights, one launch fewer is one ramp
// fewer) and every output is read only by fusible elementwise ops (Llama's
// gate and up by SwiGLU: after fuse_elementwise, fuse_split_blocks has SwiGLU
// read the merged output's columns, so no Split copy is made). Runs after
// fuse_attention and before fuse_gemm_epilogue; a weight that also feeds
// another node is left alone.
#pragma once
#include "ir/graph.h"

namespace tessera {

constexpr int64_t kMergeMaxN = 8192;
constexpr int64_t kMergeWideMaxRows = 256;

void merge_matmuls(Graph& g);

}  // namespace tessera
