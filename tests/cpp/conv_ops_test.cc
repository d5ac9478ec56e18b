// Conv, pool and normalisation ops (ops/conv.cc, ops/pool.cc,
// ops/batchnorm.cc): CPU kernel values against hand-computed ones,
// build-time inference with unknown dims, and errors that name the node.
#include <cmath>

#include "shape_test_util.h"

using namespace tessera;
using namespace tessera::test;

namespace {
using Ints = std::vector<int64_t>;

Tensor f64(const Shape& s, const std::vector<double>& v) { return Tensor::from<double>(DType::f64, s, v); }
Tensor ones_f32(const Shape& s) { return f32(s, std::vector<float>(size_t(numel(s)), 1.0f)); }

void expect_near(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-5) << "element " << i;
}
}  // namespace

// 4x4 iota, 3x3 ones, pads 1, stride 2: each output sums the window around (2i, 2j).
TEST(Conv, PaddedStridedSumsWindows) {
  Attributes a = attrs({{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}});
  auto out = run_op("Conv", {iota_f32({1, 1, 4, 4}), ones_f32({1, 1, 3, 3}), f32({1}, {1})}, a);
  EXPECT_EQ(out[0].shape(), (Shape{1, 1, 2, 2}));
  expect_near(values<float>(out[0]), {11, 25, 52, 91});
}

TEST(Conv, Float64MatchesFloat32) {
  std::vector<double> x(16), w(9, 1.0);
  for (size_t i = 0; i < x.size(); ++i) x[i] = double(i);
  Attributes a = attrs({{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}});
  auto out = run_op("Conv", {f64({1, 1, 4, 4}, x), f64({1, 1, 3, 3}, w)}, a);
  EXPECT_EQ(out[0].dtype(), DType::f64);
  EXPECT_EQ(values<double>(out[0]), (std::vector<double>{10, 24, 51, 90}));
}

// Depthwise (group = channels): channel 0 picks each window's top-left, channel 1 its bottom-right.
TEST(Conv, DepthwiseKeepsChannelsApart) {
  Tensor w = f32({2, 1, 2, 2}, {1, 0, 0, 0, 0, 0, 0, 1});
  auto out = run_op("Conv", {iota_f32({1, 2, 3, 3}), w}, attrs({{"group", int64_t(2)}}));
  EXPECT_EQ(out[0].shape(), (Shape{1, 2, 2, 2}));
  expect_near(values<float>(out[0]), {0, 1, 3, 4, 13, 14, 16, 17});
}

TEST(Conv, Float16ComputesInFloat32AndKeepsDtype) {
  Tensor x = iota_f32({1, 1, 4, 4}).cast(DType::f16), w = ones_f32({1, 1, 3, 3}).cast(DType::f16);
  auto out = run_op("Conv", {x, w}, attrs({{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}}));
  EXPECT_EQ(out[0].dtype(), DType::f16);
  expect_near(values<float>(out[0].cast(DType::f32)), {10, 24, 51, 90});
}

// Full transposed output of [1,2,3] with [1,10,100], stride 2, is [1,10,102,20,203,30,300];
// output_shape 6 trims one element, from the start when NOTSET (ONNX's rule).
TEST(ConvTranspose, StrideAndOutputShape) {
  Tensor x = f32({1, 1, 3}, {1, 2, 3}), w = f32({1, 1, 3}, {1, 10, 100});
  auto full = run_op("ConvTranspose", {x, w}, attrs({{"strides", Ints{2}}}));
  expect_near(values<float>(full[0]), {1, 10, 102, 20, 203, 30, 300});
  auto cut = run_op("ConvTranspose", {x, w}, attrs({{"strides", Ints{2}}, {"output_shape", Ints{6}}}));
  expect_near(values<float>(cut[0]), {10, 102, 20, 203, 30, 300});
  auto upper = run_op("ConvTranspose", {x, w},
                      attrs({{"strides", Ints{2}}, {"output_shape", Ints{6}}, {"auto_pad", std::string("SAME_UPPER")}}));
  expect_near(values<float>(upper[0]), {1, 10, 102, 20, 203, 30});
}

// 5x5 iota, 2x2 windows, stride 2: ceil_mode adds the partial last row and column.
TEST(MaxPool, CeilModeKeepsPartialWindowsAndIndices) {
  Attributes a = attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t(1)}});
  auto out = run_op("MaxPool", {iota_f32({1, 1, 5, 5})}, a, 2);
  EXPECT_EQ(out[0].shape(), (Shape{1, 1, 3, 3}));
  expect_near(values<float>(out[0]), {6, 8, 9, 16, 18, 19, 21, 23, 24});
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{6, 8, 9, 16, 18, 19, 21, 23, 24}));
  auto floor = run_op("MaxPool", {iota_f32({1, 1, 5, 5})}, attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2, 2}}}));
  EXPECT_EQ(floor[0].shape(), (Shape{1, 1, 2, 2}));
}

TEST(MaxPool, ColumnMajorIndicesCountWholeTensor) {
  // Second channel of a [1,2,2,3] iota: its max (11) sits at h=1, w=2 → 6 + 1 + 2*2.
  Attributes a = attrs({{"kernel_shape", Ints{2, 3}}, {"storage_order", int64_t(1)}});
  auto out = run_op("MaxPool", {iota_f32({1, 2, 2, 3})}, a, 2);
  EXPECT_EQ(values<int64_t>(out[1]), (std::vector<int64_t>{5, 11}));
}

