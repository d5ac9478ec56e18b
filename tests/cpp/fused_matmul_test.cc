// fuse_gemm_epilogue and the FusedMatMul CPU kernel: what the pass fuses (and
// refuses to fuse), and that the fused graph computes what the unfused one did.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "backend/cpu/kernel_registry.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"
#include "passes/fuse_gemm_epilogue.h"
#include "passes/pass_manager.h"
#include "graph_test_util.h"

namespace tessera {
namespace {

using test::random_f32;
using test::run_graph;

// x[a_shape] @ W[k, n] + bias[n] → Relu, with shapes inferred; `extra_reader`
// adds a second reader (Neg) of the MatMul's output, as a second graph output.
struct Mlp {
  Graph g;
  Tensor w, bias;
  Mlp(const Shape& a_shape, int64_t n, std::mt19937& rng, bool extra_reader = false) {
    int64_t k = a_shape.back();
    w = random_f32({k, n}, rng);
    bias = random_f32({n}, rng);
    Value* x = g.add_value("x", DType::f32, a_shape);
    g.inputs.push_back(x);
    Value* wv = g.add_constant("fc.weight", w);
    Value* bv = g.add_constant("fc.bias", bias);
    Value* y = g.add_value("y", DType::f32, {});
    Value* z = g.add_value("z", DType::f32, {});
    Value* r = g.add_value("r", DType::f32, {});
    g.add_node("MatMul", "/fc/MatMul", {x, wv}, {y});
    g.add_node("Add", "/fc/Add", {y, bv}, {z});
    g.add_node("Relu", "/act/Relu", {z}, {r});
    g.outputs.push_back(r);
    if (extra_reader) {
      Value* e = g.add_value("e", DType::f32, {});
      g.add_node("Neg", "/other/Neg", {y}, {e});
      g.outputs.push_back(e);
    }
    infer_shapes(g);
  }
  size_t count(const std::string& op) const {
    size_t c = 0;
    for (auto& n : g.nodes()) c += n->op == op;
    return c;
  }
};

double rel_l2(const Tensor& a, const Tensor& b) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - double(b.data<float>()[i]);
    num += d * d;
    den += double(b.data<float>()[i]) * double(b.data<float>()[i]);
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// `fused` computes what `plain` does on `feeds` (first output, rel. L2 <= 1e-6).
void expect_same_result(const Graph& fused, const Graph& plain, const std::map<std::string, Tensor>& feeds) {
  Tensor want = run_graph(plain, feeds)[0], got = run_graph(fused, feeds)[0];
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LE(rel_l2(got, want), 1e-6);
}

TEST(FuseGemmEpilogue, FusesMatMulAddRelu) {
  std::mt19937 rng(1);
  Mlp m({4, 8}, 6, rng);
  fuse_gemm_epilogue(m.g);
  verify(m.g, "fuse_gemm_epilogue");
  ASSERT_EQ(m.g.nodes().size(), 1u);
  const Node& n = *m.g.nodes()[0];
  EXPECT_EQ(n.op, "FusedMatMul");
  EXPECT_EQ(n.name, "/fc/MatMul");
  EXPECT_EQ(n.attrs.get_string("activation", "?"), "relu");
  ASSERT_EQ(n.inputs.size(), 3u);
  EXPECT_EQ(n.inputs[2]->name, "fc.bias");
  EXPECT_EQ(n.outputs[0], m.g.outputs[0]);
}

TEST(FuseGemmEpilogue, LeavesMatMulWithAnotherReader) {
  std::mt19937 rng(2);
  Mlp m({4, 8}, 6, rng, /*extra_reader=*/true);
  fuse_gemm_epilogue(m.g);
  verify(m.g, "fuse_gemm_epilogue");
  EXPECT_EQ(m.count("FusedMatMul"), 0u);
  EXPECT_EQ(m.count("MatMul"), 1u);
  EXPECT_EQ(m.count("Add"), 1u);
  EXPECT_EQ(m.count("Relu"), 1u);
}

TEST(FuseGemmEpilogue, LeavesMatMulWhoseOutputIsAGraphOutput) {
  std::mt19937 rng(3);
  Mlp m({4, 8}, 6, rng);
  m.g.outputs.push_back(m.g.find_value("y"));
  fuse_gemm_epilogue(m.g);
  EXPECT_EQ(m.count("FusedMatMul"), 0u);
}

TEST(FuseGemmEpilogue, FusedResultEqualsUnfused) {
  for (const Shape& a_shape : {Shape{5, 16}, Shape{2, 3, 16}, Shape{16}}) {
    std::mt19937 rng(4);
    Mlp unfused(a_shape, 12, rng);
    std::mt19937 rng2(4);
    Mlp fused(a_shape, 12, rng2);
    fuse_gemm_epilogue(fused.g);
    verify(fused.g, "fuse_gemm_epilogue");
    ASSERT_EQ(fused.count("FusedMatMul"), 1u) << to_string(a_shape);
    std::map<std::string, Tensor> feeds = {{"x", random_f32(a_shape, rng)}};
    Tensor want = run_graph(unfused.g, feeds)[0], got = run_graph(fused.g, feeds)[0];
    ASSERT_EQ(got.shape(), want.shape()) << to_string(a_shape);
    EXPECT_LE(rel_l2(got, want), 1e-6) << to_string(a_shape);
    EXPECT_EQ(fused.g.outputs[0]->shape, unfused.g.outputs[0]->shape);
  }
}

// x [3, 8] → MatMul(W [8, 4]) → the activation chain `chain` builds on its
// output: fuse_gemm_epilogue makes it one FusedMatMul with activation `act`
// and the same result.
using Scalar = std::function<Value*(const char*, float)>;
using Val = std::function<Value*(const char*)>;
void expect_chain_fuses(uint32_t seed, const std::string& act,
                        const std::function<Value*(Graph&, Value*, const Scalar&, const Val&)>& chain) {
  std::mt19937 rng(seed);
  Graph g;
  Value* x = g.add_value("x", DType::f32, {3, 8});
  g.inputs.push_back(x);
  Value* w = g.add_constant("w", random_f32({8, 4}, rng));
  Scalar scalar = [&](const char* name, float v) { return g.add_constant(name, Tensor::from<float>(DType::f32, {}, {v})); };
  Val val = [&](const char* name) { return g.add_value(name, DType::f32, {}); };
  Value* y = val("y");
  g.add_node("MatMul", "mm", {x, w}, {y});
  g.outputs.push_back(chain(g, y, scalar, val));
  infer_shapes(g);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({3, 8}, rng)}};
  Tensor want = run_graph(g, feeds)[0];
  fuse_gemm_epilogue(g);
  verify(g, "fuse_gemm_epilogue");
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.nodes()[0]->attrs.get_string("activation", "?"), act);
  EXPECT_LE(rel_l2(run_graph(g, feeds)[0], want), 1e-6);
}

