// Rope (ops/rope.cc) and its CPU kernel: against the unfused graph the Llama
// builder used to emit (Slice, Slice, Neg, Concat, Mul, Mul, Add), against
// the complex form by hand, and the inference errors; fuse_rope on the
// exporters' chains (two Slices, or the dynamo exporter's one Split).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "ir/op_registry.h"
#include "passes/fuse_rope.h"
#include "passes/pass_manager.h"
#include "graph_test_util.h"

namespace tessera {
namespace {

using test::random_f32;
using test::run_graph;

Value* node(Graph& g, const std::string& op, std::vector<Value*> in, Attributes a = {}) {
  Value* out = g.add_value(g.unique_name(op + "_out"), DType::f32, {});
  g.add_node(op, g.unique_name(op), std::move(in), {out}, std::move(a));
  return out;
}

Value* i64s(Graph& g, std::vector<int64_t> v) {
  return g.add_constant(g.unique_name("c"), Tensor::from<int64_t>(DType::i64, {int64_t(v.size())}, v));
}

struct Tables {
  Graph g;
  Value *x, *cos, *sin;
  Tables(const Shape& x_shape, const Shape& table_shape) {
    x = g.add_value("x", DType::f32, x_shape);
    cos = g.add_value("cos", DType::f32, table_shape);
    sin = g.add_value("sin", DType::f32, table_shape);
    g.inputs = {x, cos, sin};
  }
};

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i) m = std::max(m, std::fabs(double(a.data<float>()[i]) - double(b.data<float>()[i])));
  return m;
}

TEST(Rope, RotateHalfEqualsTheUnfusedGraph) {
  const Shape xs{2, 3, 5, 8}, ts{2, 1, 5, 8};
  Tables fused(xs, ts), plain(xs, ts);
  fused.g.outputs = {node(fused.g, "Rope", {fused.x, fused.cos, fused.sin})};
  Graph& g = plain.g;
  Attributes ax;
  ax.set("axis", int64_t(3));
  Value* x1 = node(g, "Slice", {plain.x, i64s(g, {0}), i64s(g, {4}), i64s(g, {3})});
  Value* x2 = node(g, "Slice", {plain.x, i64s(g, {4}), i64s(g, {8}), i64s(g, {3})});
  Value* rot = node(g, "Concat", {node(g, "Neg", {x2}), x1}, ax);
  g.outputs = {node(g, "Add", {node(g, "Mul", {plain.x, plain.cos}), node(g, "Mul", {rot, plain.sin})})};
  infer_shapes(fused.g);
  infer_shapes(plain.g);
  EXPECT_EQ(fused.g.outputs[0]->shape, xs);
  std::mt19937 rng(3);
  std::map<std::string, Tensor> feeds = {{"x", random_f32(xs, rng)}, {"cos", random_f32(ts, rng)}, {"sin", random_f32(ts, rng)}};
  EXPECT_LE(max_abs_diff(run_graph(fused.g, feeds)[0], run_graph(plain.g, feeds)[0]), 1e-6);
}

// The exporters' rotate-half chain, as Rope(x, cos, sin) would compute it.
struct Chain {
  Tables t;
  // x2 = x[hi_start : hi_start + 4] (to the end, written as INT64_MAX, by default).
  explicit Chain(int64_t hi_start = 4, bool neg_first = true) : t({2, 3, 5, 8}, {2, 1, 5, 8}) {
    Graph& g = t.g;
    Attributes ax;
    ax.set("axis", int64_t(-1));
    int64_t hi_end = hi_start == 4 ? std::numeric_limits<int64_t>::max() : hi_start + 4;
    Value* x1 = node(g, "Slice", {t.x, i64s(g, {0}), i64s(g, {4}), i64s(g, {-1})});
    Value* x2 = node(g, "Slice", {t.x, i64s(g, {hi_start}), i64s(g, {hi_end}), i64s(g, {3}), i64s(g, {1})});
    Value* n = node(g, "Neg", {x2});
    Value* rot = node(g, "Concat", neg_first ? std::vector<Value*>{n, x1} : std::vector<Value*>{x1, n}, ax);
    g.outputs = {node(g, "Add", {node(g, "Mul", {t.sin, rot}), node(g, "Mul", {t.x, t.cos})})};
    infer_shapes(g);
  }
};

