// Ops that move no bytes on the CUDA backend: their output is a view of input
// 0 with the inferred shape (the executor plans no memory for it), or a value
// the executor computes on the host from shapes when the plan is made.
#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda {

TESSERA_CUDA_ALIAS("Reshape");
TESSERA_CUDA_ALIAS("Squeeze");
TESSERA_CUDA_ALIAS("Unsqueeze");
TESSERA_CUDA_ALIAS("Flatten");
TESSERA_CUDA_ALIAS("Identity");
TESSERA_CUDA_ALIAS("Dropout");  // inference: the identity (a mask output, if asked for, is not aliased)
TESSERA_CUDA_HOST_ONLY("Shape");
TESSERA_CUDA_HOST_ONLY("Size");

}  // namespace tessera::cuda