// torch.onnx's erf GELU: Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5.
TEST(FuseGemmEpilogue, FusesErfGeluChain) {
  expect_chain_fuses(5, "gelu", [](Graph& g, Value* y, const Scalar& scalar, const Val& val) {
    Value *d = val("d"), *e = val("e"), *p = val("p"), *q = val("q"), *out = val("out");
    g.add_node("Div", "div", {y, scalar("sqrt2", 1.4142135f)}, {d});
    g.add_node("Erf", "erf", {d}, {e});
    g.add_node("Add", "add1", {e, scalar("one", 1.0f)}, {p});
    g.add_node("Mul", "mulx", {y, p}, {q});
    g.add_node("Mul", "half", {q, scalar("half", 0.5f)}, {out});
    return out;
  });
}

// GPT-2's tanh GELU as exporters write it, after a MatMul:
// Mul(y, 0.5) · (1 + Tanh(0.79788 · (y + 0.044715 · y^3))).
TEST(FuseGemmEpilogue, FusesTanhGeluChain) {
  expect_chain_fuses(15, "gelu_tanh", [](Graph& g, Value* y, const Scalar& scalar, const Val& val) {
    Value *h = val("h"), *p3 = val("p3"), *c = val("c"), *s = val("s"), *sc = val("sc"), *t = val("t"), *t1 = val("t1"),
          *out = val("out");
    g.add_node("Mul", "half", {y, scalar("half", 0.5f)}, {h});
    g.add_node("Pow", "pow", {y, scalar("three", 3.0f)}, {p3});
    g.add_node("Mul", "cube", {p3, scalar("k", 0.044715f)}, {c});
    g.add_node("Add", "sum", {y, c}, {s});
    g.add_node("Mul", "scale", {s, scalar("sqrt2pi", 0.7978845608f)}, {sc});
    g.add_node("Tanh", "tanh", {sc}, {t});
    g.add_node("Add", "plus1", {t, scalar("one", 1.0f)}, {t1});
    g.add_node("Mul", "last", {h, t1}, {out});
    return out;
  });
}

