// The CUDA backend's kernel table: one entry per op, keyed by the op name of
// the IR registry (the same names as the CPU table). A kernel enqueues work on
// `ctx.stream()` and nothing else: no allocation, no synchronisation, no host
// reads of device data, so every run can be captured in a CUDA graph. (The one
// exception: a collective over a non-NCCL communicator is staged through the
// host, and the executor never captures a plan holding one.)
//
// Output buffers are allocated by the executor's memory plan before the
// kernel runs (shapes come from the op's inference). Work a kernel wants to do
// once per input shape (a cuBLASLt heuristic query, a cuDNN plan) goes in
// `ctx.state<T>()`, which lives as long as the executor's plan for that shape;
// the executor runs a new shape once without capture, so states are made
// outside any graph capture.
#pragma once
#include <cuda_runtime.h>

#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::dist { class Communicator; }

namespace tessera::cuda {

class DeviceContext;  // device_context.h: handles, workspace

class KernelContext {
 public:
  struct Slot {
    const Tensor* device = nullptr;  // the input on the device (null for an omitted optional input)
    const Tensor* host = nullptr;    // its value on the host, when known when the plan was made
  };
  KernelContext(const Node& node, std::vector<Slot> inputs, std::vector<Tensor*> outputs, cudaStream_t stream,
                DeviceContext& dev, std::shared_ptr<void>* state)
      : node_(node), inputs_(std::move(inputs)), outputs_(std::move(outputs)), stream_(stream), dev_(dev), state_(state) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  size_t num_inputs() const { return inputs_.size(); }
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i].device != nullptr; }
  // Input i on the device (contiguous, row-major).
  const Tensor& input(size_t i) const;
  // Input i's value on the host: constants and values computed from shapes
  // when the plan was made (Reshape targets, Slice starts, Gather indices that
  // are constants). Null when the value is only known on the device.
  const Tensor* host_value(size_t i) const { return i < inputs_.size() ? inputs_[i].host : nullptr; }
  // Like host_value, but an error naming the node when it is not known.
  const Tensor& require_host(size_t i, const char* what) const;
  size_t num_outputs() const { return outputs_.size(); }
  bool has_output(size_t i) const { return i < outputs_.size() && outputs_[i] != nullptr; }
  // Output i on the device, already allocated with its inferred dtype and shape.
  Tensor& output(size_t i) const;

  cudaStream_t stream() const { return stream_; }
  DeviceContext& device() const { return dev_; }
  // Scratch memory for this node only (valid until the kernel returns to the
  // executor; the stream orders reuse). Sized on the plan's first, uncaptured run.
  // Each call returns a region (256-byte aligned) apart from the earlier calls' of
  // this node's run, so a kernel may take several (a converted mask, rotated Q
  // and K, a split's partials).
  void* scratch(size_t bytes) const;

  // Per-node state for this plan, default-constructed on first use.
  template <typename T>
  T& state() const {
    if (!*state_) *state_ = std::make_shared<T>();
    return *static_cast<T*>(state_->get());
  }

  // The communicator for a collective node's `group` attribute ("" = world).
  dist::Communicator& comm(const std::string& group) const;
  void set_communicators(const void* comms) { comms_ = comms; }

  template <typename... Args>
  [[noreturn]] void error(Args&&... args) const {
    fail(ErrorKind::Runtime, "node '", node_.name, "' (", node_.op, ") on cuda: ", std::forward<Args>(args)...);
  }

 private:
  const Node& node_;
  std::vector<Slot> inputs_;
  std::vector<Tensor*> outputs_;
  cudaStream_t stream_;
  DeviceContext& dev_;
  std::shared_ptr<void>* state_;
  mutable size_t scratch_used_ = 0;  // bytes of the scratch buffer handed out in this run
  const void* comms_ = nullptr;
};

using KernelFn = void (*)(KernelContext&);
// Whether a node moves no bytes for these shapes (a Transpose that only
// moves size-1 dims, a Split into contiguous blocks): then it fills each
// output's byte offset into input 0, and the planner makes the outputs views.
using ViewFn = bool (*)(const Node&, const Shape& input0, const std::vector<TensorType>& outputs, size_t elem_bytes,
                        std::vector<size_t>& offsets);

struct KernelInfo {
  KernelFn fn = nullptr;
  // >= 0: output 0 is a view of this input's bytes with the inferred shape
  // (Reshape, Squeeze, Identity...): no kernel runs, no memory is planned.
  int alias_input = -1;
  // Outputs whose values the executor computes on the host when every input
  // is known there (Shape, Size; any node of constants and shapes).
  bool host_only = false;
  // >= 0: with the node's `inplace` attribute set, output 0 is written into
  // this input's buffer when that input is a graph input the caller passed on
  // the device (a KV cache): the kernel runs, the output is a view of the
  // caller's bytes, and nothing is copied in or out.
  int inplace_input = -1;
  // Set: the outputs are views of input 0 whenever this says so for the plan's shapes.
  ViewFn view_when = nullptr;
};

class KernelRegistry {
 public:
  static void add(const std::string& op, KernelInfo info);
  static const KernelInfo* find(const std::string& op);
  static std::vector<std::string> names();
};

struct KernelRegistrar {
  KernelRegistrar(const char* op, KernelInfo info) { KernelRegistry::add(op, info); }
};

}  // namespace tessera::cuda

#define TESSERA_CUDA_KERNEL(op, fn) \
  static ::tessera::cuda::KernelRegistrar TSR_CAT(tsr_cuda_kernel_, __COUNTER__)(op, ::tessera::cuda::KernelInfo{fn})
#define TESSERA_CUDA_KERNEL_INPLACE(op, fn, input) \
  static ::tessera::cuda::KernelRegistrar TSR_CAT(tsr_cuda_kernel_, __COUNTER__)(op, ::tessera::cuda::KernelInfo{fn, -1, false, input})
#define TESSERA_CUDA_KERNEL_VIEW_WHEN(op, fn, when) \
  static ::tessera::cuda::KernelRegistrar TSR_CAT(tsr_cuda_kernel_, __COUNTER__)(op, ::tessera::cuda::KernelInfo{fn, -1, false, -1, when})
#define TESSERA_CUDA_ALIAS(op)      \
  static ::tessera::cuda::KernelRegistrar TSR_CAT(tsr_cuda_kernel_, __COUNTER__)(op, ::tessera::cuda::KernelInfo{nullptr, 0})
#define TESSERA_CUDA_HOST_ONLY(op)  \
  static ::tessera::cuda::KernelRegistrar TSR_CAT(tsr_cuda_kernel_, __COUNTER__)(op, ::tessera::cuda::KernelInfo{nullptr, -1, true})
