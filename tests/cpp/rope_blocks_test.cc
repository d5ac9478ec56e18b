// Rope's block attribute (ops/rope.cc) and the rope_blocks pass
// (passes/fuse_rope.cc): Llama's merged q/k/v projection output, Split along
// its last dim with q and k Reshaped to heads and rotated, gets Ropes that
// read the merged tensor's columns and a Slice for v alone; the results are
// bitwise those through the Split; Splits with two other readers stay; bad
// blocks are refused naming the node.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "graph_test_util.h"
#include "ir/op_registry.h"
#include "passes/fuse_rope.h"
#include "passes/pass_manager.h"

using namespace tessera;

namespace {

constexpr int64_t B = 2, T = 5, Hq = 4, Hkv = 2, D = 8, W = (Hq + 2 * Hkv) * D;

// x [B, T, W] -> Split -> q, k Reshaped to [B, T, H, D] and rotated; v a graph output
// (v_reshaped_too: v is also Reshaped and rotated, so nothing is left for a Slice;
// k_read_twice: k is also a graph output, so two outputs keep other readers).
void build(Graph& g, bool v_rotated_too = false, bool k_read_twice = false) {
  Value* x = g.add_value("x", DType::f32, {B, T, W});
  Value* cs = g.add_value("cos", DType::f32, {1, T, 1, D});
  Value* sn = g.add_value("sin", DType::f32, {1, T, 1, D});
  g.inputs = {x, cs, sn};
  std::vector<Value*> parts;
  for (const char* name : {"q", "k", "v"}) parts.push_back(g.add_value(name, DType::f32, {}));
  Attributes ax;
  ax.set("axis", int64_t(-1));
  g.add_node("Split", "merged_split", {x, g.add_constant("sizes", Tensor::vector_i64({Hq * D, Hkv * D, Hkv * D}))}, parts, ax);
  for (size_t i = 0; i < (v_rotated_too ? 3u : 2u); ++i) {
    const int64_t h = i == 0 ? Hq : Hkv;
    Value* r = g.add_value(parts[i]->name + ".heads", DType::f32, {});
    g.add_node("Reshape", r->name, {parts[i], g.add_constant(r->name + ".shape", Tensor::vector_i64({B, T, h, D}))}, {r});
    Value* y = g.add_value(parts[i]->name + ".rot", DType::f32, {});
    g.add_node("Rope", y->name, {r, cs, sn}, {y});
    g.outputs.push_back(y);
  }
  if (!v_rotated_too) g.outputs.push_back(parts[2]);
  if (k_read_twice) g.outputs.push_back(parts[1]);
  infer_shapes(g);
}

std::map<std::string, Tensor> feeds(std::mt19937& rng) {
  return {{"x", test::random_f32({B, T, W}, rng)}, {"cos", test::random_f32({1, T, 1, D}, rng)},
          {"sin", test::random_f32({1, T, 1, D}, rng)}};
}

void expect_bitwise(const std::vector<Tensor>& got, const std::vector<Tensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << "output " << i;
    EXPECT_EQ(std::memcmp(got[i].raw(), want[i].raw(), size_t(got[i].numel()) * sizeof(float)), 0) << "output " << i;
  }
}

}  // namespace

TEST(RopeBlocks, RopesReadTheMergedProjectionAndVIsSliced) {
  std::mt19937 rng(3);
  for (bool v_rotated : {false, true}) {
    Graph ref, g;
    build(ref, v_rotated);
    build(g, v_rotated);
    rope_blocks(g);
    EXPECT_EQ(test::count_op(g, "Split"), 0u);
    EXPECT_EQ(test::count_op(g, "Reshape"), 0u);
    EXPECT_EQ(test::count_op(g, "Slice"), v_rotated ? 0u : 1u);
    std::vector<std::vector<int64_t>> blocks;
    for (auto& n : g.nodes())
      if (n->op == "Rope") {
        EXPECT_EQ(n->inputs[0]->name, "x");
        blocks.push_back(n->attrs.get_ints("block"));
      }
    std::vector<std::vector<int64_t>> want = {{0, Hq, D}, {Hq * D, Hkv, D}};
    if (v_rotated) want.push_back({(Hq + Hkv) * D, Hkv, D});
    EXPECT_EQ(blocks, want);
    auto in = feeds(rng);
    expect_bitwise(test::run_graph(g, in), test::run_graph(ref, in));
  }
}

TEST(RopeBlocks, LeavesASplitWithTwoOtherReaders) {
  Graph g;
  build(g, false, true);
  rope_blocks(g);
  EXPECT_EQ(test::count_op(g, "Split"), 1u);
  for (auto& n : g.nodes())
    if (n->op == "Rope") EXPECT_FALSE(n->attrs.has("block"));
}

TEST(RopeBlocks, InferenceRefusesABlockPastXNamingTheNode) {
  auto message = [](std::vector<int64_t> block) -> std::string {
    Graph g;
    Value* x = g.add_value("x", DType::f32, {B, T, W});
    Value* cs = g.add_value("cos", DType::f32, {1, T, 1, D});
    g.inputs = {x, cs};
    Attributes a;
    a.set("block", std::move(block));
    Value* y = g.add_value("y", DType::f32, {});
    g.add_node("Rope", "layers.2/q_rope", {x, cs, cs}, {y}, a);
    g.outputs = {y};
    return test::inference_message(g);
  };
  EXPECT_EQ(message({Hq * D, Hkv, D}), "(no error) [2,5,2,8]");
  for (auto [block, says] : {std::pair<std::vector<int64_t>, const char*>{{W - D, Hkv, D}, "run past X's last dim"},
                             {{0, 0, D}, "positive heads"},
                             {{0, Hq}, "block must be [begin, heads, head dim]"},
                             {{0, Hq, 6}, "do not broadcast"}}) {
    std::string m = message(block);
    EXPECT_NE(m.find("layers.2/q_rope"), std::string::npos) << m;
    EXPECT_NE(m.find(says), std::string::npos) << m;
  }
}