// dynamo's linear on 3-D input: Reshape(X -> [M, K]) → Gemm(transB = 1) →
// Reshape(-> [L..., N]) → [Relu] → Add(residual). X is [2, 3, 8] (read as
// is) or [2, 3, 2, 4] (attention's heads: the first Reshape stays, made to
// give [2, 3, 8]).
struct FlatLinear {
  Graph g;
  FlatLinear(const Shape& x_shape, bool relu, std::mt19937& rng) {
    Value* x = g.add_value("x", DType::f32, x_shape);
    Value* res = g.add_value("res", DType::f32, {2, 3, 16});
    g.inputs = {x, res};
    auto val = [&](const char* name) { return g.add_value(name, DType::f32, {}); };
    Value *a = val("a"), *y = val("y"), *z = val("z"), *out = val("out");
    g.add_node("Reshape", "flat", {x, g.add_constant("flat.shape", Tensor::vector_i64({6, 8}))}, {a});
    Node* gm = g.add_node("Gemm", "fc", {a, g.add_constant("fc.weight", random_f32({16, 8}, rng)),
                                          g.add_constant("fc.bias", random_f32({16}, rng))}, {y});
    gm->attrs.set("transB", int64_t(1));
    g.add_node("Reshape", "unflat", {y, g.add_constant("unflat.shape", Tensor::vector_i64({2, 3, 16}))}, {z});
    if (relu) {
      Value* r = val("r");
      g.add_node("Relu", "act", {z}, {r});
      z = r;
    }
    g.add_node("Add", "residual", {z, res}, {out});
    g.outputs = {out};
    infer_shapes(g);
  }
  size_t count(const std::string& op) const {
    size_t c = 0;
    for (auto& n : g.nodes()) c += n->op == op;
    return c;
  }
};

TEST(FuseGemmEpilogue, GemmBetweenReshapesReadsTheLeadingDimsAndTakesTheResidual) {
  for (const Shape& x_shape : {Shape{2, 3, 8}, Shape{2, 3, 2, 4}})
    for (bool relu : {false, true}) {
      std::mt19937 rng(21), rng2(21);
      FlatLinear plain(x_shape, relu, rng), fused(x_shape, relu, rng2);
      fuse_gemm_epilogue(fused.g);
      fuse_gemm_residual(fused.g);
      verify(fused.g, "fuse_gemm_residual");
      infer_shapes(fused.g);
      SCOPED_TRACE(to_string(x_shape) + (relu ? " relu" : ""));
      EXPECT_EQ(fused.count("FusedMatMul"), 1u);
      EXPECT_EQ(fused.count("Gemm") + fused.count("Relu"), 0u);
      EXPECT_EQ(fused.count("Reshape"), x_shape.size() == 3 ? 0u : 1u);
      EXPECT_EQ(fused.count("Add"), relu ? 1u : 0u);  // a residual joins only without an activation
      std::map<std::string, Tensor> feeds = {{"x", random_f32(x_shape, rng)}, {"res", random_f32({2, 3, 16}, rng)}};
      expect_same_result(fused.g, plain.g, feeds);
    }
}

