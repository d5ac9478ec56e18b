// pack_attention_qkv's Rope form (passes/fuse_attention.cc) and Rope's full
// attribute (ops/rope.cc): after rope_blocks, Llama's merged q/k/v output
// feeds two block Ropes (Q, K) and a Slice (V) into one Attention; the pass
// has the Attention read the merged output packed and take the Ropes' tables
// as its inputs 4 and 5 (RoPE in the attention prologue). The CPU results are
// bitwise those of the unfused graph, rotate-half and interleaved, with and
// without a mask; near misses stay as they are; bad attributes and tables are
// refused naming the node.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "graph_test_util.h"
#include "ir/op_registry.h"
#include "passes/fuse_attention.h"
#include "passes/fuse_rope.h"
#include "passes/pass_manager.h"

using namespace tessera;

namespace {

constexpr int64_t B = 2, T = 5, D = 8;

struct Case {
  int64_t hq = 4, hkv = 2;
  bool interleaved = false;
  bool mask = false;            // an additive mask input besides causal
  bool other_k_tables = false;  // K's Rope reads its own tables
  bool expose_q = false;        // Q's Rope output is also a graph output
};

int64_t width(const Case& c) { return (c.hq + 2 * c.hkv) * D; }

// x [B, T, W] -> Split -> q, k, v Reshaped to [B, T, H, D]; q and k rotated -> Attention(layout 1, 1, 1, 1).
void build(Graph& g, const Case& c) {
  Value* x = g.add_value("x", DType::f32, {B, T, width(c)});
  Value* cs = g.add_value("cos", DType::f32, {1, T, 1, D});
  Value* sn = g.add_value("sin", DType::f32, {1, T, 1, D});
  Value* cs_k = c.other_k_tables ? g.add_value("cos_k", DType::f32, {1, T, 1, D}) : cs;
  Value* m = c.mask ? g.add_value("mask", DType::f32, {T, T}) : nullptr;
  g.inputs = {x, cs, sn};
  if (m) g.inputs.push_back(m);
  if (c.other_k_tables) g.inputs.push_back(cs_k);
  std::vector<Value*> parts;
  for (const char* name : {"q", "k", "v"}) parts.push_back(g.add_value(name, DType::f32, {}));
  Attributes ax;
  ax.set("axis", int64_t(-1));
  g.add_node("Split", "split", {x, g.add_constant("sizes", Tensor::vector_i64({c.hq * D, c.hkv * D, c.hkv * D}))}, parts, ax);
  std::vector<Value*> qkv;
  for (size_t i = 0; i < 3; ++i) {
    const int64_t h = i == 0 ? c.hq : c.hkv;
    Value* r = g.add_value(parts[i]->name + ".heads", DType::f32, {});
    g.add_node("Reshape", r->name, {parts[i], g.add_constant(r->name + ".shape", Tensor::vector_i64({B, T, h, D}))}, {r});
    if (i == 2) {
      qkv.push_back(r);
      continue;
    }
    Value* y = g.add_value(parts[i]->name + ".rot", DType::f32, {});
    Attributes ra;
    if (c.interleaved) ra.set("interleaved", int64_t(1));
    g.add_node("Rope", y->name, {r, i == 1 ? cs_k : cs, sn}, {y}, ra);
    qkv.push_back(y);
  }
  Attributes a;
  a.set("scale", 0.35f);
  a.set("causal", int64_t(1));
  a.set("layout", std::vector<int64_t>{1, 1, 1, 1});
  Value* out = g.add_value("attn", DType::f32, {});
  if (m) qkv.push_back(m);
  g.add_node("Attention", "attn", qkv, {out}, a);
  g.outputs = {out};
  if (c.expose_q) g.outputs.push_back(qkv[0]);
  infer_shapes(g);
}

std::map<std::string, Tensor> feeds(const Graph& g, std::mt19937& rng) {
  std::map<std::string, Tensor> in;
  for (const Value* v : g.inputs) in[v->name] = test::random_f32(v->shape, rng);
  return in;
}

void expect_bitwise(const std::vector<Tensor>& got, const std::vector<Tensor>& want, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << what << " output " << i;
    EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), size_t(got[i].numel()) * sizeof(float)), 0) << what << " output " << i;
  }
}

void passes(Graph& g) {
  rope_blocks(g);
  pack_attention_qkv(g);
}

}  // namespace

