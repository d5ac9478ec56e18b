// fuse_gemm_epilogue and the FusedMatMul CPU kernel: what the pass fuses (and
// refuses to fuse), and that the fused graph computes what the unfused one did.
#include <gtest/gtest.h>

#include <random>

#include "backend/cpu/kernel_registry.h"
#include "ir/op_registry.h"
#include "ir/verifier.h"
#include "passes/fuse_gemm_epilogue.h"
#include "passes/pass_manager.h"

namespace tessera {
namespace {

Tensor random_f32(const Shape& s, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(size_t(numel(s)));
  for (float& x : v) x = d(rng);
  return Tensor::from<float>(DType::f32, s, v);
}

// Evaluate every node of `g` in order on the CPU kernels; returns the graph outputs.
std::vector<Tensor> run_graph(const Graph& g, const std::map<std::string, Tensor>& feeds) {
  std::map<const Value*, Tensor> vals;
  for (Value* in : g.inputs) vals[in] = feeds.at(in->name);
  for (auto& v : g.values())
    if (v->is_constant()) vals[v.get()] = *v->constant;
  for (auto& n : g.nodes()) {
    std::vector<const Tensor*> ins;
    for (Value* v : n->inputs) ins.push_back(v ? &vals.at(v) : nullptr);
    std::vector<Tensor> outs = cpu::run_node(*n, ins);
    for (size_t i = 0; i < n->outputs.size(); ++i) vals[n->outputs[i]] = outs[i];
  }
  std::vector<Tensor> out;
  for (Value* v : g.outputs) out.push_back(vals.at(v));
  return out;
}

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

// torch.onnx's erf GELU: Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5.
TEST(FuseGemmEpilogue, FusesErfGeluChain) {
  std::mt19937 rng(5);
  Graph g;
  Value* x = g.add_value("x", DType::f32, {3, 8});
  g.inputs.push_back(x);
  Value* w = g.add_constant("w", random_f32({8, 4}, rng));
  auto scalar = [&](const char* name, float v) { return g.add_constant(name, Tensor::from<float>(DType::f32, {}, {v})); };
  auto val = [&](const char* name) { return g.add_value(name, DType::f32, {}); };
  Value *y = val("y"), *d = val("d"), *e = val("e"), *p = val("p"), *q = val("q"), *out = val("out");
  g.add_node("MatMul", "mm", {x, w}, {y});
  g.add_node("Div", "div", {y, scalar("sqrt2", 1.4142135f)}, {d});
  g.add_node("Erf", "erf", {d}, {e});
  g.add_node("Add", "add1", {e, scalar("one", 1.0f)}, {p});
  g.add_node("Mul", "mulx", {y, p}, {q});
  g.add_node("Mul", "half", {q, scalar("half", 0.5f)}, {out});
  g.outputs.push_back(out);
  infer_shapes(g);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({3, 8}, rng)}};
  Tensor want = run_graph(g, feeds)[0];
  fuse_gemm_epilogue(g);
  verify(g, "fuse_gemm_epilogue");
  ASSERT_EQ(g.nodes().size(), 1u);
  EXPECT_EQ(g.nodes()[0]->attrs.get_string("activation", "?"), "gelu");
  EXPECT_LE(rel_l2(run_graph(g, feeds)[0], want), 1e-6);
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