TEST(FuseGemmEpilogue, LeavesReshapesThatSplitN) {
  std::mt19937 rng(22);
  Graph g;
  Value* x = g.add_value("x", DType::f32, {2, 3, 8});
  g.inputs = {x};
  Value* a = g.add_value("a", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  Value* z = g.add_value("z", DType::f32, {});
  g.add_node("Reshape", "flat", {x, g.add_constant("flat.shape", Tensor::vector_i64({6, 8}))}, {a});
  g.add_node("Gemm", "fc", {a, g.add_constant("fc.weight", random_f32({8, 16}, rng))}, {y});
  // [6, 16] -> [6, 4, 4] splits N: the GEMM cannot write that
  g.add_node("Reshape", "other", {y, g.add_constant("other.shape", Tensor::vector_i64({6, 4, 4}))}, {z});
  g.outputs = {z};
  infer_shapes(g);
  fuse_gemm_epilogue(g);
  EXPECT_EQ(g.nodes().size(), 3u);
  EXPECT_EQ(g.nodes()[1]->op, "Gemm");
}

// The dynamo exporter's linear layer: Gemm(x, W[N, K], C, transB = 1) → act.
struct GemmLayer {
  Graph g;
  GemmLayer(int64_t m, int64_t k, int64_t n, std::mt19937& rng, const Shape& c_shape, const std::string& act,
            float alpha = 1.0f, int64_t trans_b = 1) {
    Value* x = g.add_value("x", DType::f32, {m, k});
    g.inputs.push_back(x);
    Value* w = g.add_constant("fc.weight", random_f32(trans_b ? Shape{n, k} : Shape{k, n}, rng));
    std::vector<Value*> ins = {x, w};
    if (!c_shape.empty()) ins.push_back(g.add_constant("fc.bias", random_f32(c_shape, rng)));
    Value* y = g.add_value("y", DType::f32, {});
    Node* gm = g.add_node("Gemm", "/fc/Gemm", ins, {y});
    gm->attrs.set("transB", trans_b);
    gm->attrs.set("alpha", alpha);
    gm->attrs.set("beta", 1.0f);
    Value* out = y;
    if (!act.empty()) {
      out = g.add_value("r", DType::f32, {});
      Node* a = g.add_node(act, "/act", {y}, {out});
      if (act == "Gelu") a->attrs.set("approximate", std::string("tanh"));
    }
    g.outputs.push_back(out);
    infer_shapes(g);
  }
};

TEST(FuseGemmEpilogue, FusesGemmTransBBiasRelu) {
  for (int64_t trans_b : {1, 0}) {
    std::mt19937 rng(6);
    GemmLayer ref(5, 16, 12, rng, {12}, "Relu", 1.0f, trans_b);
    std::mt19937 rng2(6);
    GemmLayer fused(5, 16, 12, rng2, {12}, "Relu", 1.0f, trans_b);
    fuse_gemm_epilogue(fused.g);
    verify(fused.g, "fuse_gemm_epilogue");
    ASSERT_EQ(fused.g.nodes().size(), 1u);
    const Node& n = *fused.g.nodes()[0];
    EXPECT_EQ(n.op, "FusedMatMul");
    EXPECT_EQ(n.name, "/fc/Gemm");
    EXPECT_EQ(n.attrs.get_string("activation", "?"), "relu");
    EXPECT_EQ(n.attrs.get_int("trans_b", 0), trans_b);
    ASSERT_EQ(n.inputs.size(), 3u);
    EXPECT_EQ(n.inputs[2]->name, "fc.bias");
    std::map<std::string, Tensor> feeds = {{"x", random_f32({5, 16}, rng)}};
    Tensor want = run_graph(ref.g, feeds)[0], got = run_graph(fused.g, feeds)[0];
    ASSERT_EQ(got.shape(), (Shape{5, 12}));
    EXPECT_LE(rel_l2(got, want), 1e-6) << "trans_b " << trans_b;
  }
}

TEST(FuseGemmEpilogue, FusesGemmRowBiasAndNoBias) {
  for (const Shape& c : {Shape{1, 12}, Shape{}}) {
    std::mt19937 rng(7);
    GemmLayer ref(3, 8, 12, rng, c, "Gelu");
    std::mt19937 rng2(7);
    GemmLayer fused(3, 8, 12, rng2, c, "Gelu");
    fuse_gemm_epilogue(fused.g);
    verify(fused.g, "fuse_gemm_epilogue");
    ASSERT_EQ(fused.g.nodes().size(), 1u) << to_string(c);
    const Node& n = *fused.g.nodes()[0];
    EXPECT_EQ(n.op, "FusedMatMul");
    EXPECT_EQ(n.attrs.get_string("activation", "?"), "gelu_tanh");
    EXPECT_EQ(n.inputs.size(), c.empty() ? 2u : 3u);
    if (!c.empty()) EXPECT_EQ(n.inputs[2]->shape, (Shape{12}));
    std::map<std::string, Tensor> feeds = {{"x", random_f32({3, 8}, rng)}};
    EXPECT_LE(rel_l2(run_graph(fused.g, feeds)[0], run_graph(ref.g, feeds)[0]), 1e-6) << to_string(c);
  }
}

TEST(FuseGemmEpilogue, LeavesGemmItCannotExpress) {
  std::mt19937 rng(8);
  GemmLayer no_act(3, 8, 12, rng, {12}, "");        // the Gemm's own epilogue already has the bias
  GemmLayer alpha(3, 8, 12, rng, {12}, "Relu", 2.0f);
  GemmLayer full_c(3, 8, 12, rng, {3, 12}, "Relu");  // a full C matrix is no bias
  for (GemmLayer* l : {&no_act, &alpha, &full_c}) {
    fuse_gemm_epilogue(l->g);
    verify(l->g, "fuse_gemm_epilogue");
    size_t gemms = 0;
    for (auto& n : l->g.nodes()) gemms += n->op == "Gemm";
    EXPECT_EQ(gemms, 1u);
  }
}

// The ToyModel's shape: Gemm → Relu, three times.
TEST(FuseGemmEpilogue, FusesGemmReluChain) {
  std::mt19937 rng(9);
  Graph g;
  Value* cur = g.add_value("x", DType::f32, {4, 10});
  g.inputs.push_back(cur);
  for (int i = 0; i < 3; ++i) {
    std::string p = "net" + std::to_string(i);
    Value* w = g.add_constant(p + ".weight", random_f32({10, 10}, rng));
    Value* b = g.add_constant(p + ".bias", random_f32({10}, rng));
    Value* y = g.add_value(p + ".y", DType::f32, {});
    Value* r = g.add_value(p + ".r", DType::f32, {});
    g.add_node("Gemm", "/" + p + "/Gemm", {cur, w, b}, {y})->attrs.set("transB", int64_t(1));
    g.add_node("Relu", "/" + p + "/Relu", {y}, {r});
    cur = r;
  }
  g.outputs.push_back(cur);
  infer_shapes(g);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({4, 10}, rng)}};
  Tensor want = run_graph(g, feeds)[0];
  fuse_gemm_epilogue(g);
  verify(g, "fuse_gemm_epilogue");
  ASSERT_EQ(g.nodes().size(), 3u);
  for (auto& n : g.nodes()) {
    EXPECT_EQ(n->op, "FusedMatMul");
    EXPECT_EQ(n->attrs.get_string("activation", "?"), "relu");
  }
  EXPECT_LE(rel_l2(run_graph(g, feeds)[0], want), 1e-6);
}