// fuse_rope turned `fused` (a copy of `plain`, x [2, 3, 5, 8], tables [2, 1, 5, 8])
// into one Rope(x, cos, sin) that computes what `plain` does.
void expect_one_rope_like(const Tables& fused, const Tables& plain, uint32_t seed) {
  ASSERT_EQ(fused.g.nodes().size(), 1u);
  const Node& n = *fused.g.nodes()[0];
  EXPECT_EQ(n.op, "Rope");
  EXPECT_EQ(n.inputs, (std::vector<Value*>{fused.x, fused.cos, fused.sin}));
  EXPECT_EQ(n.outputs[0], fused.g.outputs[0]);
  std::mt19937 rng(seed);
  const Shape xs{2, 3, 5, 8}, ts{2, 1, 5, 8};
  std::map<std::string, Tensor> feeds = {{"x", random_f32(xs, rng)}, {"cos", random_f32(ts, rng)}, {"sin", random_f32(ts, rng)}};
  EXPECT_LE(max_abs_diff(run_graph(fused.g, feeds)[0], run_graph(plain.g, feeds)[0]), 1e-6);
}

TEST(FuseRope, TheExportersChainBecomesOneRopeWithTheSameResult) {
  Chain plain, fused;
  fuse_rope(fused.t.g);
  expect_one_rope_like(fused.t, plain.t, 5);
}

TEST(FuseRope, LeavesChainsThatAreNotRotateHalf) {
  Chain wrong_half(2);          // x2 is not the second half
  Chain swapped(4, false);      // Concat(x1, -x2): another rotation
  for (Chain* c : {&wrong_half, &swapped}) {
    size_t before = c->t.g.nodes().size();
    fuse_rope(c->t.g);
    EXPECT_EQ(c->t.g.nodes().size(), before);
  }
}

// The torch dynamo exporter's form: t1, t2 = x.chunk(2, -1) is one Split.
struct SplitChain {
  Tables t;
  // split: constant split sizes ({} writes num_outputs = 2 instead); also_output:
  // that Split output (0 or 1) is a graph output too, so it has another reader.
  explicit SplitChain(std::vector<int64_t> split = {}, int also_output = -1) : t({2, 3, 5, 8}, {2, 1, 5, 8}) {
    Graph& g = t.g;
    Attributes sa, ax;
    sa.set("axis", int64_t(3));
    ax.set("axis", int64_t(-1));
    std::vector<Value*> in{t.x};
    if (split.empty()) sa.set("num_outputs", int64_t(2));
    else in.push_back(i64s(g, split));
    Value* x1 = g.add_value("split_0", DType::f32, {});
    Value* x2 = g.add_value("split_1", DType::f32, {});
    g.add_node("Split", "Split", in, {x1, x2}, sa);
    Value* rot = node(g, "Concat", {node(g, "Neg", {x2}), x1}, ax);
    g.outputs = {node(g, "Add", {node(g, "Mul", {t.x, t.cos}), node(g, "Mul", {rot, t.sin})})};
    if (also_output >= 0) g.outputs.push_back(also_output == 0 ? x1 : x2);
    infer_shapes(g);
  }
};

TEST(FuseRope, TheDynamoSplitChainBecomesOneRopeWithTheSameResult) {
  for (std::vector<int64_t> split : {std::vector<int64_t>{}, std::vector<int64_t>{4, 4}}) {
    SplitChain plain(split), fused(split);
    fuse_rope(fused.t.g);
    expect_one_rope_like(fused.t, plain.t, 6);
  }
}

