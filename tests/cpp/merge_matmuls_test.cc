// merge_matmuls: sibling projections of one activation become one MatMul and
// a Split with the same results; what it must leave alone stays.
#include <gtest/gtest.h>

#include <random>

#include "graph_test_util.h"
#include "ir/verifier.h"
#include "passes/merge_matmuls.h"
#include "passes/pass_manager.h"

namespace tessera {
namespace {

using test::count_op;
using test::random_f32;
using test::run_graph;

// x [2, 3, 16] → MatMul by W_i [16, n_i] for each n_i, each output a graph output.
// `shared_weight`: the first weight also feeds a Neg (another reader). `biases`: each
// MatMul is followed by an Add of a constant [n_i] (the first `biases` of them; the
// Add's output is then the graph output).
Graph projections(const std::vector<int64_t>& ns, std::mt19937& rng, bool shared_weight = false, size_t biases = 0) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {2, 3, 16});
  g.inputs = {x};
  for (size_t i = 0; i < ns.size(); ++i) {
    Value* w = g.add_constant("w" + std::to_string(i), random_f32({16, ns[i]}, rng));
    Value* y = g.add_value("y" + std::to_string(i), DType::f32, {});
    g.add_node("MatMul", "proj" + std::to_string(i), {x, w}, {y});
    if (i < biases) {
      Value* yb = g.add_value("yb" + std::to_string(i), DType::f32, {});
      Value* bias = g.add_constant("b" + std::to_string(i), random_f32({ns[i]}, rng));
      g.add_node("Add", "bias" + std::to_string(i), i % 2 ? std::vector<Value*>{bias, y} : std::vector<Value*>{y, bias}, {yb});
      y = yb;
    }
    g.outputs.push_back(y);
    if (shared_weight && i == 0) {
      Value* e = g.add_value("neg_w", DType::f32, {});
      g.add_node("Neg", "neg_w", {w}, {e});
      g.outputs.push_back(e);
    }
  }
  infer_shapes(g);
  return g;
}

TEST(MergeMatmuls, SiblingProjectionsBecomeOneGemmAndASplitWithTheSameResults) {
  std::mt19937 rng(31), rng2(31);
  Graph plain = projections({32, 8, 8}, rng), g = projections({32, 8, 8}, rng2);
  merge_matmuls(g);
  verify(g, "merge_matmuls");
  EXPECT_EQ(count_op(g, "MatMul"), 1u);
  EXPECT_EQ(count_op(g, "Split"), 1u);
  std::map<std::string, Tensor> feeds = {{"x", random_f32({2, 3, 16}, rng)}};
  std::vector<Tensor> want = run_graph(plain, feeds), got = run_graph(g, feeds);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].shape(), want[i].shape()) << i;
    for (int64_t j = 0; j < got[i].numel(); ++j) ASSERT_EQ(got[i].data<float>()[j], want[i].data<float>()[j]) << i << "/" << j;
  }
}

TEST(MergeMatmuls, TheirBiasAddsJoinAsOneAddBeforeTheSplit) {
  for (size_t biases : {size_t(3), size_t(2)}) {  // all three biased: merged; two of three: the Adds stay after the Split
    std::mt19937 rng(33), rng2(33);
    Graph plain = projections({16, 8, 8}, rng, false, biases), g = projections({16, 8, 8}, rng2, false, biases);
    merge_matmuls(g);
    verify(g, "merge_matmuls");
    EXPECT_EQ(count_op(g, "MatMul"), 1u) << biases;
    EXPECT_EQ(count_op(g, "Add"), biases == 3 ? 1u : 2u) << biases;
    std::map<std::string, Tensor> feeds = {{"x", random_f32({2, 3, 16}, rng)}};
    std::vector<Tensor> want = run_graph(plain, feeds), got = run_graph(g, feeds);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i)
      for (int64_t j = 0; j < got[i].numel(); ++j)
        ASSERT_EQ(got[i].data<float>()[j], want[i].data<float>()[j]) << biases << ": " << i << "/" << j;
  }
}

TEST(MergeMatmuls, LeavesWhatItCannotMerge) {
  std::mt19937 rng(32);
  Graph wide = projections({4096, 4096, 64}, rng);  // more than kMergeMaxN columns together
  merge_matmuls(wide);
  EXPECT_EQ(count_op(wide, "MatMul"), 3u);
  Graph odd = projections({12, 8}, rng);  // a width that is not a multiple of 8
  merge_matmuls(odd);
  EXPECT_EQ(count_op(odd, "MatMul"), 2u);
  Graph shared = projections({8, 8}, rng, true);  // a weight read elsewhere too
  merge_matmuls(shared);
  EXPECT_EQ(count_op(shared, "MatMul"), 2u);
  Graph alone = projections({8}, rng);
  merge_matmuls(alone);
  EXPECT_EQ(count_op(alone, "Split"), 0u);
}

}  // namespace
}  // namespace tessera