TEST(FusedMatMul, InferenceWithTransB) {
  Graph g;
  Value* a = g.add_value("a", DType::f32, {2, 3, 5});
  Value* b = g.add_value("b", DType::f32, {4, 5});
  Value* bias = g.add_value("bias", DType::f32, {4});
  Value* y = g.add_value("y", DType::f32, {});
  Node* n = g.add_node("FusedMatMul", "f", {a, b, bias}, {y});
  n->attrs.set("trans_b", int64_t(1));
  EXPECT_EQ(infer_node(*n)[0].shape, (Shape{2, 3, 4}));
  b->shape = {5, 4};  // K mismatch once transposed
  EXPECT_THROW(infer_node(*n), Error);
  b->shape = {2, 4, 5};  // trans_b takes one matrix
  EXPECT_THROW(infer_node(*n), Error);
}

TEST(FusedMatMul, InferenceChecksBias) {
  Graph g;
  Value* a = g.add_value("a", DType::f32, {2, 3});
  Value* b = g.add_value("b", DType::f32, {3, 4});
  Value* bias = g.add_value("bias", DType::f32, {5});
  Value* y = g.add_value("y", DType::f32, {});
  Node* n = g.add_node("FusedMatMul", "f", {a, b, bias}, {y});
  EXPECT_THROW(infer_node(*n), Error);
  bias->shape = {4};
  EXPECT_EQ(infer_node(*n)[0].shape, (Shape{2, 4}));
  n->attrs.set("activation", std::string("swish"));
  EXPECT_THROW(infer_node(*n), Error);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

using test::random_f32;
using test::run_graph;

// GPT-2's tied LM head: MatMul(x, Transpose(W[N, K])) with W also read elsewhere.
TEST(FuseGemmEpilogue, ReadsATransposedConstantWeightInPlace) {
  std::mt19937 rng(11);
  Graph g;
  Tensor w = random_f32({6, 8}, rng);  // [N, K]
  Value* x = g.add_value("x", DType::f32, {3, 8});
  g.inputs.push_back(x);
  Value* wv = g.add_constant("wte", w);
  Value* wt = g.add_value("wt", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  Value* other = g.add_value("other", DType::f32, {});
  Attributes perm;
  perm.set("perm", std::vector<int64_t>{1, 0});
  g.add_node("Transpose", "/lm_head/Transpose", {wv}, {wt}, perm);
  g.add_node("MatMul", "/lm_head/MatMul", {x, wt}, {y});
  g.add_node("Neg", "/embedding/Neg", {wv}, {other});  // the tied weight's other reader stays
  g.outputs = {y, other};
  infer_shapes(g);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({3, 8}, rng)}};
  Tensor want = run_graph(g, feeds)[0];
  fuse_gemm_epilogue(g);
  verify(g, "fuse_gemm_epilogue");
  const Node* mm = nullptr;
  for (auto& n : g.nodes()) {
    EXPECT_NE(n->op, "Transpose");
    if (n->op == "FusedMatMul") mm = n.get();
  }
  ASSERT_NE(mm, nullptr);
  EXPECT_EQ(mm->attrs.get_int("trans_b", 0), 1);
  EXPECT_EQ(mm->inputs[1], wv);
  Tensor got = run_graph(g, feeds)[0];
  ASSERT_EQ(got.shape(), want.shape());
  EXPECT_LE(rel_l2(got, want), 1e-6);
}

}  // namespace
}  // namespace tessera

