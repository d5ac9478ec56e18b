// The Skip norms (ops/skip_norm.cc) and fuse_skip_norm (passes/fuse_skip_norm.cc):
// a residual Add read by a LayerNormalization or RMSNormalization over the last
// dim becomes one SkipLayerNormalization / SkipSimplifiedLayerNormalization whose
// CPU results are the unfused graph's bits (the sum output kept when the next
// residual reads it); near misses stay as they are; bad shapes, dtypes and the
// training outputs are refused naming the node.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "graph_test_util.h"
#include "passes/fuse_skip_norm.h"

using namespace tessera;

namespace {

constexpr int64_t B = 2, T = 5, H = 16;

struct Case {
  bool rms = false;
  bool bias = true;          // LayerNorm's B input
  bool sum_read = true;      // the sum is also read by the next residual Add
  Shape skip = {B, T, H};    // the second addend ([T, H]: position embeddings)
  bool skip_first = false;   // Add(skip, x) instead of Add(x, skip)
  int64_t axis = -1;
  bool mean_read = false;    // LayerNorm's Mean output is a graph output
  DType scale_dtype = DType::f32;
};

void build(Graph& g, const Case& c) {
  Value* x = g.add_value("x", DType::f32, {B, T, H});
  Value* r = g.add_value("r", DType::f32, c.skip);
  Value* scale = g.add_value("scale", c.scale_dtype, {H});
  Value* bias = g.add_value("bias", DType::f32, {H});
  g.inputs = {x, r, scale};
  if (!c.rms && c.bias) g.inputs.push_back(bias);
  Value* s = g.add_value("s", DType::f32, {});
  g.add_node("Add", "residual", c.skip_first ? std::vector<Value*>{r, x} : std::vector<Value*>{x, r}, {s});
  Value* y = g.add_value("y", DType::f32, {});
  Attributes a;
  a.set("axis", c.axis);
  a.set("epsilon", 1e-5f);
  std::vector<Value*> outs = {y};
  if (c.mean_read) outs.push_back(g.add_value("mean", DType::f32, {}));
  std::vector<Value*> ins = {s, scale};
  if (!c.rms && c.bias) ins.push_back(bias);
  g.add_node(c.rms ? "RMSNormalization" : "LayerNormalization", "layers.0/norm", ins, outs, a);
  g.outputs = {y};
  if (c.mean_read) g.outputs.push_back(outs[1]);
  if (c.sum_read) {
    Value* next = g.add_value("next", DType::f32, {});
    g.add_node("Add", "next_residual", {s, y}, {next});
    g.outputs.push_back(next);
  }
  infer_shapes(g);
}

std::map<std::string, Tensor> feeds(const Graph& g, std::mt19937& rng) {
  std::map<std::string, Tensor> in;
  for (const Value* v : g.inputs) in[v->name] = test::random_f32(v->shape, rng).cast(v->dtype);
  return in;
}

void expect_bitwise(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << what << " output " << i;
    EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), got[i].nbytes()), 0) << what << " output " << i;
  }
}

}  // namespace

TEST(SkipNorm, AResidualAddAndItsNormBecomeOneOpWithTheSameBits) {
  std::mt19937 rng(11);
  for (Case c : {Case{}, Case{.bias = false, .sum_read = false}, Case{.rms = true}, Case{.rms = true, .sum_read = false},
                 Case{.skip = {T, H}, .skip_first = true}, Case{.rms = true, .skip = {1, T, H}}, Case{.axis = 2}}) {
    const std::string what = std::string(c.rms ? "RMS" : "LayerNorm") + (c.sum_read ? ", sum read" : "") +
                             ", skip " + to_string(c.skip) + (c.skip_first ? " first" : "");
    Graph ref, g;
    build(ref, c);
    build(g, c);
    fuse_skip_norm(g);
    const char* fused = c.rms ? "SkipSimplifiedLayerNormalization" : "SkipLayerNormalization";
    ASSERT_EQ(test::count_op(g, fused), 1u) << what;
    EXPECT_EQ(test::count_op(g, "Add"), c.sum_read ? 1u : 0u) << what;  // only the next residual's
    const Node* n = test::find_op(g, fused);
    EXPECT_EQ(n->domain, "com.microsoft") << what;
    EXPECT_EQ(n->inputs[0]->name, "x") << what;
    EXPECT_EQ(n->inputs[1]->name, "r") << what;
    EXPECT_EQ(n->outputs.size(), c.sum_read ? 4u : 1u) << what;
    if (c.sum_read) EXPECT_EQ(n->outputs[3]->name, "s") << what;
    auto in = feeds(ref, rng);
    expect_bitwise(test::run_graph(g, in), test::run_graph(ref, in), what);
  }
}

TEST(SkipNorm, NearMissesKeepTheirAdd) {
  std::mt19937 rng(12);
  for (auto [c, what] : {std::pair{Case{.axis = 1}, "normalised over more than the last dim"},
                         {Case{.mean_read = true}, "LayerNorm's Mean is read"},
                         {Case{.rms = true, .scale_dtype = DType::f16}, "scale's dtype differs (RMS output in f16)"},
                         {Case{.skip = {B, 1, H}}, "the addend repeats over a middle dim"}}) {
    Graph ref, g;
    build(ref, c);
    build(g, c);
    fuse_skip_norm(g);
    EXPECT_EQ(test::count_op(g, "SkipLayerNormalization") + test::count_op(g, "SkipSimplifiedLayerNormalization"), 0u)
        << what;
    auto in = feeds(ref, rng);
    expect_bitwise(test::run_graph(g, in), test::run_graph(ref, in), what);
  }
}

namespace {

// Inference's message for SkipLayerNormalization(input [B, T, H], skip, gamma, beta) with
// `outputs` outputs (the middle ones filled when asked).
std::string message(Shape skip, Shape gamma, DType skip_dtype = DType::f32, bool training_outputs = false) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {B, T, H});
  Value* r = g.add_value("r", skip_dtype, skip);
  Value* ga = g.add_value("gamma", DType::f32, gamma);
  g.inputs = {x, r, ga};
  Value* y = g.add_value("y", DType::f32, {});
  std::vector<Value*> outs = {y};
  if (training_outputs) outs.push_back(g.add_value("mean", DType::f32, {}));
  g.add_node("SkipLayerNormalization", "layers.3/ln", {x, r, ga}, outs)->domain = "com.microsoft";
  g.outputs = {y};
  return test::inference_message(g);
}

}  // namespace

TEST(SkipNorm, InferenceRefusesBadInputsNamingTheNode) {
  EXPECT_EQ(message({T, H}, {H}), "(no error) [2,5,16]");
  EXPECT_EQ(message({1, 1, H}, {1, H}), "(no error) [2,5,16]");
  for (auto [m, says] : {std::pair{message({B, 1, H}, {H}), "must be input's shape"},
                         {message({B, T, H + 1}, {H}), "must be input's shape"},
                         {message({B, T, H}, {H, 1}), "gamma [16,1] must be [16]"},
                         {message({B, T, H}, {H}, DType::f16), "skip is float16, expected input's dtype float32"},
                         {message({B, T, H}, {H}, DType::f32, true), "training outputs"}}) {
    EXPECT_NE(m.find("layers.3/ln"), std::string::npos) << m;
    EXPECT_NE(m.find(says), std::string::npos) << m;
  }
}
