// Helpers for the shape/indexing op tests: build a one-node graph, run it on
// the CPU backend or infer it at build time, and read results back.
#pragma once
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <vector>

#include "backend/cpu/kernel_registry.h"
#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera::test {

inline Tensor f32(const Shape& s, const std::vector<float>& v) { return Tensor::from<float>(DType::f32, s, v); }
inline Tensor i64(const Shape& s, const std::vector<int64_t>& v) { return Tensor::from<int64_t>(DType::i64, s, v); }
inline Tensor i32(const Shape& s, const std::vector<int32_t>& v) { return Tensor::from<int32_t>(DType::i32, s, v); }
inline Tensor ints(const std::vector<int64_t>& v) { return Tensor::vector_i64(v); }
// 0, 1, 2, ... as float32 of the given shape.
inline Tensor iota_f32(const Shape& s) {
  std::vector<float> v(size_t(numel(s)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return f32(s, v);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.numel());
}

// A graph holding one node named "test_<op>"; inputs given as tensors become
// graph inputs (or constants, where `constant` says so); nullopt is omitted.
struct OneNode {
  Graph graph;
  Node* node = nullptr;
  std::vector<std::optional<Tensor>> tensors;

  OneNode(const std::string& op, std::vector<std::optional<Tensor>> inputs, Attributes attrs = {}, size_t n_out = 1,
          const std::vector<bool>& constant = {})
      : tensors(std::move(inputs)) {
    std::vector<Value*> ins, outs;
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (!tensors[i]) {
        ins.push_back(nullptr);
        continue;
      }
      std::string name = "in" + std::to_string(i);
      bool is_const = i < constant.size() && constant[i];
      ins.push_back(is_const ? graph.add_constant(name, *tensors[i])
                             : graph.add_value(name, tensors[i]->dtype(), tensors[i]->shape()));
    }
    for (size_t k = 0; k < n_out; ++k) outs.push_back(graph.add_value("out" + std::to_string(k), DType::f32, {}));
    node = graph.add_node(op, "test_" + op, ins, outs, std::move(attrs));
  }

  std::vector<Tensor> run() const {
    std::vector<const Tensor*> ptrs;
    for (const auto& t : tensors) ptrs.push_back(t ? &*t : nullptr);
    return cpu::run_node(*node, ptrs);
  }
};

inline std::vector<Tensor> run_op(const std::string& op, std::vector<std::optional<Tensor>> inputs, Attributes attrs = {},
                                  size_t n_out = 1) {
  return OneNode(op, std::move(inputs), std::move(attrs), n_out).run();
}

inline Attributes attrs(std::initializer_list<std::pair<const char*, Attribute>> kv) {
  Attributes a;
  for (auto& [k, v] : kv) a.set(k, v);
  return a;
}

// Build-time inference of a node whose inputs are described by type only
// (dims may be kUnknownDim) plus optional constant values.
struct Described {
  DType dtype;
  Shape shape;
  std::optional<Tensor> constant = std::nullopt;
  bool rank_known = true;
};

inline std::vector<TensorType> infer_build(const std::string& op, const std::vector<std::optional<Described>>& inputs,
                                           Attributes a = {}, size_t n_out = 1) {
  Graph g;
  std::vector<Value*> ins, outs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) {
      ins.push_back(nullptr);
      continue;
    }
    std::string name = "in" + std::to_string(i);
    Value* v = inputs[i]->constant ? g.add_constant(name, *inputs[i]->constant)
                                   : g.add_value(name, inputs[i]->dtype, inputs[i]->shape);
    v->rank_known = inputs[i]->rank_known;
    ins.push_back(v);
  }
  for (size_t k = 0; k < n_out; ++k) outs.push_back(g.add_value("out" + std::to_string(k), DType::f32, {}));
  Node* n = g.add_node(op, "test_" + op, ins, outs, std::move(a));
  return infer_node(*n);
}

// Expect `f` to throw a tessera::Error whose message names the test node.
template <typename F>
void expect_node_error(F&& f, const std::string& op, const std::string& fragment = "") {
  try {
    f();
    ADD_FAILURE() << "expected an error from " << op;
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("node 'test_" + op + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
  }
}

}  // namespace tessera::test
