// autocast (passes/autocast.cc): an fp32 value read by several eligible ops
// (sibling projections, a packed Attention's Q, K and V) is cast once; an
// eligible op's low-precision output read by another eligible op is read as
// written, without the round trip through fp32; results stay within the
// half-precision tolerance of the fp32 graph.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph_test_util.h"
#include "passes/pass_manager.h"

namespace tessera {
namespace {

using test::random_f32;
using test::run_graph;

// x [2, 3, 16] -> y1 = x·W1, y2 = x·W2 (siblings), y3 = y1·W3; outputs y2, y3. And a packed
// Attention over x's projection qkv [2, 3, 48] (Hq = Hkv = 1, D = 16), output att.
Graph build(std::mt19937& rng) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {2, 3, 16});
  g.inputs = {x};
  auto mm = [&](Value* a, int64_t k, int64_t n, const std::string& name) {
    Value* y = g.add_value(name, DType::f32, {});
    g.add_node("MatMul", name, {a, g.add_constant(name + ".w", random_f32({k, n}, rng))}, {y});
    return y;
  };
  Value* y1 = mm(x, 16, 16, "y1");
  Value* y2 = mm(x, 16, 16, "y2");
  Value* y3 = mm(y1, 16, 16, "y3");
  Value* qkv = mm(x, 16, 48, "qkv");
  Attributes a;
  a.set("scale", 0.25f);
  a.set("causal", int64_t(1));
  a.set("layout", std::vector<int64_t>{1, 1, 1, 1});
  a.set("packed", std::vector<int64_t>{1, 1});
  Value* att = g.add_value("att", DType::f32, {});
  g.add_node("Attention", "att", {qkv, qkv, qkv}, {att}, a);
  g.outputs = {y2, y3, att};
  infer_shapes(g);
  return g;
}

// The Casts reading `v`.
size_t casts_of(const Graph& g, const std::string& v) {
  size_t n = 0;
  for (auto& node : g.nodes())
    if (node->op == "Cast" && node->inputs[0]->name == v) ++n;
  return n;
}

// Whether some node still writes `v`.
bool written(const Graph& g, const std::string& v) {
  for (auto& node : g.nodes())
    for (const Value* o : node->outputs)
      if (o && o->name == v) return true;
  return false;
}

double rel_l2(const Tensor& got, const Tensor& want) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    double a = got.data<float>()[i], b = want.data<float>()[i];
    num += (a - b) * (a - b), den += b * b;
  }
  return std::sqrt(num / den);
}

TEST(Autocast, CastsAValueOnceAndReadsLowPrecisionOutputsAsWritten) {
  for (DType dt : {DType::f16, DType::bf16}) {
    std::mt19937 rng(41), rng2(41);
    Graph ref = build(rng), g = build(rng2);
    autocast(g, dt);
    const std::string what = dtype_name(dt);
    EXPECT_EQ(casts_of(g, "x"), 1u) << what;    // read by four MatMuls
    // The Attention and y3's MatMul read qkv and y1 as their MatMuls wrote them: no widening
    // Cast makes the fp32 values, and none narrows them back.
    EXPECT_FALSE(written(g, "qkv")) << what;
    EXPECT_FALSE(written(g, "y1")) << what;
    EXPECT_TRUE(written(g, "y2")) << what;  // a graph output: widened
    for (auto& n : g.nodes())
      if (n->op == "Attention") {
        EXPECT_EQ(n->inputs[0], n->inputs[1]) << what;
        EXPECT_EQ(n->inputs[0], n->inputs[2]) << what;
        EXPECT_EQ(n->inputs[0]->dtype, dt) << what;
      }
    std::map<std::string, Tensor> feeds = {{"x", random_f32({2, 3, 16}, rng)}};
    std::vector<Tensor> want = run_graph(ref, feeds), got = run_graph(g, feeds);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].dtype(), DType::f32) << what << " output " << i;
      EXPECT_LT(rel_l2(got[i], want[i]), 2e-2) << what << " output " << i;
    }
  }
}

}  // namespace
}  // namespace tessera
