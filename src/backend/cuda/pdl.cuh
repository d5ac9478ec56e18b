// Programmatic dependent launch (PDL, compute capability 9.0+). Every kernel
// tessera launches goes through launch_kernel (tests/python/test_source_rules.py
// checks it), which lets the kernel be scheduled while the kernel before it on
// the stream is still finishing: its launch latency and block start-up overlap
// the predecessor's tail instead of following its completion. In a CUDA graph
// the captured edge becomes a programmatic one. A launch-bound engine (a decode
// step, GPT-2 at T = 128: dozens of few-microsecond kernels) gains the gap
// between kernels that ordinary stream order leaves.
//
// The rule that keeps it correct: every kernel launched by launch_kernel calls
// pdl_enter() before it touches global memory. griddepcontrol.wait returns
// once every kernel it depends on has completed and its writes are visible;
// a kernel launched the ordinary way (<<<>>>, cuBLASLt, cuDNN, NCCL) still
// waits for the full completion of whatever precedes it, so mixing both is
// safe. Where PDL is off (an older GPU, TESSERA_PDL=0) the attribute is not
// set and the instructions are no-ops.
#pragma once
#include <cuda_runtime.h>

#include <utility>

namespace tessera::cuda {

// Whether launches on the current device may overlap their predecessor:
// compute capability 9.0 or later and TESSERA_PDL not "0" (read once).
bool pdl_allowed();

// First statement of a kernel launched by launch_kernel: wait for the kernels
// this one depends on (their writes are then visible), then let the next
// kernel on the stream be scheduled — it waits in its own pdl_enter().
__device__ __forceinline__ void pdl_enter() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// kernel<<<grid, block, smem, s>>>(args...), with programmatic stream
// serialisation where pdl_allowed(). The kernel must begin with pdl_enter().
// Errors are left for cudaGetLastError (check_launch), as after <<<>>>.
template <typename... P, typename... A>
void launch_kernel(void (*kernel)(P...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, A&&... args) {
  cudaLaunchAttribute attr{};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cudaLaunchConfig_t cfg{};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl_allowed() ? 1 : 0;
  (void)cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);
}

}  // namespace tessera::cuda