namespace tessera {
namespace {

using test::random_f32;
using test::run_graph;

// h[B?, 8] → MatMul(h, W[8, 16]) + bias → Add(·, res), res[.., 16] an input
// (a transformer's residual stream); `res_after`: res made by a node placed
// after the MatMul (so it cannot join it).
struct Residual {
  Graph g;
  explicit Residual(const Shape& x_shape, std::mt19937& rng, bool res_after = false, bool relu = false) {
    Shape r_shape = x_shape;
    r_shape.back() = 16;
    Value* x = g.add_value("x", DType::f32, x_shape);
    Value* res_in = g.add_value("res", DType::f32, r_shape);
    g.inputs = {x, res_in};
    for (Value* v : g.inputs) v->dim_names.assign(v->shape.size(), "");
    if (x_shape[0] < 0) x->dim_names[0] = res_in->dim_names[0] = "batch";
    Value* w = g.add_constant("fc.weight", random_f32({x_shape.back(), 16}, rng));
    Value* b = g.add_constant("fc.bias", random_f32({16}, rng));
    Value* y = g.add_value("y", DType::f32, {});
    Value* z = g.add_value("z", DType::f32, {});
    g.add_node("MatMul", "fc", {x, w}, {y});
    g.add_node("Add", "fc.bias_add", {y, b}, {z});
    if (relu) {
      Value* a = g.add_value("a", DType::f32, {});
      g.add_node("Relu", "act", {z}, {a});
      z = a;
    }
    Value* res = res_in;
    if (res_after) {
      res = g.add_value("res2", DType::f32, {});
      g.add_node("Neg", "neg", {res_in}, {res});
    }
    Value* out = g.add_value("out", DType::f32, {});
    g.add_node("Add", "residual", {res, z}, {out});
    g.outputs = {out};
    infer_shapes(g);
  }
  const Node* fused() const {
    for (auto& n : g.nodes())
      if (n->op == "FusedMatMul") return n.get();
    return nullptr;
  }
};

TEST(FuseGemmResidual, ResidualJoinsTheGemmAndGivesTheSameResult) {
  for (const Shape& x_shape : {Shape{5, 8}, Shape{2, 3, 8}}) {
    std::mt19937 rng(7), rng2(7);
    Residual plain(x_shape, rng), fused(x_shape, rng2);
    fuse_gemm_epilogue(fused.g);
    fuse_gemm_residual(fused.g);
    verify(fused.g, "fuse_gemm_residual");
    ASSERT_EQ(fused.g.nodes().size(), 1u) << to_string(x_shape);
    const Node* n = fused.fused();
    ASSERT_TRUE(n);
    ASSERT_EQ(n->inputs.size(), 4u);
    EXPECT_EQ(n->inputs[3]->name, "res");
    EXPECT_EQ(n->outputs[0], fused.g.outputs[0]);
    Shape r_shape = x_shape;
    r_shape.back() = 16;
    std::map<std::string, Tensor> feeds = {{"x", random_f32(x_shape, rng)}, {"res", random_f32(r_shape, rng)}};
    expect_same_result(fused.g, plain.g, feeds);
  }
}

// A MatMul with no bias (Llama's o_proj / down_proj) takes the residual too.
TEST(FuseGemmResidual, PlainMatMulTakesTheResidual) {
  std::mt19937 rng(23);
  Graph g;
  Value* x = g.add_value("x", DType::f32, {1, 4, 8});
  Value* res = g.add_value("res", DType::f32, {1, 4, 16});
  g.inputs = {x, res};
  Value* y = g.add_value("y", DType::f32, {});
  Value* out = g.add_value("out", DType::f32, {});
  g.add_node("MatMul", "o_proj", {x, g.add_constant("w", random_f32({8, 16}, rng))}, {y});
  g.add_node("Add", "residual", {res, y}, {out});
  g.outputs = {out};
  infer_shapes(g);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({1, 4, 8}, rng)}, {"res", random_f32({1, 4, 16}, rng)}};
  Tensor want = run_graph(g, feeds)[0];
  fuse_gemm_epilogue(g);
  fuse_gemm_residual(g);
  verify(g, "fuse_gemm_residual");
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.nodes()[0]->op, "FusedMatMul");
  ASSERT_EQ(g.nodes()[0]->inputs.size(), 4u);
  EXPECT_EQ(g.nodes()[0]->inputs[3], res);
  EXPECT_LE(rel_l2(run_graph(g, feeds)[0], want), 1e-6);
}

