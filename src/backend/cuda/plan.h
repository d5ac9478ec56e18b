// A Plan: everything the CUDA executor decided for one set of input shapes —
// host-evaluated values, inferred types, arena offsets and the steps to run.
// Made by make_plan (plan.cc), run by the executor (executor.cc).
#pragma once
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "backend/cuda/device_context.h"
#include "backend/cuda/executor.h"
#include "backend/cuda/kernel_registry.h"

namespace tessera::cuda {

// Pinned host copies for a node run by its CPU kernel inside the stream order.
struct Fallback {
  std::vector<Tensor> host_in, host_out;  // pinned
  std::string error;                      // set by the host callback, checked after the run
};

struct Step {
  const Node* node = nullptr;
  KernelFn fn = nullptr;                  // null: fallback to the CPU kernel
  std::vector<KernelContext::Slot> ins;
  std::vector<Tensor*> outs;
  std::shared_ptr<void> state;
  std::unique_ptr<Fallback> fallback;
};

struct Plan {
  std::map<std::string, Shape> key;
  // Values the plan knows: device tensors (arena, weights, uploads) and host values.
  std::unordered_map<const Value*, Tensor> dev, host;
  std::vector<Step> steps;
  std::vector<std::pair<const Value*, Tensor*>> inputs;  // graph input → its arena slot (bound ones have none)
  std::map<std::string, const void*> bound;              // inputs used in place at the caller's device address
  void* arena = nullptr;
  void* uploads = nullptr;  // host-evaluated values that device kernels read
  PlanStats stats;
  bool ran = false;
  bool capture_tried = false;
  cudaGraphExec_t graph = nullptr;
  ~Plan();
};

// Device copies of the graph's constants (one allocation).
struct Weights {
  std::unordered_map<const Value*, Tensor> dev;
  void* base = nullptr;
  size_t bytes = 0;
  ~Weights();
};
void upload_weights(const Graph& g, Weights& w, cudaStream_t s);

// Thrown by make_plan when an output's shape depends on values computed on the
// GPU (NonZero, a Reshape target read from activations): no static plan exists.
struct DataDependentShape : Error {
  using Error::Error;
};

// Graph inputs that an in-place kernel (KernelInfo::inplace_input) may update
// at the caller's address: read by that one node only, and not an output.
std::set<std::string> inplace_inputs(const Graph& g);

// `bound`: inputs (device tensors, from inplace_inputs) that the plan uses at
// the caller's address instead of copying them into the arena.
std::unique_ptr<Plan> make_plan(const Graph& g, const Weights& w, const std::map<std::string, Tensor>& inputs,
                                const std::set<std::string>& bound, bool verbose);

}  // namespace tessera::cuda
