// fuse_attention (passes/fuse_attention.cc) and the Attention CPU kernel:
// a hand-built SDPA decomposition (sqrt(scale) on Q and Kᵀ, a constant causal
// mask, GQA heads repeated by Unsqueeze/Expand/Reshape) is fused into one
// node that reads the un-repeated K/V; near misses are left alone; and the
// fused graph's CPU result equals the unfused one on random inputs. The
// layout attribute: every Q/K/V/output layout combination equals the default
// layout between explicit Transposes, bad values are refused naming the node,
// and attention_layout absorbs the exporters' head Transposes (and only them).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
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

// ---------------------------------------------------------------- layout

namespace {

struct LayoutCase {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
  bool causal, mask;
};

Attributes attention_attrs(float scale, bool causal, std::vector<int64_t> layout = {}) {
  Attributes a;
  a.set("scale", scale);
  a.set("causal", int64_t(causal));
  if (!layout.empty()) a.set("layout", std::move(layout));
  return a;
}

Value* swap12(Graph& g, Value* x) {
  Attributes perm;
  perm.set("perm", std::vector<int64_t>{0, 2, 1, 3});
  Value* out = g.add_value(g.unique_name(x->name + ".t"), x->dtype, {});
  g.add_node("Transpose", out->name, {x}, {out}, perm);
  return out;
}

// [B, H, T, X], or [B, T, H, X] with layout 1.
Shape stored(int64_t layout, int64_t B, int64_t H, int64_t T, int64_t X) {
  return layout ? Shape{B, T, H, X} : Shape{B, H, T, X};
}

// One Attention with `layout` (direct), or the default-layout Attention between Transposes (reference).
void build_layout(Graph& g, const LayoutCase& c, const std::vector<int64_t>& layout, bool direct) {
  Value* q = g.add_value("q", DType::f32, stored(layout[0], c.B, c.Hq, c.Tq, c.D));
  Value* k = g.add_value("k", DType::f32, stored(layout[1], c.B, c.Hkv, c.Tk, c.D));
  Value* v = g.add_value("v", DType::f32, stored(layout[2], c.B, c.Hkv, c.Tk, c.Dv));
  g.inputs = {q, k, v};
  std::vector<Value*> ins = {q, k, v};
  if (c.mask) {
    Value* m = g.add_value("mask", DType::f32, {c.B, c.Hq, c.Tq, c.Tk});  // indexed [b, h, i, j] in every layout
    g.inputs.push_back(m);
    ins.push_back(m);
  }
  float scale = 1.0f / std::sqrt(float(c.D));
  Value* out = g.add_value("attn", DType::f32, {});
  if (direct) {
    g.add_node("Attention", "attn", ins, {out}, attention_attrs(scale, c.causal, layout));
  } else {
    for (size_t i = 0; i < 3; ++i)
      if (layout[i]) ins[i] = swap12(g, ins[i]);
    g.add_node("Attention", "attn", ins, {out}, attention_attrs(scale, c.causal));
    if (layout[3]) out = swap12(g, out);
  }
  g.outputs = {out};
  infer_shapes(g);
}

void expect_bitwise_equal(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  EXPECT_EQ(std::memcmp(got.raw(), want.raw(), size_t(got.numel()) * dtype_size(got.dtype())), 0) << what;
}

}  // namespace

TEST(AttentionLayout, EveryCombinationEqualsExplicitTransposes) {
  std::mt19937 rng(11);
  const LayoutCase cases[] = {
      {2, 4, 2, 5, 7, 8, 6, false, true},   // GQA, Tq != Tk, Dv != D, a mask over every head
      {1, 6, 3, 7, 7, 8, 8, true, false},   // GQA, causal self-attention
      {2, 2, 2, 3, 9, 4, 5, true, true},    // causal with Tq < Tk and a mask
      {1, 4, 1, 1, 6, 8, 8, false, false},  // one query row (decode), one KV head
  };
  for (const LayoutCase& c : cases)
    for (int bits = 0; bits < 16; ++bits) {
      std::vector<int64_t> layout = {bits & 1, (bits >> 1) & 1, (bits >> 2) & 1, (bits >> 3) & 1};
      Graph ref, direct;
      build_layout(ref, c, layout, false);
      build_layout(direct, c, layout, true);
      std::map<std::string, Tensor> in;
      for (Value* x : direct.inputs) in[x->name] = random(x->shape, rng);
      std::string what = "B" + std::to_string(c.B) + " Hq" + std::to_string(c.Hq) + " Hkv" + std::to_string(c.Hkv) + " Tq" +
                         std::to_string(c.Tq) + " Tk" + std::to_string(c.Tk) + " layout " + std::to_string(bits);
      EXPECT_EQ(direct.outputs[0]->shape, stored(layout[3], c.B, c.Hq, c.Tq, c.Dv)) << what;
      expect_bitwise_equal(cpu::Executor(direct).run(in).at("attn"), cpu::Executor(ref).run(in).at(ref.outputs[0]->name), what);
    }
}

