// merge_matmuls' wide form and fuse_split_blocks: Llama's gate and up
// projections of few rows become one GEMM whose column blocks SwiGLU's fused
// kernel reads, with the same results on the CPU reference; what must stay
// stays; FusedElementwise's `blocks` attribute is checked.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "graph_test_util.h"
#include "ir/verifier.h"
#include "ops/fused_elementwise.h"
#include "passes/fuse_elementwise.h"
#include "passes/fuse_split_blocks.h"
#include "passes/merge_matmuls.h"

namespace tessera {
namespace {

using test::count_op;
using test::find_op;
using test::inference_message;
using test::random_f32;
using test::run_graph;

// x [rows, 16] → gate = x·Wg, up = x·Wu (each [16, n]) → silu(gate) · up, the graph output.
// `gate_out`: gate is a graph output too.
Graph swiglu(int64_t rows, int64_t n, std::mt19937& rng, bool gate_out = false) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {rows, 16});
  g.inputs = {x};
  auto v = [&](const char* name) { return g.add_value(name, DType::f32, {}); };
  Value *gate = v("gate"), *up = v("up"), *sig = v("sig"), *silu = v("silu"), *y = v("y");
  g.add_node("MatMul", "gate_proj", {x, g.add_constant("wg", random_f32({16, n}, rng))}, {gate});
  g.add_node("MatMul", "up_proj", {x, g.add_constant("wu", random_f32({16, n}, rng))}, {up});
  g.add_node("Sigmoid", "sigmoid", {gate}, {sig});
  g.add_node("Mul", "silu", {gate, sig}, {silu});
  g.add_node("Mul", "swiglu", {silu, up}, {y});
  g.outputs = {y};
  if (gate_out) g.outputs.push_back(gate);
  infer_shapes(g);
  return g;
}

void passes(Graph& g) {
  merge_matmuls(g);
  fuse_elementwise(g);
  fuse_split_blocks(g);
  verify(g, "fuse_split_blocks");
}

void expect_same(const Graph& plain, const Graph& g, int64_t rows, std::mt19937& rng) {
  std::map<std::string, Tensor> feeds = {{"x", random_f32({rows, 16}, rng)}};
  std::vector<Tensor> want = run_graph(plain, feeds), got = run_graph(g, feeds);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << i;
    for (int64_t j = 0; j < got[i].numel(); ++j) {  // the merged GEMM may sum in another order
      const float w = want[i].data<float>()[j];
      ASSERT_NEAR(got[i].data<float>()[j], w, 1e-5f * (1.0f + std::abs(w))) << i << "/" << j;
    }
  }
}

TEST(SplitBlocks, WideGateAndUpOfFewRowsBecomeOneGemmReadAsColumnBlocks) {
  const int64_t rows = 4, n = 8192;  // 2·8192 columns: more than kMergeMaxN, allowed for few rows
  std::mt19937 rng(41), rng2(41);
  Graph plain = swiglu(rows, n, rng), g = swiglu(rows, n, rng2);
  passes(g);
  EXPECT_EQ(count_op(g, "MatMul"), 1u);
  EXPECT_EQ(count_op(g, "Split"), 0u);
  const Node* f = find_op(g, "FusedElementwise");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(f->inputs.size(), 2u);
  EXPECT_EQ(f->inputs[0], f->inputs[1]);  // both read the merged GEMM's output
  EXPECT_EQ(f->attrs.get_ints("blocks"), (std::vector<int64_t>{0, 0, n, 1, n, n}));
  expect_same(plain, g, rows, rng);
}

TEST(SplitBlocks, NarrowSiblingsSplitForSwigluAreReadAsBlocksAtAnyRowCount) {
  const int64_t rows = 300, n = 24;  // merged under kMergeMaxN whatever the rows
  std::mt19937 rng(42), rng2(42);
  Graph plain = swiglu(rows, n, rng), g = swiglu(rows, n, rng2);
  passes(g);
  EXPECT_EQ(count_op(g, "MatMul"), 1u);
  EXPECT_EQ(count_op(g, "Split"), 0u);
  expect_same(plain, g, rows, rng);
}

TEST(SplitBlocks, LeavesWhatItCannotRead) {
  std::mt19937 rng(43);
  Graph many = swiglu(300, 8192, rng);  // many rows: the wide projections stay apart
  passes(many);
  EXPECT_EQ(count_op(many, "MatMul"), 2u);
  std::mt19937 rng2(44), rng3(44);
  Graph plain = swiglu(4, 24, rng2, true), kept = swiglu(4, 24, rng3, true);  // gate is also a graph output
  passes(kept);
  EXPECT_EQ(count_op(kept, "MatMul"), 1u);
  EXPECT_EQ(count_op(kept, "Split"), 1u);  // the Split stays: its output is read whole
  expect_same(plain, kept, 4, rng2);
  std::mt19937 rng4(45);
  Graph wide_out = swiglu(4, 8192, rng4, true);  // wide, but gate is no elementwise op's alone
  passes(wide_out);
  EXPECT_EQ(count_op(wide_out, "MatMul"), 2u);
}

// x [3, 10] → FusedElementwise(x) = Neg(x) with the given blocks attribute.
Graph negate(const std::vector<int64_t>& blocks) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {3, 10});
  g.inputs = {x};
  Value* y = g.add_value("y", DType::f32, {});
  FusedProgram p;
  p.n_inputs = 1;
  p.instrs.push_back({"Neg", {0}, DType::f32, {}});
  Attributes a;
  set_fused_program(a, p);
  a.set("blocks", blocks);
  g.add_node("FusedElementwise", "neg", {x}, {y}, std::move(a));
  g.outputs = {y};
  return g;
}

TEST(SplitBlocks, BlocksAttributeIsCheckedAndApplied) {
  Graph ok = negate({0, 2, 4});
  EXPECT_EQ(inference_message(ok), "(no error) [3,4]");
  std::mt19937 rng(46);
  Tensor x = random_f32({3, 10}, rng);
  std::vector<Tensor> y = run_graph(ok, {{"x", x}});
  ASSERT_EQ(y.at(0).shape(), (Shape{3, 4}));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t c = 0; c < 4; ++c) EXPECT_EQ(y[0].data<float>()[r * 4 + c], -x.data<float>()[r * 10 + 2 + c]);
  struct Bad {
    std::vector<int64_t> blocks;
    const char* says;
  };
  for (const Bad& b : {Bad{{0, 8, 4}, "columns 8..11 of an input of shape [3,10]"}, Bad{{0, 2}, "triples"},
                       Bad{{1, 0, 4}, "a block of input 1 of 1"}, Bad{{0, 0, 0}, "with width 0"},
                       Bad{{0, 0, 4, 0, 4, 4}, "two blocks"}}) {
    Graph g = negate(b.blocks);
    std::string m = inference_message(g);
    EXPECT_NE(m.find("node 'neg'"), std::string::npos) << m;
    EXPECT_NE(m.find(b.says), std::string::npos) << m;
  }
}

}  // namespace
}  // namespace tessera
