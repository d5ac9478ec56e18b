// The op table. Each op is registered once, in the src/ops/ file of its
// family, with its arity and its shape/dtype inference. Kernels live in the
// backends' own tables (backend/cpu/kernel_registry.h), keyed by the same name.
//
// Inference runs at build time (unknown dims allowed, constant inputs visible
// through value()) and again at run time with every input value known, so ops
// whose output shape depends on data (Reshape's target, Range, ConstantOfShape)
// are inferred exactly once the data exists.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "ir/graph.h"

namespace tessera {

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool rank_known = true;
};

class InferContext {
 public:
  InferContext(const Node& node, std::vector<TensorType> types, std::vector<const Tensor*> values)
      : node_(node), types_(std::move(types)), values_(std::move(values)) {}
  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs; }
  size_t num_inputs() const { return types_.size(); }
  bool has_input(size_t i) const { return i < node_.inputs.size() && node_.inputs[i] != nullptr; }
  const TensorType& input(size_t i) const;
  // The input's value when known (a constant at build time; always at run time).
  const Tensor* value(size_t i) const { return i < values_.size() ? values_[i] : nullptr; }
  // The input's value, required: error naming the node if it is not known.
  const Tensor& require_value(size_t i, const char* what) const;
  template <typename... Args>
  [[noreturn]] void error(Args&&... args) const {
    fail(ErrorKind::Shape, "node '", node_.name, "' (", node_.op, "): ", std::forward<Args>(args)...);
  }

 private:
  const Node& node_;
  std::vector<TensorType> types_;
  std::vector<const Tensor*> values_;
};

using InferFn = std::function<std::vector<TensorType>(const InferContext&)>;

struct OpSchema {
  std::string name;
  int min_inputs = 1, max_inputs = 1;
  int min_outputs = 1, max_outputs = 1;
  InferFn infer;
  // Collectives talk to other ranks: never constant-folded, never removed as dead.
  bool collective = false;
};

class OpRegistry {
 public:
  static void add(OpSchema schema);
  static const OpSchema* find(const std::string& op);
  static std::vector<std::string> names();
};

struct OpRegistrar {
  explicit OpRegistrar(OpSchema schema) { OpRegistry::add(std::move(schema)); }
};

// Infer output types of `node` from its inputs' current types and constant
// values (build time). Throws if the op is unknown.
std::vector<TensorType> infer_node(const Node& node);
// Same, with concrete input tensors (run time).
std::vector<TensorType> infer_node(const Node& node, const std::vector<const Tensor*>& inputs);
// Same, with input types and the values that are known (null where not).
std::vector<TensorType> infer_node(const Node& node, std::vector<TensorType> types, std::vector<const Tensor*> values);

// Common inference helpers shared by op families.
TensorType same_as_input(const InferContext& ctx, size_t i = 0);
TensorType broadcast_inputs(const InferContext& ctx, DType out);

}  // namespace tessera

#define TSR_CAT2(a, b) a##b
#define TSR_CAT(a, b) TSR_CAT2(a, b)
#define TESSERA_REGISTER_OP(...) static ::tessera::OpRegistrar TSR_CAT(tsr_op_, __COUNTER__)(::tessera::OpSchema __VA_ARGS__)
