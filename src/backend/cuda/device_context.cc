#include "backend/cuda/device_context.h"

#include <cublasLt.h>
#include <cudnn.h>

#include "backend/cuda/cuda_check.h"

namespace tessera::cuda {

void out_of_memory(size_t bytes, const std::string& what, size_t plan_peak) {
  size_t free_b = 0, total_b = 0;
  cudaMemGetInfo(&free_b, &total_b);
  fail(ErrorKind::Runtime, "[cuda] out of GPU memory: ", what, " requested ", bytes, " bytes (",
       double(bytes) / (1 << 20), " MiB); the engine's memory plan peaks at ", plan_peak, " bytes (",
       double(plan_peak) / (1 << 20), " MiB); the device has ", free_b, " of ", total_b, " bytes free");
}

DeviceContext::DeviceContext(int device) : device_(device) {
  TSR_CUDA(cudaSetDevice(device));
  TSR_CUDA(cudaGetDeviceProperties(&props_, device));
  if (cudaMalloc(&workspace_, kGemmWorkspaceBytes) != cudaSuccess) {
    cudaGetLastError();
    out_of_memory(kGemmWorkspaceBytes, "the cuBLASLt workspace", 0);
  }
}

DeviceContext::~DeviceContext() {
  if (lt_) cublasLtDestroy(lt_);
  if (cudnn_) cudnnDestroy(cudnn_);
  cudaFree(workspace_);
  cudaFree(scratch_);
  for (void* p : retired_) cudaFree(p);
}

std::string DeviceContext::arch() const { return "sm_" + std::to_string(props_.major * 10 + props_.minor); }

cublasLtContext* DeviceContext::cublaslt() {
  if (!lt_ && cublasLtCreate(&lt_) != CUBLAS_STATUS_SUCCESS) fail(ErrorKind::Runtime, "[cuda] cublasLtCreate failed");
  return lt_;
}

cudnnContext* DeviceContext::cudnn() {
  if (!cudnn_) {
    cudnnStatus_t s = cudnnCreate(&cudnn_);
    if (s != CUDNN_STATUS_SUCCESS) fail(ErrorKind::Runtime, "[cuda] cudnnCreate: ", cudnnGetErrorString(s));
  }
  return cudnn_;
}

void* DeviceContext::scratch(size_t bytes) {
  if (bytes <= scratch_bytes_) return scratch_;
  // Graphs captured earlier keep pointing at the old buffer: keep it alive.
  if (scratch_) retired_.push_back(scratch_);
  scratch_ = nullptr;
  if (cudaMalloc(&scratch_, bytes) != cudaSuccess) {
    cudaGetLastError();
    scratch_bytes_ = 0;
    out_of_memory(bytes, "kernel scratch", bytes);
  }
  scratch_bytes_ = bytes;
  return scratch_;
}

}  // namespace tessera::cuda
