// fuse_rmsnorm and RMSNormalization's CPU kernel: the exporters' chains fuse
// into one node that computes what the chain did; near misses stay unfused.
// An f32 RMSNormalization cast down to bf16/f16 writes that dtype itself, bit
// for bit the same, only when its scale is exact in it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <random>

#include "backend/cpu/kernel_registry.h"
#include "ir/verifier.h"
#include "passes/fuse_rmsnorm.h"
#include "passes/pass_manager.h"
#include "graph_test_util.h"

namespace tessera {
namespace {

using test::count_op;
using test::run_graph;

constexpr int64_t kHidden = 16;

Tensor randn(const Shape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(size_t(numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from<float>(DType::f32, s, v);
}

Tensor scalar(float v) { return Tensor::from<float>(DType::f32, {}, {v}); }


Value* op(Graph& g, const std::string& type, std::vector<Value*> in, Attributes attrs = {}) {
  Value* out = g.add_value(g.unique_name(type + "_out"), DType::f32, {});
  g.add_node(type, "/model/norm/" + g.unique_name(type), std::move(in), {out}, std::move(attrs));
  return out;
}

Attributes ints(const std::string& name, std::vector<int64_t> v) {
  Attributes a;
  a.set(name, std::move(v));
  return a;
}

// The knobs of one hand-built chain; the defaults are Llama's (dynamo export).
struct Chain {
  float exponent = 2.0f;
  bool mul_square = false;      // Mul(x, x) instead of Pow(x, 2)
  bool axes_input = false;      // ReduceMean axes as a constant input (opset 18)
  int64_t axis = -1;
  bool div_one = false;         // Div(1, sqrt) instead of Reciprocal
  bool div_x = false;           // Div(x, sqrt) directly
  bool casts = false;           // Cast(x, f32) first and Cast(·, f32) before the weight (torchscript)
  bool weight_first = true;     // Mul(weight, ·)
  bool extra_reader = false;    // the ReduceMean output is also a graph output
};

void build(Graph& g, const Chain& c) {
  Value* x = g.add_value("x", DType::f32, {2, 3, kHidden});
  g.inputs = {x};
  Value* w = g.add_constant("model.norm.weight", randn({kHidden}, 5));
  Attributes to_f32;
  to_f32.set("to", int64_t(DType::f32));
  Value* v = c.casts ? op(g, "Cast", {x}, to_f32) : x;
  Value* sq = c.mul_square ? op(g, "Mul", {v, v}) : op(g, "Pow", {v, g.add_constant("two", scalar(c.exponent))});
  Value* mean = c.axes_input
                    ? op(g, "ReduceMean", {sq, g.add_constant("axes", Tensor::from<int64_t>(DType::i64, {1}, {c.axis}))})
                    : op(g, "ReduceMean", {sq}, ints("axes", {c.axis}));
  Value* s = op(g, "Sqrt", {op(g, "Add", {mean, g.add_constant("eps", scalar(1e-6f))})});
  Value* normed = c.div_x    ? op(g, "Div", {v, s})
                  : c.div_one ? op(g, "Mul", {v, op(g, "Div", {g.add_constant("one", scalar(1.0f)), s})})
                              : op(g, "Mul", {v, op(g, "Reciprocal", {s})});
  if (c.casts) normed = op(g, "Cast", {normed}, to_f32);
  Value* y = c.weight_first ? op(g, "Mul", {w, normed}) : op(g, "Mul", {normed, w});
  g.outputs = {y};
  if (c.extra_reader) g.outputs.push_back(mean);
}

// Builds the chain twice, fuses one copy; checks the node count and that the
// fused graph's outputs match the chain's (relative L2 <= 1e-6: the fused
// kernel accumulates in double, the chain in f32).
void check(const Chain& c, bool expect_fused) {
  Graph plain, fused;
  build(plain, c);
  infer_shapes(plain);
  build(fused, c);
  infer_shapes(fused);
  fuse_rmsnorm(fused);
  verify(fused, "fuse_rmsnorm");
  EXPECT_EQ(count_op(fused, "RMSNormalization"), expect_fused ? 1u : 0u);
  if (expect_fused) EXPECT_EQ(fused.nodes().size(), 1u);
  else EXPECT_EQ(fused.nodes().size(), plain.nodes().size());
  std::map<std::string, Tensor> feeds{{"x", randn({2, 3, kHidden}, 11)}};
  std::vector<Tensor> a = run_graph(plain, feeds), b = run_graph(fused, feeds);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].dtype(), b[i].dtype());
    ASSERT_EQ(a[i].shape(), b[i].shape());
    double num = 0, den = 0;
    for (int64_t j = 0; j < a[i].numel(); ++j) {
      // An unfused graph is the same graph: same values, NaN included (x^3 can be negative).
      if (!expect_fused && std::isnan(a[i].item_f64(j)) && std::isnan(b[i].item_f64(j))) continue;
      double d = a[i].item_f64(j) - b[i].item_f64(j);
      num += d * d;
      den += a[i].item_f64(j) * a[i].item_f64(j);
    }
    EXPECT_LE(std::sqrt(num / std::max(den, 1e-30)), 1e-6) << "output " << i;
  }
}

TEST(FuseRMSNorm, LlamaDynamoChain) { check({}, true); }
TEST(FuseRMSNorm, TorchScriptChainWithCasts) { check({.div_one = true, .casts = true}, true); }
TEST(FuseRMSNorm, MulSquareAxesInputDivX) { check({.mul_square = true, .axes_input = true, .div_x = true, .weight_first = false}, true); }
TEST(FuseRMSNorm, PositiveLastAxis) { check({.axis = 2}, true); }

TEST(FuseRMSNorm, RefusesExponentThree) { check({.exponent = 3.0f}, false); }
TEST(FuseRMSNorm, RefusesAnotherAxis) { check({.axis = 1}, false); }
TEST(FuseRMSNorm, RefusesExtraReader) { check({.extra_reader = true}, false); }

TEST(FuseRMSNorm, SetsEpsilonAndKeepsOutputName) {
  Graph g;
  build(g, {});
  std::string out_name = g.outputs[0]->name;
  infer_shapes(g);
  fuse_rmsnorm(g);
  ASSERT_EQ(g.nodes().size(), 1u);
  const Node& n = *g.nodes()[0];
  EXPECT_EQ(n.op, "RMSNormalization");
  EXPECT_EQ(n.name, "/model/norm/RMSNormalization");
  EXPECT_FLOAT_EQ(n.attrs.get_float("epsilon", 0), 1e-6f);
  EXPECT_EQ(n.inputs[0]->name, "x");
  EXPECT_EQ(g.outputs[0]->name, out_name);
}

// RMSNormalization(x, scale f32) → f32 → Cast(to): torch's nn.RMSNorm in a
// bf16 module as the dynamo exporter writes it (x is `to` too).
struct CastDown {
  DType to = DType::bf16;
  bool odd = false;           // scale[3] = odd_value (which may not be a `to` value)
  float odd_value = 0;
  bool y_is_output = false;   // the f32 output is also a graph output
  bool y_read_twice = false;  // the f32 output also feeds a Neg
};

void build_cast_down(Graph& g, const CastDown& c) {
  Value* x = g.add_value("x", c.to, {2, 3, kHidden});
  g.inputs = {x};
  Tensor s = randn({kHidden}, 7).cast(c.to).cast(DType::f32);  // every value exactly a `to`
  if (c.odd) s.data<float>()[3] = c.odd_value;
  Value* scale = g.add_constant("convert_element_type_default", s);
  Attributes a;
  a.set("axis", int64_t(-1));
  a.set("epsilon", 1e-5f);
  Value* y = op(g, "RMSNormalization", {x, scale}, a);
  Attributes to;
  to.set("to", int64_t(c.to));
  g.outputs = {op(g, "Cast", {y}, to)};
  if (c.y_is_output) g.outputs.push_back(y);
  if (c.y_read_twice) g.outputs.push_back(op(g, "Neg", {y}));
  infer_shapes(g);
}

// Builds the graph twice, runs fuse_rmsnorm on one; checks whether the Cast
// went and the outputs are the same bytes.
void check_cast_down(const CastDown& c, bool expect_rewritten) {
  Graph plain, rewritten;
  build_cast_down(plain, c);
  build_cast_down(rewritten, c);
  fuse_rmsnorm(rewritten);
  verify(rewritten, "fuse_rmsnorm");
  EXPECT_EQ(count_op(rewritten, "Cast"), expect_rewritten ? 0u : 1u);
  EXPECT_EQ(rewritten.nodes().size(), plain.nodes().size() - (expect_rewritten ? 1 : 0));
  const Node& rms = *rewritten.nodes()[0];
  ASSERT_EQ(rms.op, "RMSNormalization");
  EXPECT_EQ(rms.outputs[0]->dtype, expect_rewritten ? c.to : DType::f32);
  EXPECT_EQ(rms.inputs[1]->dtype, expect_rewritten ? c.to : DType::f32);
  if (expect_rewritten) EXPECT_EQ(rms.outputs[0], rewritten.outputs[0]);
  std::map<std::string, Tensor> feeds{{"x", randn({2, 3, kHidden}, 11).cast(c.to)}};
  std::vector<Tensor> a = run_graph(plain, feeds), b = run_graph(rewritten, feeds);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i].dtype(), b[i].dtype());
    ASSERT_EQ(a[i].shape(), b[i].shape());
    EXPECT_EQ(std::memcmp(a[i].raw(), b[i].raw(), a[i].nbytes()), 0) << "output " << i;
  }
}

