// fuse_gemm_epilogue: MatMul(x, W) [+ Add(bias)] [+ Relu | Gelu | the erf
// GELU chain exporters write] → one FusedMatMul node, whose CUDA kernel runs
// the bias and activation in cuBLASLt's epilogue. The bias must be a 1-D
// constant of length N; each intermediate must have no other reader and must
// not be a graph output. Runs after infer_shapes (it needs static N).
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_gemm_epilogue(Graph& g);

}  // namespace tessera
