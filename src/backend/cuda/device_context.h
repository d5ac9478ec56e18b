// Per-engine device state shared by its kernels: the device, its properties,
// library handles (made on first use) and the cuBLASLt workspace. One per
// Executor; nothing here is global, so two engines on two streams never share
// a handle's workspace.
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

struct cublasLtContext;
struct cudnnContext;

namespace tessera::cuda {

class DeviceContext {
 public:
  explicit DeviceContext(int device);
  ~DeviceContext();
  DeviceContext(const DeviceContext&) = delete;
  DeviceContext& operator=(const DeviceContext&) = delete;

  int device() const { return device_; }
  const cudaDeviceProp& props() const { return props_; }
  // "sm_90" for an H100/H200.
  std::string arch() const;

  cublasLtContext* cublaslt();
  cudnnContext* cudnn();  // bound to no stream: callers set theirs (cudnnSetStream) before each use
  // cuBLASLt's workspace (32 MiB, allocated once).
  void* gemm_workspace() { return workspace_; }
  static constexpr size_t kGemmWorkspaceBytes = size_t(32) << 20;

  // Scratch shared by every node (one node runs at a time on the stream).
  // Grows only on a plan's first, uncaptured run.
  void* scratch(size_t bytes);
  size_t scratch_bytes() const { return scratch_bytes_; }

 private:
  int device_;
  cudaDeviceProp props_{};
  cublasLtContext* lt_ = nullptr;
  cudnnContext* cudnn_ = nullptr;
  void* workspace_ = nullptr;
  void* scratch_ = nullptr;
  size_t scratch_bytes_ = 0;
  std::vector<void*> retired_;  // outgrown scratch buffers, still referenced by captured graphs
};

}  // namespace tessera::cuda
