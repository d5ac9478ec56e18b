// Attention's packed attribute (ops/attention.cc, ops/attention_rules.h) and
// the pack_attention_qkv pass that makes it (passes/fuse_attention.cc): a fused
// QKV projection's output [B, T, (Hq + 2 Hkv)·D], split along W into Q, K, V,
// each Reshaped to [B, T, H, D], is read by Attention directly; the CPU result
// is bitwise the one through the Split; near misses keep their Split; bad
// packed attributes and shapes are refused naming the node.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "backend/cpu/executor.h"
#include "graph_test_util.h"
#include "ir/op_registry.h"
#include "passes/fuse_attention.h"
#include "passes/pass_manager.h"

using namespace tessera;

namespace {

constexpr int64_t B = 2, T = 5, D = 8;

struct Case {
  int64_t hq = 4, hkv = 4;
  bool causal = true;
  bool swap_kv = false;       // K read from the Split's third output, V from its second
  bool expose_part = false;   // the Split's K output is also a graph output
};

Tensor random(const Shape& s, std::mt19937& rng) {
  std::normal_distribution<float> n;
  Tensor t = Tensor::empty(DType::f32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(rng);
  return t;
}

int64_t width(const Case& c) { return (c.hq + 2 * c.hkv) * D; }

// x [B, T, W] -> Split(axis 2) -> Reshape [B, T, H, D] each -> Attention(layout 1, 1, 1, 1).
void build(Graph& g, const Case& c) {
  Value* x = g.add_value("qkv", DType::f32, {B, T, width(c)});
  g.inputs = {x};
  std::vector<Value*> parts;
  for (const char* name : {"q", "k", "v"}) parts.push_back(g.add_value(name, DType::f32, {}));
  Attributes ax;
  ax.set("axis", int64_t(2));
  g.add_node("Split", "split", {x, g.add_constant("sizes", Tensor::vector_i64({c.hq * D, c.hkv * D, c.hkv * D}))}, parts, ax);
  std::vector<Value*> heads;
  for (size_t i = 0; i < 3; ++i) {
    size_t from = c.swap_kv && i > 0 ? 3 - i : i;
    int64_t h = i == 0 ? c.hq : c.hkv;
    Value* r = g.add_value(parts[from]->name + ".heads", DType::f32, {});
    g.add_node("Reshape", r->name, {parts[from], g.add_constant(r->name + ".shape", Tensor::vector_i64({B, T, h, D}))}, {r});
    heads.push_back(r);
  }
  Attributes a;
  a.set("scale", 0.35f);
  a.set("causal", int64_t(c.causal));
  a.set("layout", std::vector<int64_t>{1, 1, 1, 1});
  Value* out = g.add_value("attn", DType::f32, {});
  g.add_node("Attention", "attn", heads, {out}, a);
  g.outputs = {out};
  if (c.expose_part) g.outputs.push_back(parts[1]);
  infer_shapes(g);
}

using test::count_op;
using test::find_op;

}  // namespace

TEST(AttentionPacked, PassReadsTheFusedProjectionWithoutTheSplit) {
  std::mt19937 rng(11);
  for (Case c : {Case{}, Case{.hq = 4, .hkv = 2}, Case{.hq = 6, .hkv = 1, .causal = false}}) {
    Graph ref, g;
    build(ref, c);
    build(g, c);
    pack_attention_qkv(g);
    const std::string what = "Hq " + std::to_string(c.hq) + " Hkv " + std::to_string(c.hkv);
    EXPECT_EQ(count_op(g, "Split"), 0u) << what;
    EXPECT_EQ(count_op(g, "Reshape"), 0u) << what;
    const Node* a = find_op(g, "Attention");
    ASSERT_NE(a, nullptr) << what;
    EXPECT_EQ(a->attrs.get_ints("packed"), (std::vector<int64_t>{c.hq, c.hkv})) << what;
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a->inputs[i]->name, "qkv") << what;
    EXPECT_EQ(a->outputs[0]->shape, (Shape{B, T, c.hq, D})) << what;
    std::map<std::string, Tensor> in = {{"qkv", random({B, T, width(c)}, rng)}};
    Tensor want = cpu::Executor(ref).run(in).begin()->second;
    Tensor got = cpu::Executor(g).run(in).begin()->second;
    ASSERT_EQ(got.shape(), want.shape()) << what;
    EXPECT_EQ(std::memcmp(got.raw(), want.raw(), size_t(got.numel()) * sizeof(float)), 0) << what;
  }
}

TEST(AttentionPacked, PassLeavesOtherSplitsAlone) {
  for (Case c : {Case{.swap_kv = true}, Case{.expose_part = true}}) {
    Graph g;
    build(g, c);
    pack_attention_qkv(g);
    EXPECT_EQ(count_op(g, "Split"), 1u) << (c.swap_kv ? "K and V swapped" : "a Split output also a graph output");
    EXPECT_FALSE(find_op(g, "Attention")->attrs.has("packed"));
  }
}

namespace {

// Inference's message for one Attention over `x` (given 3 times) with `packed` and `layout`.
std::string message(const Shape& x, const Attribute& packed, std::vector<int64_t> layout = {1, 1, 1, 1}) {
  Graph g;
  Value* in = g.add_value("x", DType::f32, x);
  g.inputs = {in};
  Attributes a;
  a.set("scale", 1.0f);
  a.set("layout", std::move(layout));
  a.set("packed", packed);
  Value* out = g.add_value("y", DType::f32, {});
  g.add_node("Attention", "blocks.3/attn", {in, in, in}, {out}, a);
  g.outputs = {out};
  return test::inference_message(g);
}

}  // namespace

TEST(AttentionPacked, InferenceRefusesBadPackedAttributesNamingTheNode) {
  EXPECT_EQ(message({2, 5, 48}, std::vector<int64_t>{4, 1}), "(no error) [2,5,4,8]");
  EXPECT_EQ(message({2, 5, 48}, std::vector<int64_t>{4, 1}, {1, 1, 1, 0}), "(no error) [2,4,5,8]");
  struct Bad {
    Shape x;
    Attribute packed;
    std::vector<int64_t> layout;
    const char* says;
  };
  for (const Bad& b : {Bad{{2, 5, 50}, std::vector<int64_t>{4, 1}, {1, 1, 1, 1}, "not a whole number of heads"},
                       Bad{{2, 5, 48}, std::vector<int64_t>{3, 2}, {1, 1, 1, 1}, "a multiple of the second"},
                       Bad{{2, 5, 48}, std::vector<int64_t>{4}, {1, 1, 1, 1}, "packed must be"},
                       Bad{{2, 5, 48}, int64_t(4), {1, 1, 1, 1}, "packed must be"},
                       Bad{{2, 5, 48}, std::vector<int64_t>{4, 1}, {0, 1, 1, 1}, "layout must start 1, 1, 1"},
                       Bad{{2, 5, 6, 8}, std::vector<int64_t>{4, 1}, {1, 1, 1, 1}, "must be rank 3"}}) {
    std::string m = message(b.x, b.packed, b.layout);
    EXPECT_NE(m.find("blocks.3/attn"), std::string::npos) << m;
    EXPECT_NE(m.find(b.says), std::string::npos) << m;
  }
}
