// fuse_attention (passes/fuse_attention.cc) and the Attention CPU kernel:
// a hand-built SDPA decomposition (sqrt(scale) on Q and Kᵀ, a constant causal
// mask, GQA heads repeated by Unsqueeze/Expand/Reshape) is fused into one
// node that reads the un-repeated K/V; near misses are left alone; and the
// fused graph's CPU result equals the unfused one on random inputs.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "backend/cpu/executor.h"
#include "passes/fuse_attention.h"
#include "ir/op_registry.h"
#include "passes/pass_manager.h"

using namespace tessera;

namespace {

constexpr int64_t B = 2, Hq = 4, Hkv = 2, T = 7, D = 8;

Tensor random(const Shape& s, std::mt19937& rng) {
  std::normal_distribution<float> n;
  Tensor t = Tensor::empty(DType::f32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
  return t;
}

struct Options {
  int64_t softmax_axis = -1;
  bool break_causal = false;    // one masked entry of the constant mask set to 0
  bool expose_probs = false;    // the softmax output is also a graph output
  bool input_mask = false;      // an additive mask from a graph input instead of the constant
  bool torchlib_k = false;      // Kᵀ as torchlib writes it: Reshape(Transpose(Reshape(K5, [B·H, T, D]), [0, 2, 1]), [B, H, D, T])
  bool nan_guard = false;       // Where(IsNaN(P), 0, P) after the Softmax, as torch's SDPA export adds
};

// softmax(Q·√s · (Kᵀ·√s) + mask) · V, with K and V repeated from Hkv to Hq heads.
void build(Graph& g, const Options& o) {
  auto c = [&](const std::string& n, Tensor t) { return g.add_constant(n, std::move(t)); };
  auto node = [&](const std::string& op, std::vector<Value*> ins, Attributes a = {}) {
    Value* out = g.add_value(g.unique_name(op), DType::f32, {});
    g.add_node(op, out->name, std::move(ins), {out}, std::move(a));
    return out;
  };
  Value* q = g.add_value("q", DType::f32, {B, Hq, T, D});
  Value* k = g.add_value("k", DType::f32, {B, Hkv, T, D});
  Value* v = g.add_value("v", DType::f32, {B, Hkv, T, D});
  g.inputs = {q, k, v};
  auto repeat = [&](Value* x) {
    Value* u = node("Unsqueeze", {x, c(g.unique_name("axes"), Tensor::vector_i64({2}))});
    Value* e = node("Expand", {u, c(g.unique_name("to"), Tensor::vector_i64({B, Hkv, Hq / Hkv, T, D}))});
    return node("Reshape", {e, c(g.unique_name("shape"), Tensor::vector_i64({B, Hq, T, D}))});
  };
  Attributes perm;
  perm.set("perm", std::vector<int64_t>{0, 1, 3, 2});
  Value* kt;
  if (o.torchlib_k) {  // K stays 5-D ([B, Hkv, r, T, D]) up to the first Reshape
    Value* u = node("Unsqueeze", {k, c(g.unique_name("axes"), Tensor::vector_i64({2}))});
    Value* e = node("Expand", {u, c(g.unique_name("to"), Tensor::vector_i64({B, Hkv, Hq / Hkv, T, D}))});
    Value* flat = node("Reshape", {e, c(g.unique_name("shape"), Tensor::vector_i64({B * Hq, T, D}))});
    Attributes p3;
    p3.set("perm", std::vector<int64_t>{0, 2, 1});
    kt = node("Reshape", {node("Transpose", {flat}, p3), c(g.unique_name("shape"), Tensor::vector_i64({B, Hq, D, T}))});
  } else {
    kt = node("Transpose", {repeat(k)}, perm);
  }
  Tensor root = Tensor::from<float>(DType::f32, {}, {std::sqrt(1.0f / std::sqrt(float(D)))});
  Value* qs = node("Mul", {q, c("sq", root)});
  Value* ks = node("Mul", {kt, c("sk", root)});
  Value* s = node("MatMul", {qs, ks});
  Value* mask;
  if (o.input_mask) {
    mask = g.add_value("mask", DType::f32, {B, 1, 1, T});
    g.inputs.push_back(mask);
  } else {
    Tensor m = Tensor::zeros(DType::f32, {T, T});
    for (int64_t i = 0; i < T; ++i)
      for (int64_t j = i + 1; j < T; ++j) m.data<float>()[i * T + j] = -INFINITY;
    if (o.break_causal) m.data<float>()[1] = 0;
    mask = c("causal", m);
  }
  Attributes ax;
  ax.set("axis", o.softmax_axis);
  Value* p = node("Softmax", {node("Add", {s, mask})}, ax);
  Value* probs = p;
  if (o.nan_guard) {
    Value* isnan = node("IsNaN", {p});
    probs = node("Where", {isnan, c(g.unique_name("zero"), Tensor::from<float>(DType::f32, {}, {0.0f})), p});
  }
  Value* out = node("MatMul", {probs, repeat(v)});
  g.outputs = {out};
  if (o.expose_probs) g.outputs.push_back(p);
  infer_shapes(g);
}

int count(const Graph& g, const std::string& op) {
  int n = 0;
  for (auto& node : g.nodes()) n += node->op == op;
  return n;
}
const Node* find(const Graph& g, const std::string& op) {
  for (auto& node : g.nodes())
    if (node->op == op) return node.get();
  return nullptr;
}

// Over the elements that are not NaN in both.
double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double x = a.data<float>()[i], y = b.data<float>()[i];
    if (std::isnan(x) && std::isnan(y)) continue;
    num += (x - y) * (x - y), den += y * y;
  }
  return std::sqrt(num / den);
}