TEST(RopePacked, ThePackedAttentionTakesTheTables) {
  std::mt19937 rng(5);
  for (Case c : {Case{}, Case{.hq = 4, .hkv = 4}, Case{.hq = 6, .hkv = 1}, Case{.interleaved = true},
                 Case{.mask = true}}) {
    const std::string what = "Hq " + std::to_string(c.hq) + " Hkv " + std::to_string(c.hkv) +
                             (c.interleaved ? " interleaved" : "") + (c.mask ? " mask" : "");
    Graph ref, g;
    build(ref, c);
    build(g, c);
    passes(g);
    EXPECT_EQ(test::count_op(g, "Rope") + test::count_op(g, "Slice") + test::count_op(g, "Split") +
                  test::count_op(g, "Reshape"), 0u) << what;
    const Node* a = test::find_op(g, "Attention");
    ASSERT_NE(a, nullptr) << what;
    EXPECT_EQ(a->attrs.get_ints("packed"), (std::vector<int64_t>{c.hq, c.hkv})) << what;
    EXPECT_EQ(a->attrs.get_int("rope_interleaved", 0), c.interleaved ? 1 : 0) << what;
    ASSERT_EQ(a->inputs.size(), 6u) << what;
    for (size_t i = 0; i < 3; ++i) EXPECT_EQ(a->inputs[i]->name, "x") << what;
    EXPECT_EQ(a->inputs[3] ? a->inputs[3]->name : "", c.mask ? "mask" : "") << what;
    EXPECT_EQ(a->inputs[4]->name, "cos") << what;
    EXPECT_EQ(a->inputs[5]->name, "sin") << what;
    auto in = feeds(ref, rng);
    expect_bitwise(test::run_graph(g, in), test::run_graph(ref, in), what);
  }
}

// Rope with full = 1 (one pass rotating two column blocks of a tensor and copying the rest)
// equals two block Ropes written back over a copy.
TEST(RopePacked, FullRopeRotatesItsBlockAndCopiesTheRest) {
  std::mt19937 rng(7);
  const int64_t W = 48, heads = 4;  // columns [8, 40) rotate, [0, 8) and [40, 48) are copied
  Graph g;
  Value* x = g.add_value("x", DType::f32, {B, T, W});
  Value* cs = g.add_value("cos", DType::f32, {1, T, 1, D});
  Value* sn = g.add_value("sin", DType::f32, {1, T, 1, D});
  g.inputs = {x, cs, sn};
  Value* full = g.add_value("full", DType::f32, {});
  Value* part = g.add_value("part", DType::f32, {});
  Attributes af, ab;
  af.set("block", std::vector<int64_t>{8, heads, D});
  af.set("full", int64_t(1));
  ab.set("block", std::vector<int64_t>{8, heads, D});
  g.add_node("Rope", "full", {x, cs, sn}, {full}, af);
  g.add_node("Rope", "part", {x, cs, sn}, {part}, ab);
  g.outputs = {full, part};
  infer_shapes(g);
  auto in = feeds(g, rng);
  std::vector<Tensor> out = test::run_graph(g, in);
  ASSERT_EQ(out[0].shape(), (Shape{B, T, W}));
  ASSERT_EQ(out[1].shape(), (Shape{B, T, heads, D}));
  const float *f = out[0].data<float>(), *p = out[1].data<float>(), *xi = in.at("x").data<float>();
  for (int64_t r = 0; r < B * T; ++r)
    for (int64_t col = 0; col < W; ++col) {
      const float want = col >= 8 && col < 8 + heads * D ? p[r * heads * D + col - 8] : xi[r * W + col];
      ASSERT_EQ(f[r * W + col], want) << "row " << r << " column " << col;
    }
}

TEST(RopePacked, NearMissesKeepTheirRopes) {
  std::mt19937 rng(6);
  for (Case c : {Case{.other_k_tables = true}, Case{.expose_q = true}}) {
    const std::string what = c.other_k_tables ? "K's own tables" : "Q's Rope also a graph output";
    Graph ref, g;
    build(ref, c);
    build(g, c);
    passes(g);
    EXPECT_EQ(test::count_op(g, "Rope"), 2u) << what;
    EXPECT_FALSE(test::find_op(g, "Attention")->attrs.has("packed")) << what;
    auto in = feeds(ref, rng);
    expect_bitwise(test::run_graph(g, in), test::run_graph(ref, in), what);
  }
}

