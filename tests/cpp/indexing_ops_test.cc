// Indexing ops (ops/indexing.cc): gathers, scatters, NonZero, TopK,
// ArgMax/ArgMin against hand-computed values, inference and errors.
#include "shape_test_util.h"

using namespace tessera;
using namespace tessera::test;

TEST(Gather, AxisAndNegativeIndices) {
  Tensor x = iota_f32({3, 4});
  auto out = run_op("Gather", {x, i32({2}, {-1, 0})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 4}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{8, 9, 10, 11, 0, 1, 2, 3}));
  out = run_op("Gather", {x, i64({2, 2}, {3, 1, 0, -2})}, attrs({{"axis", int64_t(-1)}}));
  EXPECT_EQ(out[0].shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{3, 1, 0, 2, 7, 5, 4, 6, 11, 9, 8, 10}));
  out = run_op("Gather", {x, i64({}, {1})});  // a scalar index drops the axis
  EXPECT_EQ(out[0].shape(), (Shape{4}));
  expect_node_error([&] { run_op("Gather", {x, i64({1}, {3})}); }, "Gather", "out of range");
  auto t = infer_build("Gather", {Described{DType::f32, {-1, 16}}, Described{DType::i64, {2, -1}}}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, 2, -1}));
}

TEST(GatherElements, Axis1) {
  auto out = run_op("GatherElements", {f32({2, 2}, {1, 2, 3, 4}), i64({2, 2}, {0, 0, 1, -2})}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 1, 4, 3}));
  out = run_op("GatherElements", {iota_f32({3, 2}), i32({1, 2}, {2, 1})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{4, 3}));
  expect_node_error([] { run_op("GatherElements", {iota_f32({3, 2}), i64({1, 3}, {0, 0, 0})}); }, "GatherElements", "exceed");
}

TEST(GatherND, BatchDims) {
  Tensor x = iota_f32({2, 2});
  auto out = run_op("GatherND", {x, i64({2, 2}, {0, 0, 1, 1})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 3}));
  out = run_op("GatherND", {x, i64({2, 1}, {1, 0})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{2, 3, 0, 1}));
  Tensor y = iota_f32({2, 2, 2});
  out = run_op("GatherND", {y, i64({2, 1}, {1, 0})}, attrs({{"batch_dims", int64_t(1)}}));
  EXPECT_EQ(out[0].shape(), (Shape{2, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{2, 3, 4, 5}));
  auto t = infer_build("GatherND", {Described{DType::f32, {-1, 5, 6}}, Described{DType::i64, {-1, 3, 2}}}, attrs({{"batch_dims", int64_t(1)}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, 3}));
}

TEST(ScatterND, NoneAddMul) {
  Tensor data = f32({4}, {1, 2, 3, 4});
  Tensor idx = i64({3, 1}, {1, 3, 1});
  Tensor upd = f32({3}, {10, 20, 30});
  EXPECT_EQ(values<float>(run_op("ScatterND", {data, i64({2, 1}, {1, -1}), f32({2}, {10, 20})})[0]),
            (std::vector<float>{1, 10, 3, 20}));
  EXPECT_EQ(values<float>(run_op("ScatterND", {data, idx, upd}, attrs({{"reduction", std::string("add")}}))[0]),
            (std::vector<float>{1, 42, 3, 24}));
  EXPECT_EQ(values<float>(run_op("ScatterND", {data, idx, upd}, attrs({{"reduction", std::string("mul")}}))[0]),
            (std::vector<float>{1, 600, 3, 80}));
  // Slices: index tuples of length 1 into a [2,2] tensor replace whole rows.
  auto out = run_op("ScatterND", {iota_f32({2, 2}), i64({1, 1}, {0}), f32({1, 2}, {7, 8})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{7, 8, 2, 3}));
  expect_node_error([] { run_op("ScatterND", {iota_f32({2, 2}), i64({1, 1}, {0}), f32({1, 3}, {7, 8, 9})}); },
                    "ScatterND", "updates");
}

TEST(ScatterElements, AxisAndReduction) {
  Tensor data = Tensor::zeros(DType::f32, {2, 3});
  auto out = run_op("ScatterElements", {data, i64({2, 2}, {2, 0, -1, 1}), f32({2, 2}, {1, 2, 3, 4})}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{2, 0, 1, 0, 4, 3}));
  Attributes a = attrs({{"axis", int64_t(1)}, {"reduction", std::string("add")}});
  out = run_op("ScatterElements", {iota_f32({1, 3}), i64({1, 2}, {1, 1}), f32({1, 2}, {5, 6})}, a);
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 12, 2}));
  a.set("reduction", std::string("max"));
  out = run_op("ScatterElements", {i64({1, 3}, {4, 4, 4}), i64({1, 2}, {0, 2}), i64({1, 2}, {9, 1})}, a);
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{9, 4, 4}));
}

TEST(NonZero, CoordinatesAndInference) {
  auto out = run_op("NonZero", {f32({2, 3}, {0, 1, 0, 2, 0, 3})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{0, 1, 1, 1, 0, 2}));
  EXPECT_EQ(run_op("NonZero", {f32({}, {5})})[0].shape(), (Shape{1, 1}));
  auto t = infer_build("NonZero", {Described{DType::f32, {-1, 4, 2}}});
  EXPECT_EQ(t[0].shape, (Shape{3, -1}));
  EXPECT_EQ(t[0].dtype, DType::i64);
}

TEST(TopK, LargestSmallestTies) {
  Tensor x = f32({2, 4}, {3, 1, 4, 1, 5, 9, 2, 6});
  auto out = run_op("TopK", {x, ints({2})}, {}, 2);
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{4, 3, 9, 6}));
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{2, 0, 1, 3}));
  out = run_op("TopK", {x, ints({3})}, attrs({{"largest", int64_t(0)}}), 2);
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 1, 3, 2, 5, 6}));
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{1, 3, 0, 2, 0, 3}));  // ties: lower index first
  out = run_op("TopK", {x, ints({1})}, attrs({{"axis", int64_t(0)}}), 2);
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{5, 9, 4, 6}));
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{1, 1, 0, 1}));
  expect_node_error([&] { run_op("TopK", {x, ints({5})}, {}, 2); }, "TopK", "out of range");
  auto t = infer_build("TopK", {Described{DType::f32, {-1, 10}}, Described{DType::i64, {1}}}, {}, 2);
  EXPECT_EQ(t[0].shape, (Shape{-1, -1}));
  EXPECT_EQ(t[1].dtype, DType::i64);
}

TEST(ArgMaxMin, KeepdimsAndLastIndex) {
  Tensor x = f32({2, 3}, {1, 5, 5, 7, 0, 7});
  EXPECT_EQ(values<int64_t>(run_op("ArgMax", {x}, attrs({{"axis", int64_t(1)}}))[0]), (std::vector<int64_t>{1, 0}));
  auto out = run_op("ArgMax", {x}, attrs({{"axis", int64_t(-1)}, {"select_last_index", int64_t(1)}, {"keepdims", int64_t(0)}}));
  EXPECT_EQ(out[0].shape(), (Shape{2}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{2, 2}));
  out = run_op("ArgMin", {x});
  EXPECT_EQ(out[0].shape(), (Shape{1, 3}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{0, 1, 0}));
  out = run_op("ArgMin", {i64({3}, {4, -2, -2})}, attrs({{"select_last_index", int64_t(1)}}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{2}));
}
