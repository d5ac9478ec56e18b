// cuDNN's fused attention (SDPA, cuDNN's graph API through cudnn-frontend)
// for the Attention kernel (attention.cu): f16/bf16 prefill shapes without an
// additive mask (causal or full). The kernel makes one plan per input shape
// on the plan's first, uncaptured run, and runs its own flash kernel where
// cuDNN has no engine (the reason is logged once).
//
// This header names no cudnn-frontend type, so attention.cu (nvcc) never
// compiles the frontend; attention_dnn.cc (the host compiler) does.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

struct cudnnContext;

namespace tessera::cuda::dnn {

struct SdpaShape {
  int b = 0, hq = 0, hkv = 0, tq = 0, tk = 0, d = 0;
  // Element strides along batch, head and position of Q, K, V and O ([B, H, T, D] or
  // [B, T, H, D]); D is contiguous.
  int64_t q[3]{}, k[3]{}, v[3]{}, o[3]{};
  float scale = 1.0f;
  bool causal = false;  // key j kept for query i when j <= i (top-left)
  bool bf16 = false;    // else f16
};

class Sdpa {
 public:
  // The plan for one shape, or null with `why` set when cuDNN cannot run it here.
  static std::unique_ptr<Sdpa> make(cudnnContext* handle, const SdpaShape& shape, std::string& why);
  ~Sdpa();
  size_t workspace_bytes() const;
  // Plans built (1 unless cudnn_autotune(): then every heuristics plan that runs the shape).
  int64_t plan_count() const;
  // Workspace autotune needs (the largest plan's).
  size_t autotune_workspace_bytes() const;
  // Times every plan on these operands (cudnn-frontend's autotune; it synchronises the
  // device, so only on the plan's first, uncaptured run) and keeps the fastest; then
  // workspace_bytes() is the winner's. "" or cuDNN's message.
  std::string autotune(cudnnContext* handle, cudaStream_t stream, const void* q, const void* k, const void* v, void* o,
                       void* workspace);
  // Enqueues the attention on `stream` (the handle is bound to it); "" or cuDNN's message.
  std::string run(cudnnContext* handle, cudaStream_t stream, const void* q, const void* k, const void* v, void* o,
                  void* workspace) const;

 private:
  struct Impl;
  explicit Sdpa(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// TESSERA_ATTENTION: unset, "" or "cudnn" (cuDNN where it applies, the default) -> true;
// "flash" (tessera's own kernels for every shape; the parity tests and the benchmark
// compare both) -> false; anything else -> an InvalidArgument error naming the values.
bool cudnn_attention_from(const char* env);
// cudnn_attention_from($TESSERA_ATTENTION), read once per process.
bool sdpa_enabled();
// TESSERA_CUDNN_AUTOTUNE=1: build every plan cuDNN's heuristics offer for a shape and time
// them on its first run (the fastest runs), instead of the heuristics' first. Off by
// default: an experiment for bench/run_gpu.sh cudnn_variants, read once per process.
bool cudnn_autotune();

}  // namespace tessera::cuda::dnn
