// The CPU backend's kernel table: one reference kernel per op, keyed by the op
// name of the IR registry. These kernels are the oracle for every other
// backend, so they favour clarity (and fp32/fp64 accumulation) over speed,
// except MatMul/Gemm/Conv, which go through BLAS so tests stay fast.
#pragma once
#include <string>
#include <vector>

#include "core/error.h"
#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::cpu {

struct RunContext;

class KernelContext {
 public:
  KernelContext(const Node& node, std::vector<const Tensor*> inputs, std::vector<TensorType> out_types, RunContext* run = nullptr)
      : node_(node), inputs_(std::move(inputs)), types_(std::move(out_types)), outputs_(types_.size()), run_(run) {}
  // Communicators and in-flight collectives; error naming the node if absent.
  RunContext& run() const;
  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  size_t num_inputs() const { return inputs_.size(); }
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  const Tensor& input(size_t i) const;
  size_t num_outputs() const { return types_.size(); }
  const TensorType& output_type(size_t i) const { return types_.at(i); }
  // Output i, allocated on first use with its inferred dtype and shape.
  Tensor& output(size_t i);
  // Make output i alias an existing tensor (Reshape, Identity, Squeeze...).
  void set_output(size_t i, Tensor t);
  std::vector<Tensor>& outputs() { return outputs_; }
  template <typename... Args>
  [[noreturn]] void error(Args&&... args) const {
    fail(ErrorKind::Runtime, "node '", node_.name, "' (", node_.op, "): ", std::forward<Args>(args)...);
  }

 private:
  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<TensorType> types_;
  std::vector<Tensor> outputs_;
  RunContext* run_;
};

using KernelFn = void (*)(KernelContext&);

class KernelRegistry {
 public:
  static void add(const std::string& op, KernelFn fn);
  static KernelFn find(const std::string& op);
  static std::vector<std::string> names();
};

struct KernelRegistrar {
  KernelRegistrar(const char* op, KernelFn fn) { KernelRegistry::add(op, fn); }
};

// Run one node on concrete inputs: infer exact output types, call the kernel.
std::vector<Tensor> run_node(const Node& node, const std::vector<const Tensor*>& inputs, RunContext* run = nullptr);

}  // namespace tessera::cpu

#define TESSERA_CPU_KERNEL(op, fn) static ::tessera::cpu::KernelRegistrar TSR_CAT(tsr_kernel_, __COUNTER__)(op, fn)
