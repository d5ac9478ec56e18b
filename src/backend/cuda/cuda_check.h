// Error checks for CUDA runtime, cuBLASLt and cuDNN calls: each failure
// becomes a tessera::Error naming the call and the library's own message.
#pragma once
#include <cuda_runtime.h>

#include "core/error.h"

namespace tessera::cuda {

inline void check(cudaError_t e, const char* what) {
  // Clear the (non-sticky) error so the next launch check does not report it again.
  if (e != cudaSuccess) cudaGetLastError();
  if (e != cudaSuccess) fail(ErrorKind::Runtime, "[cuda] ", what, ": ", cudaGetErrorString(e));
}

// Bytes requested by a failed allocation, with the plan's figures, as DESIGN.md §6 asks.
[[noreturn]] void out_of_memory(size_t bytes, const std::string& what, size_t plan_peak);

}  // namespace tessera::cuda

#define TSR_CUDA(call) ::tessera::cuda::check((call), #call)