// Run the unfused and the fused graph of `o` on the same random inputs.
void expect_same_result(const Options& o, std::map<std::string, Tensor> in) {
  Graph ref, fused;
  build(ref, o);
  build(fused, o);
  fuse_attention(fused);
  Tensor want = cpu::Executor(ref).run(in).begin()->second;
  Tensor got = cpu::Executor(fused).run(in).begin()->second;
  ASSERT_EQ(got.shape(), want.shape());
  for (int64_t i = 0; i < got.numel(); ++i)
    ASSERT_EQ(std::isnan(got.data<float>()[i]), std::isnan(want.data<float>()[i])) << "element " << i;
  EXPECT_LT(rel_l2(got, want), 1e-5);
}

}  // namespace

TEST(FuseAttention, SdpaWithCausalMaskAndGqaExpand) {
  Graph g;
  build(g, {});
  fuse_attention(g);
  ASSERT_EQ(count(g, "Attention"), 1);
  EXPECT_EQ(count(g, "Softmax"), 0);
  EXPECT_EQ(count(g, "MatMul"), 0);
  EXPECT_EQ(count(g, "Expand"), 0);
  const Node* a = find(g, "Attention");
  ASSERT_EQ(a->inputs.size(), 3u);  // the causal mask became causal=1
  EXPECT_EQ(a->inputs[0]->name, "q");
  EXPECT_EQ(a->inputs[1]->name, "k");  // GQA: the un-repeated K and V
  EXPECT_EQ(a->inputs[2]->name, "v");
  EXPECT_EQ(a->attrs.get_int("causal", 0), 1);
  EXPECT_NEAR(a->attrs.get_float("scale", 0), 1.0 / std::sqrt(double(D)), 1e-7);
  EXPECT_EQ(a->outputs[0]->shape, (Shape{B, Hq, T, D}));
}

TEST(FuseAttention, RefusesNearMisses) {
  {
    Graph g;  // softmax over the query axis is not attention
    build(g, {.softmax_axis = 2});
    fuse_attention(g);
    EXPECT_EQ(count(g, "Attention"), 0);
    EXPECT_EQ(count(g, "Softmax"), 1);
  }
  {
    Graph g;  // the probabilities are read elsewhere: keep the unfused graph
    build(g, {.expose_probs = true});
    fuse_attention(g);
    EXPECT_EQ(count(g, "Attention"), 0);
  }
  {
    Graph g;  // not exactly causal: fused, but the mask stays an input
    build(g, {.break_causal = true});
    fuse_attention(g);
    const Node* a = find(g, "Attention");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->inputs.size(), 4u);
    EXPECT_EQ(a->attrs.get_int("causal", 0), 0);
  }
}

TEST(FuseAttention, FusedEqualsUnfusedOnRandomInputs) {
  std::mt19937 rng(std::random_device{}());
  auto in = [&] {
    return std::map<std::string, Tensor>{{"q", random({B, Hq, T, D}, rng)}, {"k", random({B, Hkv, T, D}, rng)},
                                         {"v", random({B, Hkv, T, D}, rng)}};
  };
  expect_same_result({}, in());
  expect_same_result({.break_causal = true}, in());
  // A padding mask from an input (BERT): finite "minimum" entries, and a fully
  // -inf row in batch 1, which gives NaN in both graphs.
  auto with_mask = in();
  Tensor m = Tensor::zeros(DType::f32, {B, 1, 1, T});
  m.data<float>()[T - 1] = -3.4028234663852886e+38f;
  m.data<float>()[T - 2] = -3.4028234663852886e+38f;
  for (int64_t j = 0; j < T; ++j) m.data<float>()[T + j] = -INFINITY;
  with_mask["mask"] = m;
  expect_same_result({.input_mask = true}, with_mask);
}

TEST(AttentionOp, InferenceChecksHeads) {
  Graph g;
  Value* q = g.add_value("q", DType::f32, {1, 6, 3, 8});
  Value* k = g.add_value("k", DType::f32, {1, 4, 3, 8});
  Value* out = g.add_value("o", DType::f32, {});
  Attributes a;
  a.set("scale", 1.0f);
  Node* n = g.add_node("Attention", "attn", {q, k, k}, {out}, a);
  EXPECT_THROW(infer_node(*n), Error);
}

TEST(FuseAttention, TorchlibKeyChainWithGqaAndNanGuard) {
  Options o;
  o.torchlib_k = true, o.nan_guard = true;
  Graph g;
  build(g, o);
  fuse_attention(g);
  ASSERT_EQ(count(g, "Attention"), 1);
  EXPECT_EQ(count(g, "Where"), 0);
  EXPECT_EQ(count(g, "Expand"), 0);
  const Node* a = find(g, "Attention");
  EXPECT_EQ(a->inputs[1]->name, "k");  // un-repeated through the 5-D chain
  EXPECT_EQ(a->inputs[2]->name, "v");
  EXPECT_EQ(a->attrs.get_int("causal", 0), 1);
  std::mt19937 rng(7);
  expect_same_result(o, {{"q", random({B, Hq, T, D}, rng)}, {"k", random({B, Hkv, T, D}, rng)}, {"v", random({B, Hkv, T, D}, rng)}});
}

TEST(FuseAttention, KeepsTheNanGuardWhenAMaskInputCouldMaskWholeRows) {
  Options o;
  o.nan_guard = true, o.input_mask = true;
  Graph g;
  build(g, o);
  fuse_attention(g);
  EXPECT_EQ(count(g, "Attention"), 0);
  EXPECT_EQ(count(g, "Where"), 1);
}
