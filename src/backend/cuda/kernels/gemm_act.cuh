// The GEMM epilogue activations on the device, shared by the follow-up
// epilogue kernel (gemm_util.cu) and the skinny GEMM (gemm_skinny.cu), so the
// two compute the very same function as the CPU reference (fused_matmul.cc).
#pragma once
#include "backend/cuda/kernels/gemm_util.h"

namespace tessera::cuda {

template <typename C>
__device__ __forceinline__ C gemm_activate(C x, GemmAct act) {
  switch (act) {
    case GemmAct::relu: return x > C(0) ? x : C(0);
    case GemmAct::gelu: return C(0.5) * x * (C(1) + erf(x * C(0.70710678118654752440)));
    case GemmAct::gelu_tanh:
      return C(0.5) * x * (C(1) + tanh(C(0.79788456080286535588) * (x + C(0.044715) * x * x * x)));
    default: return x;
  }
}

}  // namespace tessera::cuda