// [1..5], kernel 3, stride 2, pads (0,1), ceil: the last window [4,5,pad,past-end].
TEST(AveragePool, CeilModeDivisorsWithAndWithoutPad) {
  Tensor x = f32({1, 1, 5}, {1, 2, 3, 4, 5});
  Attributes a = attrs({{"kernel_shape", Ints{3}}, {"strides", Ints{2}}, {"pads", Ints{0, 1}}, {"ceil_mode", int64_t(1)}});
  expect_near(values<float>(run_op("AveragePool", {x}, a)[0]), {2, 4, 5});
  a.set("count_include_pad", int64_t(1));
  expect_near(values<float>(run_op("AveragePool", {x}, a)[0]), {2, 4, 2.5});
}

TEST(GlobalPools, ReduceEachPlane) {
  Tensor x = iota_f32({1, 2, 2, 2});
  expect_near(values<float>(run_op("GlobalAveragePool", {x})[0]), {1.5, 5.5});
  expect_near(values<float>(run_op("GlobalMaxPool", {x})[0]), {3, 7});
  expect_near(values<float>(run_op("GlobalLpPool", {f32({1, 1, 2}, {3, 4})})[0]), {5});
  EXPECT_EQ(run_op("GlobalMaxPool", {x})[0].shape(), (Shape{1, 2, 1, 1}));
}

TEST(BatchNormalization, AppliesPerChannelStatistics) {
  auto out = run_op("BatchNormalization", {f32({1, 2, 1, 2}, {1, 2, 3, 4}), f32({2}, {1, 2}), f32({2}, {0, 1}),
                                           f32({2}, {1, 3}), f32({2}, {4, 1})},
                    attrs({{"epsilon", 0.0f}}));
  expect_near(values<float>(out[0]), {0, 0.5, 1, 3});
}

TEST(BatchNormalization, TrainingModeIsUnsupportedNamingNode) {
  Tensor p = f32({2}, {1, 1});
  try {
    run_op("BatchNormalization", {iota_f32({1, 2, 2}), p, p, p, p}, attrs({{"training_mode", int64_t(1)}}));
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Unsupported);
    EXPECT_NE(std::string(e.what()).find("node 'test_BatchNormalization'"), std::string::npos) << e.what();
  }
}

TEST(InstanceNormalization, NormalisesEachPlane) {
  auto out = run_op("InstanceNormalization", {f64({1, 1, 4}, {1, 2, 3, 4}), f64({1}, {2}), f64({1}, {1})},
                    attrs({{"epsilon", 0.0f}}));
  std::vector<double> got = values<double>(out[0]);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(got[i], 2 * (double(i) + 1 - 2.5) / std::sqrt(1.25) + 1, 1e-12);
}

TEST(ConvInference, UnknownBatchAndSpatialDimsPropagate) {
  Attributes a = attrs({{"pads", Ints{1, 1, 1, 1}}, {"strides", Ints{2, 2}}});
  auto t = infer_build("Conv", {Described{DType::f32, {-1, 3, 32, 32}}, Described{DType::f32, {8, 3, 3, 3}}}, a);
  EXPECT_EQ(t[0].shape, (Shape{-1, 8, 16, 16}));
  t = infer_build("Conv", {Described{DType::f32, {-1, 3, -1, 32}}, Described{DType::f32, {8, 3, 3, 3}}}, a);
  EXPECT_EQ(t[0].shape, (Shape{-1, 8, -1, 16}));
  t = infer_build("ConvTranspose", {Described{DType::f32, {-1, 4, 8, 8}}, Described{DType::f32, {4, 2, 4, 4}}}, a);
  EXPECT_EQ(t[0].shape, (Shape{-1, 2, 16, 16}));
  Attributes p = attrs({{"kernel_shape", Ints{3, 3}}, {"strides", Ints{2, 2}}, {"ceil_mode", int64_t(1)}});
  t = infer_build("MaxPool", {Described{DType::f32, {-1, 3, 32, 32}}}, p, 2);
  EXPECT_EQ(t[0].shape, (Shape{-1, 3, 16, 16}));
  EXPECT_EQ(t[1].dtype, DType::i64);
  t = infer_build("GlobalAveragePool", {Described{DType::f32, {-1, 3, -1, -1}}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 3, 1, 1}));
}

TEST(ConvErrors, BadInputsNameTheNode) {
  expect_node_error([] { infer_build("Conv", {Described{DType::f32, {1, 4, 5, 5}}, Described{DType::f32, {2, 3, 3, 3}}}); },
                    "Conv", "channels");
  expect_node_error([] { run_op("Conv", {iota_f32({1, 1, 2, 2}), ones_f32({1, 1, 3, 3})}); }, "Conv",
                    "larger than the padded input");
  expect_node_error([] { run_op("Conv", {iota_f32({1, 1, 4, 4}), ones_f32({2, 1, 3, 3}), f32({3}, {0, 0, 0})}); }, "Conv",
                    "bias");
  expect_node_error([] { run_op("Conv", {iota_f32({1, 4, 4, 4}), ones_f32({2, 2, 3, 3})}, attrs({{"group", int64_t(3)}})); },
                    "Conv", "group");
  expect_node_error([] { run_op("MaxPool", {iota_f32({1, 1, 4, 4})}); }, "MaxPool", "kernel_shape");
  expect_node_error(
      [] { run_op("AveragePool", {iota_f32({1, 1, 4, 4})}, attrs({{"kernel_shape", Ints{2, 2}}, {"strides", Ints{2}}})); },
      "AveragePool", "strides");
  expect_node_error([] { run_op("InstanceNormalization", {iota_f32({1, 2, 4}), f32({3}, {1, 1, 1}), f32({2}, {0, 0})}); },
                    "InstanceNormalization", "scale");
}