TEST(AttentionLayout, InferenceReadsHeadsAndLengthPerEntry) {
  Graph g;
  Value* q = g.add_value("q", DType::f32, {1, 5, 6, 8});  // [B, T, H, D]: Tq 5, Hq 6
  Value* k = g.add_value("k", DType::f32, {1, 3, 7, 8});  // [B, H, T, D]: Hkv 3, Tk 7
  Value* v = g.add_value("v", DType::f32, {1, 7, 3, 4});  // [B, T, H, D]
  Value* out = g.add_value("o", DType::f32, {});
  Node* n = g.add_node("Attention", "attn", {q, k, v}, {out}, attention_attrs(1.0f, false, {1, 0, 1, 0}));
  EXPECT_EQ(infer_node(*n).at(0).shape, (Shape{1, 6, 5, 4}));
  n->attrs.set("layout", std::vector<int64_t>{1, 0, 1, 1});
  EXPECT_EQ(infer_node(*n).at(0).shape, (Shape{1, 5, 6, 4}));
  n->attrs.set("layout", std::vector<int64_t>{1, 0, 0, 0});  // V read as 7 heads of length 3: does not match K
  EXPECT_THROW(infer_node(*n), Error);
  n->attrs.set("layout", std::vector<int64_t>{0, 0, 1, 0});  // Q read as 5 heads: not a multiple of 3
  EXPECT_THROW(infer_node(*n), Error);
}