namespace {

// Inference's message for Rope(x [B, T, 48], cos [1, T, 1, D]) with `attrs`.
std::string message(Attributes attrs) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {B, T, 48});
  Value* cs = g.add_value("cos", DType::f32, {1, T, 1, D});
  g.inputs = {x, cs};
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Rope", "layers.0/qk_rope", {x, cs, cs}, {y}, std::move(attrs));
  g.outputs = {y};
  return test::inference_message(g);
}

Attributes rope_attrs(std::vector<int64_t> block, int64_t full) {
  Attributes a;
  if (!block.empty()) a.set("block", std::move(block));
  a.set("full", full);
  return a;
}

}  // namespace

TEST(RopePacked, InferenceOfFullNamesTheNode) {
  EXPECT_EQ(message(rope_attrs({0, 4, D}, 1)), "(no error) [2,5,48]");
  EXPECT_EQ(message(rope_attrs({0, 4, D}, 0)), "(no error) [2,5,4,8]");
  for (auto [attrs, says] : {std::pair<Attributes, const char*>{rope_attrs({}, 1), "full = 1 needs a block"},
                             {rope_attrs({0, 4, D}, 2), "full must be 0 or 1"},
                             {rope_attrs({0, 8, 6}, 1), "do not broadcast"}}) {
    std::string m = message(attrs);
    EXPECT_NE(m.find("layers.0/qk_rope"), std::string::npos) << m;
    EXPECT_NE(m.find(says), std::string::npos) << m;
  }
}

namespace {

// Inference's message for Attention(q [B, T, 4, D], k, v [B, Tk, 2, D], layout 1) with rope
// tables of the given shapes (an empty shape: that table omitted) and dtypes.
std::string attention_message(Shape cos, Shape sin, int64_t tk = T, DType table_dtype = DType::f32, int64_t il = -1) {
  Graph g;
  Value* q = g.add_value("q", DType::f32, {B, T, 4, D});
  Value* k = g.add_value("k", DType::f32, {B, tk, 2, D});
  Value* v = g.add_value("v", DType::f32, {B, tk, 2, D});
  g.inputs = {q, k, v};
  std::vector<Value*> ins = {q, k, v, nullptr};
  for (auto [name, s] : {std::pair{"cos", cos}, std::pair{"sin", sin}}) {
    Value* t = s.empty() ? nullptr : g.add_value(name, table_dtype, s);
    if (t) g.inputs.push_back(t);
    ins.push_back(t);
  }
  Attributes a;
  a.set("scale", 0.5f);
  a.set("layout", std::vector<int64_t>{1, 1, 1, 1});
  if (il >= 0) a.set("rope_interleaved", il);
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Attention", "layers.1/attn", ins, {y}, std::move(a));
  g.outputs = {y};
  return test::inference_message(g);
}

}  // namespace

TEST(RopePacked, AttentionInferenceChecksTheTablesNamingTheNode) {
  EXPECT_EQ(attention_message({T, 1, D}, {1, T, 1, D}), "(no error) [2,5,4,8]");
  EXPECT_EQ(attention_message({B, T, 1, D}, {D}, T, DType::f32, 1), "(no error) [2,5,4,8]");
  for (auto [m, says] : {std::pair{attention_message({T, 1, D}, {}), "come in pairs"},
                         {attention_message({T, 4, D}, {T, 1, D}), "does not broadcast to [2, 5, 1, 8]"},
                         {attention_message({T, 1, D / 2}, {T, 1, D}), "does not broadcast"},
                         {attention_message({1, 1, B, T, D}, {T, 1, D}), "rank 1 to 4"},
                         {attention_message({T, 1, D}, {T, 1, D}, T + 1), "must equal key length"},
                         {attention_message({T, 1, D}, {T, 1, D}, T, DType::f16), "expected Q's dtype float32"},
                         {attention_message({T, 1, D}, {T, 1, D}, T, DType::f32, 2), "rope_interleaved must be 0 or 1"},
                         {attention_message({}, {}, T, DType::f32, 1), "needs the rope tables"}}) {
    EXPECT_NE(m.find("layers.1/attn"), std::string::npos) << m;
    EXPECT_NE(m.find(says), std::string::npos) << m;
  }
}
