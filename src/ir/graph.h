// The IR: a Graph owns Values (typed, shaped edges, possibly constant) and
// Nodes (an op name, inputs, outputs, attributes) kept in topological order.
// Op names are ONNX's (names users know); the IR itself knows no file format
// and no device.
#pragma once
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/tensor.h"
#include "ir/attribute.h"

namespace tessera {

struct Node;

struct Value {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;                      // kUnknownDim where not known at build time
  bool rank_known = true;
  std::vector<std::string> dim_names;  // symbolic names of unknown dims ("" if none)
  Node* producer = nullptr;         // null for graph inputs and constants
  std::optional<Tensor> constant;   // weights and folded values
  bool is_constant() const { return constant.has_value(); }
};

struct Node {
  std::string name;
  std::string op;        // "MatMul", "AllReduce", ...
  std::string domain;    // "" for the ONNX default domain, "com.microsoft", ...
  std::vector<Value*> inputs;   // nullptr marks an omitted optional input
  std::vector<Value*> outputs;
  Attributes attrs;
  // The module path the node came from ("model.layers.0.self_attn.q_proj"),
  // where the model file records one; "" if unknown.
  std::string scope;
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
};

class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  Graph(Graph&&) = default;
  Graph& operator=(Graph&&) = default;

  Value* add_value(const std::string& name, DType dtype, const Shape& shape);
  Value* add_constant(const std::string& name, Tensor t);
  Node* add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                 std::vector<Value*> outputs, Attributes attrs = {});
  // A fresh name based on `hint`, unique in this graph.
  std::string unique_name(const std::string& hint);

  Value* find_value(const std::string& name) const;
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  std::vector<std::unique_ptr<Node>>& mutable_nodes() { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }

  std::vector<Value*> inputs;
  std::vector<Value*> outputs;
  std::string name;
  int64_t opset = 17;

  // Drop nodes for which `dead` is true (they must not feed live nodes) and
  // values no longer referenced by anything.
  void remove_nodes_if(const std::function<bool(const Node&)>& dead);
  void remove_unused_values();
  // Point every use of `from` (node inputs and graph outputs) at `to`.
  void replace_all_uses(Value* from, Value* to);
  // Recompute producers and restore topological order; throws on a cycle.
  void toposort();
  size_t constant_bytes() const;

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::vector<std::unique_ptr<Node>> nodes_;
  std::unordered_map<std::string, Value*> by_name_;
  int64_t next_id_ = 0;
};

}  // namespace tessera
