// The CPU MatMul path, shared by the kernels that build on it (FusedMatMul).
#pragma once
#include "backend/cpu/kernel_registry.h"

namespace tessera::cpu {

// c.input(0) @ c.input(1) with MatMul's rules (1-D promotion, broadcast batch
// dims), shaped like c.output_type(0), in the compute dtype: f16/bf16 operands
// give an f32 result (the caller converts back once, after any epilogue).
Tensor matmul_compute(KernelContext& c);

}  // namespace tessera::cpu
