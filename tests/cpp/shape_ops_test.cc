// Shape ops (ops/shape.cc): CPU kernel values against hand-computed ones,
// build-time inference with unknown dims, and errors that name the node.
#include <limits>

#include "shape_test_util.h"

using namespace tessera;
using namespace tessera::test;

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();

TEST(Reshape, ZeroCopiesAndMinusOneInfers) {
  Tensor x = iota_f32({2, 3, 4});
  auto out = run_op("Reshape", {x, ints({0, -1})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(out[0].raw(), x.raw());  // a view, no copy
  EXPECT_EQ(run_op("Reshape", {x, ints({-1, 2, 2})})[0].shape(), (Shape{6, 2, 2}));
  EXPECT_EQ(run_op("Reshape", {x, ints({4, 0, 2})})[0].shape(), (Shape{4, 3, 2}));
}

TEST(Reshape, AllowZeroKeepsZero) {
  Tensor x = Tensor::zeros(DType::f32, {0, 3});
  auto out = run_op("Reshape", {x, ints({3, 0})}, attrs({{"allowzero", int64_t(1)}}));
  EXPECT_EQ(out[0].shape(), (Shape{3, 0}));
}

TEST(Reshape, IncompatibleSizeNamesNode) {
  expect_node_error([] { run_op("Reshape", {iota_f32({2, 3}), ints({4, 2})}); }, "Reshape", "cannot reshape");
  expect_node_error([] { run_op("Reshape", {iota_f32({2, 3}), ints({-1, -1})}); }, "Reshape", "two -1");
}

TEST(Reshape, InferenceWithUnknownDims) {
  auto t = infer_build("Reshape", {Described{DType::f32, {-1, 3, 4}}, Described{DType::i64, {2}, ints({0, -1})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, -1}));
  t = infer_build("Reshape", {Described{DType::f32, {-1, 3, 4}}, Described{DType::i64, {3}, ints({0, 2, 6})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 2, 6}));
  // Target not known at build time: rank from its length, or nothing.
  t = infer_build("Reshape", {Described{DType::f32, {2, 3}}, Described{DType::i64, {3}}});
  EXPECT_TRUE(t[0].rank_known);
  EXPECT_EQ(t[0].shape, (Shape{-1, -1, -1}));
  t = infer_build("Reshape", {Described{DType::f32, {2, 3}}, Described{DType::i64, {-1}}});
  EXPECT_FALSE(t[0].rank_known);
}

TEST(Transpose, DefaultReversesAndPermMoves) {
  auto out = run_op("Transpose", {iota_f32({2, 3})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  out = run_op("Transpose", {iota_f32({2, 3, 2})}, attrs({{"perm", std::vector<int64_t>{1, 0, 2}}}));
  EXPECT_EQ(out[0].shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 1, 6, 7, 2, 3, 8, 9, 4, 5, 10, 11}));
  auto t = infer_build("Transpose", {Described{DType::f32, {-1, 5, 7}}}, attrs({{"perm", std::vector<int64_t>{2, 0, 1}}}));
  EXPECT_EQ(t[0].shape, (Shape{7, -1, 5}));
  expect_node_error([] { run_op("Transpose", {iota_f32({2, 3})}, attrs({{"perm", std::vector<int64_t>{0, 0}}})); },
                    "Transpose", "repeated");
}

TEST(Transpose, MovesHalfBitsUnchanged) {
  Tensor h = Tensor::from<uint16_t>(DType::f16, {2, 2}, {0x3c00, 0x4000, 0x4200, 0x4400});
  auto out = run_op("Transpose", {h});
  EXPECT_EQ(out[0].dtype(), DType::f16);
  EXPECT_EQ(values<uint16_t>(out[0]), (std::vector<uint16_t>{0x3c00, 0x4200, 0x4000, 0x4400}));
}

TEST(Concat, NegativeAxisAndInference) {
  auto out = run_op("Concat", {f32({2, 1}, {1, 2}), f32({2, 2}, {3, 4, 5, 6})}, attrs({{"axis", int64_t(-1)}}));
  EXPECT_EQ(out[0].shape(), (Shape{2, 3}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 3, 4, 2, 5, 6}));
  auto t = infer_build("Concat", {Described{DType::f32, {-1, 2}}, Described{DType::f32, {3, 5}}}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(t[0].shape, (Shape{3, 7}));
  t = infer_build("Concat", {Described{DType::f32, {4, -1}}, Described{DType::f32, {4, 5}}}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(t[0].shape, (Shape{4, -1}));
  expect_node_error([] { infer_build("Concat", {Described{DType::f32, {2, 3}}, Described{DType::f32, {4, 3}}}, attrs({{"axis", int64_t(1)}})); },
                    "Concat", "disagree");
}

TEST(Split, SizesNumOutputsAndEqual) {
  Tensor x = iota_f32({6, 2});
  auto out = run_op("Split", {x, ints({1, 5})}, {}, 2);
  EXPECT_EQ(out[0].shape(), (Shape{1, 2}));
  EXPECT_EQ(values<float>(out[1]), (std::vector<float>{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
  out = run_op("Split", {x}, attrs({{"axis", int64_t(-1)}}), 2);
  EXPECT_EQ(values<float>(out[1]), (std::vector<float>{1, 3, 5, 7, 9, 11}));
  // opset 18 num_outputs: ceil-sized chunks, the last one smaller.
  out = run_op("Split", {iota_f32({7})}, attrs({{"num_outputs", int64_t(3)}}), 3);
  EXPECT_EQ(out[0].shape(), (Shape{3}));
  EXPECT_EQ(values<float>(out[2]), (std::vector<float>{6}));
  expect_node_error([] { run_op("Split", {iota_f32({7})}, {}, 2); }, "Split", "evenly");
  auto t = infer_build("Split", {Described{DType::f32, {-1, 4}}}, attrs({{"axis", int64_t(1)}}), 2);
  EXPECT_EQ(t[1].shape, (Shape{-1, 2}));
}

TEST(Slice, NegativeStepsAndClamping) {
  Tensor x = iota_f32({10});
  auto out = run_op("Slice", {x, ints({-1}), ints({-kMax}), std::nullopt, ints({-3})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{9, 6, 3, 0}));
  out = run_op("Slice", {x, ints({2}), ints({kMax}), ints({0}), ints({3})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{2, 5, 8}));
  out = run_op("Slice", {x, ints({20}), ints({-20}), std::nullopt, ints({-1})});  // start clamps to 9
  EXPECT_EQ(out[0].numel(), 10);
  EXPECT_EQ(out[0].data<float>()[0], 9);
  out = run_op("Slice", {x, ints({5}), ints({2})});  // empty
  EXPECT_EQ(out[0].shape(), (Shape{0}));
}

TEST(Slice, AxesAndInt32Params) {
  Tensor x = iota_f32({3, 4});
  auto out = run_op("Slice", {x, i32({1}, {1}), i32({1}, {-1}), i32({1}, {-1})});
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 2, 5, 6, 9, 10}));
  expect_node_error([] { run_op("Slice", {iota_f32({4}), ints({0}), ints({2}), std::nullopt, ints({0})}); }, "Slice", "step");
}

TEST(Slice, InferenceKeepsUnslicedDims) {
  Described x{DType::f32, {-1, 8, 6}};
  auto t = infer_build("Slice", {x, Described{DType::i64, {1}, ints({1})}, Described{DType::i64, {1}, ints({-1})},
                                 Described{DType::i64, {1}, ints({1})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 6, 6}));
  // starts unknown, axes known: only that axis becomes unknown
  t = infer_build("Slice", {x, Described{DType::i64, {1}}, Described{DType::i64, {1}}, Described{DType::i64, {1}, ints({2})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 8, -1}));
}

TEST(SqueezeUnsqueeze, AxesAndDefaults) {
  Tensor x = iota_f32({1, 3, 1});
  EXPECT_EQ(run_op("Squeeze", {x})[0].shape(), (Shape{3}));
  EXPECT_EQ(run_op("Squeeze", {x, ints({})})[0].shape(), (Shape{3}));  // empty axes squeeze all, as in ONNX Runtime
  EXPECT_EQ(run_op("Squeeze", {x, ints({-1})})[0].shape(), (Shape{1, 3}));
  expect_node_error([&] { run_op("Squeeze", {x, ints({1})}); }, "Squeeze", "cannot squeeze");
  auto out = run_op("Unsqueeze", {iota_f32({2, 3}), ints({0, -1})});
  EXPECT_EQ(out[0].shape(), (Shape{1, 2, 3, 1}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(run_op("Unsqueeze", {f32({}, {7}), ints({0})})[0].shape(), (Shape{1}));
  // Without axes, unknown dims might be 1: the rank is not known at build time.
  EXPECT_FALSE(infer_build("Squeeze", {Described{DType::f32, {-1, 3}}})[0].rank_known);
  auto t = infer_build("Unsqueeze", {Described{DType::f32, {-1, 3}}, Described{DType::i64, {1}, ints({1})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 1, 3}));
}

TEST(Expand, BidirectionalBroadcast) {
  auto out = run_op("Expand", {f32({3, 1}, {1, 2, 3}), ints({2, 1, 2})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  EXPECT_EQ(run_op("Expand", {f32({2, 2}, {1, 2, 3, 4}), ints({1})})[0].shape(), (Shape{2, 2}));
  expect_node_error([] { run_op("Expand", {f32({3}, {1, 2, 3}), ints({2})}); }, "Expand", "broadcast");
  auto t = infer_build("Expand", {Described{DType::f32, {-1, 1}}, Described{DType::i64, {2}, ints({1, 5})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 5}));
}

TEST(Flatten, AxisRange) {
  Tensor x = iota_f32({2, 3, 4});
  EXPECT_EQ(run_op("Flatten", {x})[0].shape(), (Shape{2, 12}));
  EXPECT_EQ(run_op("Flatten", {x}, attrs({{"axis", int64_t(0)}}))[0].shape(), (Shape{1, 24}));
  EXPECT_EQ(run_op("Flatten", {x}, attrs({{"axis", int64_t(-1)}}))[0].shape(), (Shape{6, 4}));
  EXPECT_EQ(run_op("Flatten", {x}, attrs({{"axis", int64_t(3)}}))[0].shape(), (Shape{24, 1}));
  auto t = infer_build("Flatten", {Described{DType::f32, {-1, 3, 4}}}, attrs({{"axis", int64_t(1)}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, 12}));
}

TEST(Tile, RepeatsEachDim) {
  auto out = run_op("Tile", {f32({2, 2}, {1, 2, 3, 4}), ints({2, 3})});
  EXPECT_EQ(out[0].shape(), (Shape{4, 6}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4,  //
                                                       1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4}));
  auto t = infer_build("Tile", {Described{DType::f32, {-1, 2}}, Described{DType::i64, {2}, ints({3, 2})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 4}));
}

TEST(Pad, ConstantReflectEdgeWrap) {
  Tensor x = f32({3}, {1, 2, 3});
  auto pad = [&](const char* mode, std::vector<int64_t> p) {
    return values<float>(run_op("Pad", {x, ints(p), f32({}, {9})}, attrs({{"mode", std::string(mode)}}))[0]);
  };
  EXPECT_EQ(pad("constant", {2, 1}), (std::vector<float>{9, 9, 1, 2, 3, 9}));
  EXPECT_EQ(pad("reflect", {2, 2}), (std::vector<float>{3, 2, 1, 2, 3, 2, 1}));
  EXPECT_EQ(pad("edge", {2, 1}), (std::vector<float>{1, 1, 1, 2, 3, 3}));
  EXPECT_EQ(pad("wrap", {2, 1}), (std::vector<float>{2, 3, 1, 2, 3, 1}));
  EXPECT_EQ(pad("constant", {-1, 1}), (std::vector<float>{2, 3, 9}));  // negative pads crop
}

TEST(Pad, AxesInputAndDefaultZero) {
  auto out = run_op("Pad", {iota_f32({2, 2}), ints({1, 1}), std::nullopt, ints({-1})});
  EXPECT_EQ(out[0].shape(), (Shape{2, 4}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 0, 1, 0, 0, 2, 3, 0}));
  auto t = infer_build("Pad", {Described{DType::f32, {-1, 4}}, Described{DType::i64, {4}, ints({0, 1, 0, 2})}});
  EXPECT_EQ(t[0].shape, (Shape{-1, 7}));
  expect_node_error([] { run_op("Pad", {iota_f32({2}), ints({1})}); }, "Pad", "pads has 1 values");
}

TEST(ShapeSize, StartEnd) {
  Tensor x = Tensor::zeros(DType::f32, {2, 3, 5});
  EXPECT_EQ(values<int64_t>(run_op("Shape", {x})[0]), (std::vector<int64_t>{2, 3, 5}));
  auto out = run_op("Shape", {x}, attrs({{"start", int64_t(-2)}}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{3, 5}));
  out = run_op("Shape", {x}, attrs({{"start", int64_t(1)}, {"end", int64_t(-1)}}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{3}));
  EXPECT_EQ(run_op("Shape", {x}, attrs({{"start", int64_t(5)}}))[0].numel(), 0);
  EXPECT_EQ(run_op("Size", {x})[0].item_i64(), 30);
  auto t = infer_build("Shape", {Described{DType::f32, {-1, 4}}});
  EXPECT_EQ(t[0].shape, (Shape{2}));
}

TEST(DepthToSpace, ModesAndInverse) {
  Tensor x = iota_f32({1, 8, 1, 1});
  Attributes a = attrs({{"blocksize", int64_t(2)}});
  auto dcr = run_op("DepthToSpace", {x}, a);
  EXPECT_EQ(dcr[0].shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ(values<float>(dcr[0]), (std::vector<float>{0, 2, 4, 6, 1, 3, 5, 7}));
  a.set("mode", std::string("CRD"));
  EXPECT_EQ(values<float>(run_op("DepthToSpace", {x}, a)[0]), (std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7}));
  Tensor img = iota_f32({1, 2, 4, 6});
  auto s2d = run_op("SpaceToDepth", {img}, attrs({{"blocksize", int64_t(2)}}));
  EXPECT_EQ(s2d[0].shape(), (Shape{1, 8, 2, 3}));
  auto back = run_op("DepthToSpace", {s2d[0]}, attrs({{"blocksize", int64_t(2)}}));
  EXPECT_EQ(values<float>(back[0]), values<float>(img));
  expect_node_error([] { run_op("DepthToSpace", {iota_f32({1, 3, 1, 1})}, attrs({{"blocksize", int64_t(2)}})); },
                    "DepthToSpace", "divisible");
}

// Shape parameters that are graph inputs (not constants) leave the dims they
// decide unknown at build time instead of failing; run time fills them in.
TEST(ShapeOps, ValueDependentDimsUnknownAtBuild) {
  Described x{DType::f32, {4, 6}};
  auto t = infer_build("Split", {x, Described{DType::i64, {2}}}, attrs({{"axis", int64_t(1)}}), 2);
  EXPECT_EQ(t[0].shape, (Shape{4, -1}));
  t = infer_build("Pad", {x, Described{DType::i64, {4}}});
  EXPECT_EQ(t[0].shape, (Shape{-1, -1}));
  t = infer_build("Tile", {x, Described{DType::i64, {2}}});
  EXPECT_EQ(t[0].shape, (Shape{-1, -1}));
  t = infer_build("Expand", {x, Described{DType::i64, {3}}});
  EXPECT_EQ(t[0].shape, (Shape{-1, -1, -1}));
  t = infer_build("Unsqueeze", {x, Described{DType::i64, {-1}}});
  EXPECT_FALSE(t[0].rank_known);
  t = infer_build("Squeeze", {Described{DType::f32, {1, 6}}, Described{DType::i64, {1}}});
  EXPECT_EQ(t[0].shape, (Shape{-1}));
  // Unknown input rank: every op still answers, with an unknown rank.
  Described any{DType::f32, {}, std::nullopt, false};
  EXPECT_FALSE(infer_build("Transpose", {any})[0].rank_known);
  EXPECT_EQ(infer_build("Flatten", {any})[0].shape, (Shape{-1, -1}));
  EXPECT_EQ(infer_build("Shape", {any})[0].shape, (Shape{-1}));
}
