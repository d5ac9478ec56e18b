// fuse_gemm_epilogue: MatMul(x, W) [+ Add(bias)] [+ Relu | Gelu | the erf or
// tanh GELU chains exporters write] → one FusedMatMul node, whose CUDA kernel runs
// the bias and activation in its epilogue. The bias must be a 1-D constant of
// length N. The dynamo exporter's linear layer, Gemm(x, W, b) with transB = 1,
// joins too when an activation follows it: Gemm(alpha = 1, beta = 1 or no C,
// transA = 0, C of shape [N] or a [1, N] constant) + act → FusedMatMul with
// bias C and trans_b = transB (the weight stays as stored, [N, K]). Each
// intermediate must have no other reader and must not be a graph output.
// A Gemm/MatMul between Reshapes that flatten [L..., K] to [M, K] and restore
// [L..., N] (dynamo's linear on 3-D input) reads [L..., K] directly and writes
// [L..., N], with or without an activation after it. Runs after infer_shapes
// (it needs static shapes).
#pragma once
#include "ir/graph.h"

namespace tessera {

void fuse_gemm_epilogue(Graph& g);

// fuse_gemm_residual: FusedMatMul or a float MatMul (no activation, 2-D B, N a multiple of 8)
// whose output only an Add reads, with the other operand of the output's
// shape and dtype defined before the GEMM (a residual connection): the Add
// joins as the residual input, which cuBLASLt adds as C (beta = 1). Runs
// after autocast, so a cast between the GEMM and the Add (a residual stream
// kept in fp32) blocks it.
void fuse_gemm_residual(Graph& g);

}  // namespace tessera