TEST(AttentionLayout, InferenceRejectsABadLayoutNamingTheNode) {
  Graph g;
  Value* q = g.add_value("q", DType::f32, {1, 2, 3, 8});
  Value* out = g.add_value("o", DType::f32, {});
  Node* n = g.add_node("Attention", "layers.0/attn", {q, q, q}, {out}, attention_attrs(1.0f, false));
  auto message = [&](Attribute layout) -> std::string {
    n->attrs.set("layout", std::move(layout));
    try {
      infer_node(*n);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  };
  std::string m = message(std::vector<int64_t>{0, 0, 0});
  EXPECT_NE(m.find("layers.0/attn"), std::string::npos) << m;
  EXPECT_NE(m.find("layout must have 4 entries"), std::string::npos) << m;
  m = message(std::vector<int64_t>{0, 2, 0, 0});
  EXPECT_NE(m.find("layers.0/attn"), std::string::npos) << m;
  EXPECT_NE(m.find("layout[1] (K)"), std::string::npos) << m;
  EXPECT_NE(m.find("got 2"), std::string::npos) << m;
  m = message(std::vector<float>{0, 0, 0, 1});
  EXPECT_NE(m.find("layers.0/attn"), std::string::npos) << m;
  EXPECT_NE(m.find("layout must be 4 ints"), std::string::npos) << m;
  EXPECT_EQ(message(std::vector<int64_t>{1, 1, 1, 1}), "(no error)");
}

namespace {

struct Exported {
  bool k_one_transpose = false;  // Kᵀ as one Transpose(perm = [0, 2, 3, 1]) of K [B, T, H, D]
  bool expose_attention = false; // the attention output [B, H, T, D] is also a graph output
  bool q_read_twice = false;     // Q's head-split Transpose is also read elsewhere (a graph output)
  bool other_perm = false;       // V comes from a Transpose of another perm
};

constexpr int64_t XT = 6, XH = 4, XD = 8;

// What dynamo writes for GPT-2: x [1, T, H·D] → Reshape [1, T, H, D] → Transpose(0, 2, 1, 3) for q, k,
// v; softmax(q·kᵀ·s + causal)·v; Transpose(0, 2, 1, 3) → Reshape [1, T, H·D].
void build_exported(Graph& g, const Exported& o) {
  auto c = [&](const std::string& n, Tensor t) { return g.add_constant(g.unique_name(n), std::move(t)); };
  auto node = [&](const std::string& op, std::vector<Value*> ins, Attributes a = {}) {
    Value* out = g.add_value(g.unique_name(op), DType::f32, {});
    g.add_node(op, out->name, std::move(ins), {out}, std::move(a));
    return out;
  };
  auto perm = [](std::vector<int64_t> p) {
    Attributes a;
    a.set("perm", std::move(p));
    return a;
  };
  std::vector<Value*> heads;
  for (const char* name : {"xq", "xk", "xv"}) {
    Value* x = g.add_value(name, DType::f32, {1, XT, XH * XD});
    g.inputs.push_back(x);
    heads.push_back(node("Reshape", {x, c("split", Tensor::vector_i64({1, XT, XH, XD}))}));
  }
  Value* q = node("Transpose", {heads[0]}, perm({0, 2, 1, 3}));
  Value* kt = o.k_one_transpose ? node("Transpose", {heads[1]}, perm({0, 2, 3, 1}))
                                : node("Transpose", {node("Transpose", {heads[1]}, perm({0, 2, 1, 3}))}, perm({0, 1, 3, 2}));
  // other_perm: the same [1, H, T, D] from a [T, 1, H, D] view of xv by Transpose(perm = [1, 2, 0, 3]).
  Value* v = o.other_perm ? node("Transpose", {node("Reshape", {g.inputs[2], c("tbhd", Tensor::vector_i64({XT, 1, XH, XD}))})}, perm({1, 2, 0, 3}))
                          : node("Transpose", {heads[2]}, perm({0, 2, 1, 3}));
  Tensor m = Tensor::zeros(DType::f32, {XT, XT});
  for (int64_t i = 0; i < XT; ++i)
    for (int64_t j = i + 1; j < XT; ++j) m.data<float>()[i * XT + j] = -INFINITY;
  Value* s = node("Mul", {node("MatMul", {q, kt}), c("scale", Tensor::from<float>(DType::f32, {}, {1.0f / std::sqrt(float(XD))}))});
  Attributes ax;
  ax.set("axis", int64_t(-1));
  Value* att = node("MatMul", {node("Softmax", {node("Add", {s, c("causal", m)})}, ax), v});
  Value* merged = node("Transpose", {att}, perm({0, 2, 1, 3}));
  g.outputs = {node("Reshape", {merged, c("merge", Tensor::vector_i64({1, XT, XH * XD}))})};
  if (o.expose_attention) g.outputs.push_back(att);
  if (o.q_read_twice) g.outputs.push_back(q);
  infer_shapes(g);
}

std::map<std::string, Tensor> exported_inputs(std::mt19937& rng) {
  return {{"xq", random({1, XT, XH * XD}, rng)}, {"xk", random({1, XT, XH * XD}, rng)}, {"xv", random({1, XT, XH * XD}, rng)}};
}

}  // namespace

TEST(AttentionLayout, PassAbsorbsTheExportedHeadTransposes) {
  std::mt19937 rng(5);
  for (bool one_transpose : {false, true}) {
    Exported o{.k_one_transpose = one_transpose};
    Graph unfused, fused, g;
    build_exported(unfused, o);
    build_exported(fused, o);
    build_exported(g, o);
    fuse_attention(fused);
    fuse_attention(g);
    ASSERT_EQ(count(g, "Attention"), 1);
    EXPECT_EQ(count(g, "Transpose"), 4);
    attention_layout(g);
    EXPECT_EQ(count(g, "Transpose"), 0);
    const Node* a = find(g, "Attention");
    EXPECT_EQ(a->attrs.get_ints("layout"), (std::vector<int64_t>{1, 1, 1, 1}));
    EXPECT_EQ(a->outputs[0]->shape, (Shape{1, XT, XH, XD}));
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a->inputs[i]->producer->op, "Reshape");
    auto in = exported_inputs(rng);
    Tensor want = cpu::Executor(fused).run(in).begin()->second;
    expect_bitwise_equal(cpu::Executor(g).run(in).begin()->second, want, "fused, with and without the Transposes");
    EXPECT_LT(rel_l2(want, cpu::Executor(unfused).run(in).begin()->second), 1e-5);
  }
}