TEST(FuseRMSNorm, CastToBf16IsWrittenDirectly) { check_cast_down({}, true); }
TEST(FuseRMSNorm, CastToF16IsWrittenDirectly) { check_cast_down({.to = DType::f16, .odd = true, .odd_value = 1.0f + 0x1p-10f}, true); }
TEST(FuseRMSNorm, InfiniteScaleIsExact) { check_cast_down({.odd = true, .odd_value = -INFINITY}, true); }

TEST(FuseRMSNorm, KeepsCastWhenScaleIsNotExact) {
  check_cast_down({.odd = true, .odd_value = 1.0f + 0x1p-10f}, false);             // 10 mantissa bits: no bf16
  check_cast_down({.to = DType::f16, .odd = true, .odd_value = 1e5f}, false);       // beyond f16's range
  check_cast_down({.to = DType::f16, .odd = true, .odd_value = 1e-9f}, false);      // below f16's subnormals
  check_cast_down({.odd = true, .odd_value = std::nanf("")}, false);                // NaN: refused
}

TEST(FuseRMSNorm, KeepsCastWhenTheF32OutputHasAnotherReader) {
  check_cast_down({.y_is_output = true}, false);
  check_cast_down({.y_read_twice = true}, false);
}

// The kernel itself against a hand computation, scale over two dims (axis 1).
TEST(RMSNormalization, CpuKernelAxisOne) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {2, 2, 3});
  Value* s = g.add_constant("s", Tensor::from<float>(DType::f32, {2, 3}, {1, 2, 3, 4, 5, 6}));
  Value* y = g.add_value("y", DType::f32, {});
  Attributes a;
  a.set("axis", int64_t(1));
  a.set("epsilon", 0.5f);
  g.add_node("RMSNormalization", "rms", {x, s}, {y}, a);
  g.inputs = {x};
  g.outputs = {y};
  infer_shapes(g);
  EXPECT_EQ(y->shape, (Shape{2, 2, 3}));
  std::vector<float> xv = {1, 2, 3, 4, 5, 6, -1, 0, 1, 0, 0, 2};
  Tensor out = run_graph(g, {{"x", Tensor::from<float>(DType::f32, {2, 2, 3}, xv)}})[0];
  for (int r = 0; r < 2; ++r) {
    double ss = 0;
    for (int j = 0; j < 6; ++j) ss += double(xv[size_t(r * 6 + j)]) * xv[size_t(r * 6 + j)];
    double inv = 1.0 / std::sqrt(ss / 6 + 0.5);
    for (int j = 0; j < 6; ++j) EXPECT_NEAR(out.item_f64(r * 6 + j), xv[size_t(r * 6 + j)] * inv * (j + 1), 1e-6);
  }
}

}  // namespace
}  // namespace tessera
