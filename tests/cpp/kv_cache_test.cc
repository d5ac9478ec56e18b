// TensorScatter (ops/kv_cache.cc): the in-place KV-cache write the decode
// graphs use updates the caller's buffer; without inplace it leaves the input
// alone (ONNX's meaning); writes past the cache and mismatched shapes are
// errors naming the node.
#include <gtest/gtest.h>

#include "backend/cpu/kernel_registry.h"
#include "ir/graph.h"
#include "ir/op_registry.h"

namespace tessera {
namespace {

struct ScatterNode {
  Graph g;
  Node* node;
  ScatterNode(bool inplace, Shape cache, Shape update) {
    Value* c = g.add_value("cache", DType::f32, cache);
    Value* u = g.add_value("update", DType::f32, update);
    Value* w = g.add_value("write_indices", DType::i64, {cache[0]});
    Value* y = g.add_value("present", DType::f32, cache);
    Attributes a;
    a.set("axis", int64_t(2));
    if (inplace) a.set("inplace", int64_t(1));
    node = g.add_node("TensorScatter", "layers.0.kv_cache.k", {c, u, w}, {y}, a);
  }
};

Tensor iota(const Shape& s, float start) {
  Tensor t = Tensor::empty(DType::f32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = start + float(i);
  return t;
}

TEST(KvCache, InplaceWritesRowsAtTheirOffsets) {
  ScatterNode s(true, {2, 1, 4, 2}, {2, 1, 1, 2});
  Tensor cache = Tensor::zeros(DType::f32, {2, 1, 4, 2}), upd = iota({2, 1, 1, 2}, 1);
  Tensor w = Tensor::vector_i64({3, 1});
  std::vector<Tensor> out = cpu::run_node(*s.node, {&cache, &upd, &w});
  EXPECT_EQ(out[0].raw(), cache.raw()) << "inplace=1 must alias the caller's cache";
  const float* c = cache.data<float>();
  std::vector<float> want = {0, 0, 0, 0, 0, 0, 1, 2, /* row 1 */ 0, 0, 3, 4, 0, 0, 0, 0};
  EXPECT_EQ(std::vector<float>(c, c + 16), want);
}

TEST(KvCache, WithoutInplaceTheInputIsUntouched) {
  ScatterNode s(false, {1, 2, 3, 1}, {1, 2, 2, 1});
  Tensor cache = Tensor::zeros(DType::f32, {1, 2, 3, 1}), upd = iota({1, 2, 2, 1}, 5);
  Tensor w = Tensor::vector_i64({1});
  std::vector<Tensor> out = cpu::run_node(*s.node, {&cache, &upd, &w});
  EXPECT_NE(out[0].raw(), cache.raw());
  for (int64_t i = 0; i < cache.numel(); ++i) EXPECT_EQ(cache.data<float>()[i], 0.0f);
  std::vector<float> want = {0, 5, 6, 0, 7, 8};
  EXPECT_EQ(std::vector<float>(out[0].data<float>(), out[0].data<float>() + 6), want);
}

TEST(KvCache, WritePastTheEndNamesTheRow) {
  ScatterNode s(true, {2, 1, 4, 2}, {2, 1, 2, 2});
  Tensor cache = Tensor::zeros(DType::f32, {2, 1, 4, 2}), upd = iota({2, 1, 2, 2}, 1);
  Tensor w = Tensor::vector_i64({0, 3});
  try {
    cpu::run_node(*s.node, {&cache, &upd, &w});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 writes positions [3, 5)"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("layers.0.kv_cache.k"), std::string::npos) << e.what();
  }
}

TEST(KvCache, ShapeMismatchIsRejectedAtBuild) {
  ScatterNode s(true, {2, 2, 4, 8}, {2, 3, 1, 8});  // 3 heads into a 2-head cache
  EXPECT_THROW(infer_node(*s.node), Error);
  ScatterNode t(true, {2, 2, 4, 8}, {2, 2, 5, 8});  // longer than the cache
  EXPECT_THROW(infer_node(*t.node), Error);
}

}  // namespace
}  // namespace tessera