TEST(FuseGemmResidual, LeavesAddItCannotExpress) {
  std::mt19937 rng(9);
  Residual after({4, 8}, rng, true);  // the residual is made after the GEMM
  fuse_gemm_epilogue(after.g);
  fuse_gemm_residual(after.g);
  ASSERT_TRUE(after.fused());
  EXPECT_EQ(after.fused()->inputs.size(), 3u);
  Residual act({4, 8}, rng, false, true);  // an activation sits between
  fuse_gemm_epilogue(act.g);
  fuse_gemm_residual(act.g);
  ASSERT_TRUE(act.fused());
  EXPECT_EQ(act.fused()->inputs.size(), 3u);
  Residual unnamed({kUnknownDim, 8}, rng);  // unknown batch dims that may differ at run time
  for (Value* v : unnamed.g.inputs) v->dim_names.assign(v->shape.size(), "");
  infer_shapes(unnamed.g);
  fuse_gemm_epilogue(unnamed.g);
  fuse_gemm_residual(unnamed.g);
  ASSERT_TRUE(unnamed.fused());
  EXPECT_EQ(unnamed.fused()->inputs.size(), 3u);
}

TEST(FusedMatMul, InferenceChecksResidual) {
  Graph g;
  Value* a = g.add_value("a", DType::f32, {2, 3});
  Value* b = g.add_value("b", DType::f32, {3, 4});
  Value* r = g.add_value("r", DType::f32, {2, 5});
  Value* y = g.add_value("y", DType::f32, {});
  Node* n = g.add_node("FusedMatMul", "f", {a, b, nullptr, r}, {y});
  EXPECT_THROW(infer_node(*n), Error);  // shape
  r->shape = {2, 4};
  EXPECT_EQ(infer_node(*n)[0].shape, (Shape{2, 4}));
  r->dtype = DType::f64;
  EXPECT_THROW(infer_node(*n), Error);  // dtype
  r->dtype = DType::f32;
  n->attrs.set("activation", std::string("relu"));
  EXPECT_THROW(infer_node(*n), Error);  // residual after an activation is not this op
}

}  // namespace
}  // namespace tessera
