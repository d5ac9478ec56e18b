// fuse_elementwise and FusedElementwise's CPU kernel: what the pass fuses (and
// refuses to fuse), and that the fused graph computes what the unfused one did.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <random>

#include "backend/cpu/kernel_registry.h"
#include "ir/verifier.h"
#include "ops/fused_elementwise.h"
#include "passes/fuse_elementwise.h"
#include "passes/pass_manager.h"
#include "graph_test_util.h"

namespace tessera {
namespace {

using test::count_op;
using test::random_f32;
using test::run_graph;


// Builds the graph twice (shapes inferred), fuses one copy, and checks that
// both compute the same outputs bit for bit on random inputs.
void expect_same_results(const std::function<void(Graph&)>& build, Graph& fused) {
  Graph plain;
  build(plain);
  infer_shapes(plain);
  build(fused);
  infer_shapes(fused);
  fuse_elementwise(fused);
  verify(fused, "fuse_elementwise");
  std::mt19937 rng(1234);
  std::map<std::string, Tensor> feeds;
  for (Value* in : plain.inputs) feeds[in->name] = random_f32(in->shape, rng);
  std::vector<Tensor> a = run_graph(plain, feeds), b = run_graph(fused, feeds);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].dtype(), b[i].dtype());
    ASSERT_EQ(a[i].shape(), b[i].shape());
    for (int64_t j = 0; j < a[i].numel(); ++j) ASSERT_EQ(a[i].item_f64(j), b[i].item_f64(j)) << "output " << i << " element " << j;
  }
}

Value* node(Graph& g, const std::string& op, std::vector<Value*> in, Attributes attrs = {}) {
  Value* out = g.add_value(g.unique_name(op + "_out"), DType::f32, {});
  g.add_node(op, g.unique_name(op), std::move(in), {out}, std::move(attrs));
  return out;
}

// tanh(x * w + y) * 0.5 → Gelu(tanh) → Clip: one FusedElementwise, with broadcasts.
void build_chain(Graph& g) {
  std::mt19937 rng(7);
  Value* x = g.add_value("x", DType::f32, {2, 3, 4});
  Value* y = g.add_value("y", DType::f32, {2, 1, 4});
  g.inputs = {x, y};
  Value* w = g.add_constant("w", random_f32({4}, rng));
  Value* half = g.add_constant("half", Tensor::from<float>(DType::f32, {}, {0.5f}));
  Value* lo = g.add_constant("lo", Tensor::from<float>(DType::f32, {}, {-0.3f}));
  Value* t = node(g, "Tanh", {node(g, "Add", {node(g, "Mul", {x, w}), y})});
  Attributes gelu;
  gelu.set("approximate", std::string("tanh"));
  Value* u = node(g, "Gelu", {node(g, "Mul", {t, half})}, gelu);
  g.outputs = {node(g, "Clip", {u, lo, nullptr})};
}

TEST(FuseElementwise, ChainBecomesOneNode) {
  Graph g;
  expect_same_results(build_chain, g);
  ASSERT_EQ(g.nodes().size(), 1u);
  const Node& n = *g.nodes()[0];
  EXPECT_EQ(n.op, "FusedElementwise");
  EXPECT_EQ(n.outputs[0], g.outputs[0]);
  EXPECT_EQ(n.inputs.size(), 5u);  // x, w, y, half, lo
  FusedProgram p = get_fused_program(n);
  ASSERT_EQ(p.instrs.size(), 6u);
  EXPECT_EQ(p.instrs[4].op, "Gelu");
  EXPECT_EQ(p.instrs[4].attrs.get_string("approximate", ""), "tanh");
  EXPECT_EQ(p.instrs[5].args, (std::vector<int>{p.n_inputs + 4, 4, -1}));
  EXPECT_NE(n.attrs.get_string("expr", "").find("Gelu[approximate="), std::string::npos);
}

// a = x + b is read by a MatMul too, so it must stay; Relu → Neg after it fuse.
void build_shared(Graph& g) {
  std::mt19937 rng(8);
  Value* x = g.add_value("x", DType::f32, {3, 4});
  g.inputs = {x};
  Value* a = node(g, "Add", {x, g.add_constant("b", random_f32({4}, rng))});
  Value* m = node(g, "MatMul", {a, g.add_constant("W", random_f32({4, 5}, rng))});
  g.outputs = {m, node(g, "Neg", {node(g, "Relu", {a})})};
}

TEST(FuseElementwise, IntermediateWithAnOutsideReaderIsNotFused) {
  Graph g;
  expect_same_results(build_shared, g);
  EXPECT_EQ(g.nodes().size(), 3u);
  EXPECT_EQ(count_op(g, "Add"), 1u);
  EXPECT_EQ(count_op(g, "MatMul"), 1u);
  EXPECT_EQ(count_op(g, "FusedElementwise"), 1u);
  for (auto& n : g.nodes())
    if (n->op == "MatMul") EXPECT_EQ(n->inputs[0]->producer->op, "Add");
}

// Exp's output is a graph output: nothing fuses (single nodes are left alone).
void build_output_between(Graph& g) {
  Value* x = g.add_value("x", DType::f32, {5});
  g.inputs = {x};
  Value* e = node(g, "Exp", {x});
  g.outputs = {e, node(g, "Log", {e})};
}

TEST(FuseElementwise, GraphOutputsAreKept) {
  Graph g;
  expect_same_results(build_output_between, g);
  EXPECT_EQ(g.nodes().size(), 2u);
  EXPECT_EQ(count_op(g, "FusedElementwise"), 0u);
}

// A DAG with mixed dtypes: x reused, a comparison, Where, Cast to f16 and back, variadic Sum.
void build_dag(Graph& g) {
  Value* x = g.add_value("x", DType::f32, {4, 6});
  Value* y = g.add_value("y", DType::f32, {6});
  g.inputs = {x, y};
  Value* zero = g.add_constant("zero", Tensor::from<float>(DType::f32, {}, {0.0f}));
  Value* pos = g.add_value("pos", DType::boolean, {});
  g.add_node("Greater", "gt", {x, zero}, {pos});
  Value* w = node(g, "Where", {pos, x, node(g, "Mul", {x, y})});
  Attributes to_f16, to_f32;
  to_f16.set("to", int64_t(DType::f16));
  to_f32.set("to", int64_t(DType::f32));
  Value* h = g.add_value("h", DType::f16, {});
  g.add_node("Cast", "to_half", {w}, {h});
  Value* back = node(g, "Cast", {h}, to_f32);
  g.outputs = {node(g, "Sum", {back, x, y})};
  for (auto& n : g.nodes())
    if (n->name == "to_half") n->attrs = to_f16;
}

TEST(FuseElementwise, MixedDtypeDag) {
  Graph g;
  expect_same_results(build_dag, g);
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.nodes()[0]->op, "FusedElementwise");
  EXPECT_EQ(get_fused_program(*g.nodes()[0]).instrs.size(), 6u);
}

}  // namespace
}  // namespace tessera