TEST(FuseRope, LeavesSplitChainsThatAreNotRotateHalf) {
  SplitChain unequal({3, 5});          // Concat(-x[3:], x[:3]): not the halves
  SplitChain lo_read(/*split=*/{}, 0);  // the first half is also a graph output
  SplitChain hi_read({4, 4}, 1);        // the second half too
  for (SplitChain* c : {&unequal, &lo_read, &hi_read}) {
    size_t before = c->t.g.nodes().size();
    fuse_rope(c->t.g);
    EXPECT_EQ(c->t.g.nodes().size(), before);
    EXPECT_EQ(test::count_op(c->t.g, "Split"), 1u);
  }
}

TEST(Rope, InterleavedIsTheComplexProduct) {
  const Shape xs{1, 2, 3, 4}, ts{3, 4};
  Tables t(xs, ts);
  Attributes a;
  a.set("interleaved", int64_t(1));
  t.g.outputs = {node(t.g, "Rope", {t.x, t.cos, t.sin}, a)};
  infer_shapes(t.g);
  std::mt19937 rng(4);
  Tensor x = random_f32(xs, rng), angle = random_f32({3, 2}, rng);
  std::vector<float> c(12), s(12);
  for (int p = 0; p < 3; ++p)
    for (int f = 0; f < 2; ++f)
      for (int e = 0; e < 2; ++e) {
        c[size_t(p * 4 + 2 * f + e)] = std::cos(angle.data<float>()[p * 2 + f]);
        s[size_t(p * 4 + 2 * f + e)] = std::sin(angle.data<float>()[p * 2 + f]);
      }
  Tensor y = run_graph(t.g, {{"x", x}, {"cos", Tensor::from<float>(DType::f32, ts, c)}, {"sin", Tensor::from<float>(DType::f32, ts, s)}})[0];
  for (int64_t i = 0; i < x.numel(); i += 2) {  // (x0 + i x1) * e^{i angle}
    int64_t pos = (i / 4) % 3, f = (i % 4) / 2;
    double th = angle.data<float>()[pos * 2 + f], re = x.data<float>()[i], im = x.data<float>()[i + 1];
    EXPECT_NEAR(y.data<float>()[i], re * std::cos(th) - im * std::sin(th), 1e-5) << i;
    EXPECT_NEAR(y.data<float>()[i + 1], re * std::sin(th) + im * std::cos(th), 1e-5) << i;
  }
}

TEST(Rope, InferenceRejectsWhatItCannotRotate) {
  auto check = [](const Shape& xs, const Shape& ts, DType table_dtype, int64_t interleaved) {
    Graph g;
    Value* x = g.add_value("x", DType::f32, xs);
    Value* c = g.add_value("c", table_dtype, ts);
    Value* s = g.add_value("s", table_dtype, ts);
    Value* y = g.add_value("y", DType::f32, {});
    Node* n = g.add_node("Rope", "rope", {x, c, s}, {y});
    n->attrs.set("interleaved", interleaved);
    return infer_node(*n);
  };
  EXPECT_NO_THROW(check({2, 4, 6, 8}, {2, 1, 6, 8}, DType::f32, 0));
  EXPECT_THROW(check({2, 4, 6, 7}, {6, 7}, DType::f32, 0), Error);      // odd head dim
  EXPECT_THROW(check({2, 4, 6, 8}, {6, 8}, DType::f16, 0), Error);      // table dtype
  EXPECT_THROW(check({2, 4, 6, 8}, {2, 1, 7, 8}, DType::f32, 0), Error);  // does not broadcast
  EXPECT_THROW(check({2, 4, 6, 8}, {3, 2, 4, 6, 8}, DType::f32, 0), Error);  // grows X
  EXPECT_THROW(check({2, 4, 6, 8}, {6, 8}, DType::f32, 2), Error);      // interleaved
}

}  // namespace
}  // namespace tessera