TEST(AttentionLayout, PassLeavesOtherTransposesAlone) {
  std::mt19937 rng(6);
  auto check = [&](const Exported& o, std::vector<int64_t> layout, int transposes) {
    Graph ref, g;
    build_exported(ref, o);
    build_exported(g, o);
    fuse_attention(ref);
    fuse_attention(g);
    attention_layout(g);
    const Node* a = find(g, "Attention");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->attrs.get_ints("layout"), layout);
    EXPECT_EQ(count(g, "Transpose"), transposes);
    auto in = exported_inputs(rng);
    auto want = cpu::Executor(ref).run(in), got = cpu::Executor(g).run(in);
    ASSERT_EQ(got.size(), want.size());
    for (auto& [name, t] : want) expect_bitwise_equal(got.at(name), t, name);
  };
  check({.expose_attention = true}, {1, 1, 1, 0}, 1);  // the output is a graph output: its Transpose stays
  check({.q_read_twice = true}, {0, 1, 1, 1}, 1);      // Q's Transpose has another reader
  check({.other_perm = true}, {1, 1, 0, 1}, 1);        // V's Transpose swaps other dims
}

TEST(AttentionLayout, PassLeavesATransposeReadAsTwoInputsAlone) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {1, 3, 2, 8});
  g.inputs = {x};
  Value* t = swap12(g, x);
  Value* out = g.add_value("o", DType::f32, {});
  g.add_node("Attention", "attn", {t, t, t}, {out}, attention_attrs(1.0f, false));
  g.outputs = {out};
  infer_shapes(g);
  attention_layout(g);
  EXPECT_EQ(count(g, "Transpose"), 1);
  EXPECT_FALSE(find(g, "Attention")->attrs.has("layout"));
}

// Llama: Q and K are Rope(Transpose(x [B, T, H, D]), cos [T, D], sin [T, D]) before
// Attention. attention_layout runs the Ropes on x itself (tables viewed as
// [T, 1, D]) and reads them in layout 1: no Transpose left, same result.
TEST(AttentionLayout, PassLooksThroughRopeOnQAndK) {
  std::mt19937 rng(8);
  auto build = [](Graph& g) {
    auto perm = [] {
      Attributes a;
      a.set("perm", std::vector<int64_t>{0, 2, 1, 3});
      return a;
    };
    Value* cs = g.add_value("cos", DType::f32, {XT, XD});
    Value* sn = g.add_value("sin", DType::f32, {XT, XD});
    std::vector<Value*> heads;
    for (const char* name : {"xq", "xk", "xv"}) {
      Value* x = g.add_value(name, DType::f32, {1, XT, XH, XD});
      g.inputs.push_back(x);
      Value* t = g.add_value(std::string(name) + ".t", DType::f32, {});
      g.add_node("Transpose", t->name, {x}, {t}, perm());
      heads.push_back(t);
    }
    g.inputs.push_back(cs);
    g.inputs.push_back(sn);
    for (int i = 0; i < 2; ++i) {
      Value* r = g.add_value(heads[size_t(i)]->name + ".rope", DType::f32, {});
      g.add_node("Rope", r->name, {heads[size_t(i)], cs, sn}, {r});
      heads[size_t(i)] = r;
    }
    Value* att = g.add_value("att", DType::f32, {});
    g.add_node("Attention", "attn", {heads[0], heads[1], heads[2]}, {att}, attention_attrs(0.35f, true));
    Value* out = g.add_value("out", DType::f32, {});
    g.add_node("Transpose", "merge", {att}, {out}, perm());
    g.outputs = {out};
    infer_shapes(g);
  };
  Graph plain, g;
  build(plain);
  build(g);
  attention_layout(g);
  infer_shapes(g);
  EXPECT_EQ(count(g, "Transpose"), 0);
  EXPECT_EQ(count(g, "Rope"), 2);
  const Node* a = find(g, "Attention");
  EXPECT_EQ(a->attrs.get_ints("layout"), (std::vector<int64_t>{1, 1, 1, 1}));
  EXPECT_EQ(a->inputs[0]->shape, (Shape{1, XT, XH, XD}));
  std::map<std::string, Tensor> in = {{"xq", random({1, XT, XH, XD}, rng)}, {"xk", random({1, XT, XH, XD}, rng)},
                                      {"xv", random({1, XT, XH, XD}, rng)}, {"cos", random({XT, XD}, rng)},
                                      {"sin", random({XT, XD}, rng)}};
  expect_bitwise_equal(cpu::Executor(g).run(in).begin()->second, cpu::Executor(plain).run(in).begin()->second,
                       "Rope on [B, T, H, D] with [T, 1, D] tables");
}
