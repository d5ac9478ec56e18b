// Ops that move no bytes on the CUDA backend: their output is a view of input
// 0 with the inferred shape (the executor plans no memory for it), or a value
// the executor computes on the host from shapes when the plan is made.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda {

namespace {
// Dropout at inference is the identity; eliminate_dead_code removes it unless
// its mask output is read, so what reaches here copies X and writes an all-true mask.
void k_dropout(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  if (y.nbytes()) TSR_CUDA(cudaMemcpyAsync(y.raw(), x.raw(), x.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  if (ctx.has_output(1) && ctx.output(1).nbytes())
    TSR_CUDA(cudaMemsetAsync(ctx.output(1).raw(), 1, ctx.output(1).nbytes(), ctx.stream()));
}
}  // namespace

TESSERA_CUDA_KERNEL("Dropout", k_dropout);

TESSERA_CUDA_ALIAS("Reshape");
TESSERA_CUDA_ALIAS("Squeeze");
TESSERA_CUDA_ALIAS("Unsqueeze");
TESSERA_CUDA_ALIAS("Flatten");
TESSERA_CUDA_ALIAS("Identity");
TESSERA_CUDA_HOST_ONLY("Shape");
TESSERA_CUDA_HOST_ONLY("Size");

}  // namespace tessera::cuda
