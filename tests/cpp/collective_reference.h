// The collectives tests' single-process reference (collectives_test.cc,
// audit_4_collectives_env_test.cc): each rank's input, the result every
// collective, reduction and axis should give on a rank computed from all
// ranks' inputs, and the one-collective graph the ranks run.
#pragma once
#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "tessera/tessera.h"

namespace tessera::test {

const Shape kShape = {6, 12, 6};

inline Tensor rank_input(uint64_t seed, int rank) {
  std::mt19937 gen(uint32_t(seed * 131 + uint64_t(rank)));
  std::uniform_int_distribution<int> u(-50, 50);  // small integers: sums are exact in f32 in any order
  Tensor t = Tensor::empty(DType::f32, kShape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(u(gen));
  return t;
}

// Reference helpers over [outer][n][inner] views along `axis`.
inline int64_t outer_of(const Shape& s, int64_t axis) {
  int64_t o = 1;
  for (int64_t i = 0; i < axis; ++i) o *= s[size_t(i)];
  return o;
}

inline Tensor chunk(const Tensor& t, int64_t axis, int64_t g, int64_t k) {
  Shape s = t.shape();
  int64_t n = s[size_t(axis)], outer = outer_of(s, axis), inner = t.numel() / (outer * n), c = n / g;
  s[size_t(axis)] = c;
  Tensor out = Tensor::empty(t.dtype(), s);
  for (int64_t o = 0; o < outer; ++o)
    std::memcpy(out.data<float>() + o * c * inner, t.data<float>() + (o * n + k * c) * inner, size_t(c * inner) * 4);
  return out;
}

inline Tensor concat(const std::vector<Tensor>& parts, int64_t axis) {
  Shape s = parts[0].shape();
  int64_t c = s[size_t(axis)], outer = outer_of(s, axis), inner = parts[0].numel() / (outer * c), g = int64_t(parts.size());
  s[size_t(axis)] = c * g;
  Tensor out = Tensor::empty(DType::f32, s);
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t r = 0; r < g; ++r)
      std::memcpy(out.data<float>() + (o * g + r) * c * inner, parts[size_t(r)].data<float>() + o * c * inner, size_t(c * inner) * 4);
  return out;
}

inline Tensor reduce(const std::vector<Tensor>& in, const std::string& op) {
  Tensor out = in[0].clone();
  for (int64_t i = 0; i < out.numel(); ++i) {
    float acc = in[0].data<float>()[i];
    for (size_t r = 1; r < in.size(); ++r) {
      float v = in[r].data<float>()[i];
      acc = op == "max" ? std::max(acc, v) : op == "min" ? std::min(acc, v) : acc + v;
    }
    out.data<float>()[i] = op == "avg" ? acc / float(in.size()) : acc;
  }
  return out;
}

struct Config {
  std::string op, reduce;
  int64_t axis;
  int root;
};

inline std::vector<Config> configs() {
  std::vector<Config> c;
  for (std::string red : {"sum", "avg", "max", "min"}) {
    c.push_back({"AllReduce", red, 0, 0});
    for (int64_t axis : {0, 1, -1}) c.push_back({"ReduceScatter", red, axis, 0});
  }
  for (int64_t axis : {0, 1, -1}) {
    c.push_back({"AllGather", "sum", axis, 0});
    c.push_back({"AllToAll", "sum", axis, 0});
    c.push_back({"RootGather", "sum", axis, 1});
    c.push_back({"RootScatter", "sum", axis, 1});
  }
  c.push_back({"Broadcast", "sum", 0, 1});
  return c;
}

inline Tensor expected(const Config& c, const std::vector<Tensor>& in, int rank) {
  int64_t g = int64_t(in.size()), axis = c.axis < 0 ? c.axis + 3 : c.axis;
  if (c.op == "AllReduce") return reduce(in, c.reduce);
  if (c.op == "ReduceScatter") return chunk(reduce(in, c.reduce), axis, g, rank);
  if (c.op == "AllGather") return concat(in, axis);
  if (c.op == "AllToAll") {
    std::vector<Tensor> parts;
    for (int64_t j = 0; j < g; ++j) parts.push_back(chunk(in[size_t(j)], axis, g, rank));
    return concat(parts, axis);
  }
  if (c.op == "RootGather") return rank == c.root ? concat(in, axis) : Tensor::zeros(DType::f32, concat(in, axis).shape());
  if (c.op == "RootScatter") return chunk(in[size_t(c.root)], axis, g, rank);
  return in[size_t(c.root)];  // Broadcast
}

// out = Collective(Neg(Neg(x))): compute before the collective, nothing after.
inline Graph collective_graph(const Config& c, int world) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, kShape);
  g.inputs.push_back(x);
  Value* a = g.add_value("a", DType::f32, {});
  Value* b = g.add_value("b", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Neg", "neg1", {x}, {a});
  g.add_node("Neg", "neg2", {a}, {b});
  Attributes attrs;
  attrs.set("axis", c.axis);
  attrs.set("group_size", int64_t(world));
  attrs.set("reduce", c.reduce);
  attrs.set("root", int64_t(c.root));
  g.add_node(c.op, "coll", {b}, {y}, attrs);
  g.outputs.push_back(y);
  return g;
}

}  // namespace tessera::test
