// Generating and position-based ops (ops/generate.cc) and Einsum
// (ops/einsum.cc) against hand-computed values.
#include "shape_test_util.h"

using namespace tessera;
using namespace tessera::test;

TEST(Constant, EveryValueKind) {
  auto out = run_op("Constant", {}, attrs({{"value", f32({2}, {1.5f, 2.5f})}}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1.5f, 2.5f}));
  out = run_op("Constant", {}, attrs({{"value_float", 3.0f}}));
  EXPECT_EQ(out[0].shape(), Shape{});
  EXPECT_EQ(out[0].item_f64(), 3.0);
  out = run_op("Constant", {}, attrs({{"value_ints", std::vector<int64_t>{4, 5}}}));
  EXPECT_EQ(out[0].dtype(), DType::i64);
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{4, 5}));
  out = run_op("Constant", {}, attrs({{"value_int", int64_t(7)}}));
  EXPECT_EQ(out[0].item_i64(), 7);
  out = run_op("Constant", {}, attrs({{"value_floats", std::vector<float>{1, 2, 3}}}));
  EXPECT_EQ(out[0].shape(), (Shape{3}));
  expect_node_error([] { run_op("Constant", {}, {}); }, "Constant", "exactly one");
}

TEST(ConstantOfShape, DefaultAndValue) {
  auto out = run_op("ConstantOfShape", {ints({2, 3})});
  EXPECT_EQ(out[0].dtype(), DType::f32);
  EXPECT_EQ(values<float>(out[0]), std::vector<float>(6, 0.0f));
  out = run_op("ConstantOfShape", {ints({2})}, attrs({{"value", i64({1}, {-4})}}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{-4, -4}));
  EXPECT_EQ(run_op("ConstantOfShape", {ints({})})[0].shape(), Shape{});
  auto t = infer_build("ConstantOfShape", {Described{DType::i64, {3}}}, attrs({{"value", i32({1}, {1})}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, -1, -1}));
  EXPECT_EQ(t[0].dtype, DType::i32);
}

TEST(Range, IntegerFloatNegative) {
  auto out = run_op("Range", {i64({}, {1}), i64({}, {10}), i64({}, {3})});
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{1, 4, 7}));
  out = run_op("Range", {f32({}, {1}), f32({}, {-1}), f32({}, {-0.5f})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 0.5f, 0, -0.5f}));
  out = run_op("Range", {i32({}, {5}), i32({}, {1}), i32({}, {2})});
  EXPECT_EQ(out[0].shape(), (Shape{0}));
  expect_node_error([] { run_op("Range", {i64({}, {0}), i64({}, {4}), i64({}, {0})}); }, "Range", "delta is 0");
  auto t = infer_build("Range", {Described{DType::f32, {}}, Described{DType::f32, {}}, Described{DType::f32, {}}});
  EXPECT_EQ(t[0].shape, (Shape{-1}));
}

TEST(EyeLike, OffsetAndDtype) {
  auto out = run_op("EyeLike", {Tensor::zeros(DType::f32, {3, 4})}, attrs({{"k", int64_t(1)}, {"dtype", int64_t(DType::i64)}}));
  EXPECT_EQ(out[0].dtype(), DType::i64);
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}));
  out = run_op("EyeLike", {Tensor::zeros(DType::i32, {2, 2})}, attrs({{"k", int64_t(-1)}}));
  EXPECT_EQ(values<int32_t>(out[0]), (std::vector<int32_t>{0, 0, 1, 0}));
}

TEST(OneHot, AxisAndNegativeIndices) {
  Tensor vals = f32({2}, {0, 5});
  auto out = run_op("OneHot", {i64({3}, {0, -1, 7}), i64({}, {3}), vals});
  EXPECT_EQ(out[0].shape(), (Shape{3, 3}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{5, 0, 0, 0, 0, 5, 0, 0, 0}));
  out = run_op("OneHot", {i64({2}, {1, 2}), f32({}, {3}), vals}, attrs({{"axis", int64_t(0)}}));
  EXPECT_EQ(out[0].shape(), (Shape{3, 2}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 0, 5, 0, 0, 5}));
}

TEST(Trilu, UpperLowerWithK) {
  Tensor x = f32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  EXPECT_EQ(values<float>(run_op("Trilu", {x})[0]), (std::vector<float>{1, 2, 3, 0, 5, 6, 0, 0, 9}));
  auto out = run_op("Trilu", {x, i64({}, {-1})}, attrs({{"upper", int64_t(0)}}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 0, 0, 4, 0, 0, 7, 8, 0}));
  out = run_op("Trilu", {x, i64({}, {1})});
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{0, 2, 3, 0, 0, 6, 0, 0, 0}));
}

TEST(CumSum, ExclusiveReverse) {
  Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(values<float>(run_op("CumSum", {x, i64({}, {1})})[0]), (std::vector<float>{1, 3, 6, 4, 9, 15}));
  auto out = run_op("CumSum", {x, i32({}, {-1})}, attrs({{"exclusive", int64_t(1)}, {"reverse", int64_t(1)}}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{5, 3, 0, 11, 6, 0}));
  out = run_op("CumSum", {i64({2, 2}, {1, 2, 3, 4}), i64({}, {0})}, attrs({{"exclusive", int64_t(1)}}));
  EXPECT_EQ(values<int64_t>(out[0]), (std::vector<int64_t>{0, 0, 1, 2}));
}

TEST(Einsum, MatmulOuterAndImplicit) {
  Tensor a = iota_f32({2, 3}), b = iota_f32({3, 2});
  auto eq = [](const char* e) { return attrs({{"equation", std::string(e)}}); };
  auto out = run_op("Einsum", {a, b}, eq("ij,jk->ik"));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{10, 13, 28, 40}));
  EXPECT_EQ(values<float>(run_op("Einsum", {a, b}, eq("ij,jk"))[0]), (std::vector<float>{10, 13, 28, 40}));
  out = run_op("Einsum", {f32({2}, {1, 2}), f32({3}, {1, 10, 100})}, eq("i,j->ij"));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 10, 100, 2, 20, 200}));
  EXPECT_EQ(values<float>(run_op("Einsum", {iota_f32({3, 3})}, eq("ii->i"))[0]), (std::vector<float>{0, 4, 8}));
  EXPECT_EQ(values<float>(run_op("Einsum", {iota_f32({3, 3})}, eq("ii"))[0]), (std::vector<float>{12}));
  EXPECT_EQ(values<float>(run_op("Einsum", {a}, eq("ij->ji"))[0]), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  expect_node_error([&] { run_op("Einsum", {a, a}, eq("ij,jk->ik")); }, "Einsum", "extents");
}

TEST(Einsum, AttentionScoresAgainstLoops) {
  Tensor q = iota_f32({2, 2, 3, 4}), k = iota_f32({2, 2, 5, 4});
  auto out = run_op("Einsum", {q, k}, attrs({{"equation", std::string("bhqd,bhkd->bhqk")}}));
  ASSERT_EQ(out[0].shape(), (Shape{2, 2, 3, 5}));
  const float *pq = q.data<float>(), *pk = k.data<float>(), *po = out[0].data<float>();
  for (int bh = 0; bh < 4; ++bh)
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 5; ++j) {
        float s = 0;
        for (int d = 0; d < 4; ++d) s += pq[(bh * 3 + i) * 4 + d] * pk[(bh * 5 + j) * 4 + d];
        EXPECT_EQ(po[(bh * 3 + i) * 5 + j], s);
      }
}

TEST(Einsum, EllipsisBroadcastAndInference) {
  // "...ij,...jk->...ik" with batch dims [2] and [1] broadcasting to [2].
  Tensor a = iota_f32({2, 1, 2}), b = f32({1, 2, 1}, {1, 1});
  auto out = run_op("Einsum", {a, b}, attrs({{"equation", std::string("...ij,...jk->...ik")}}));
  EXPECT_EQ(out[0].shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(values<float>(out[0]), (std::vector<float>{1, 5}));
  auto t = infer_build("Einsum", {Described{DType::f32, {-1, 8, 16}}, Described{DType::f32, {-1, 16, 4}}},
                       attrs({{"equation", std::string("bij,bjk->bik")}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, 8, 4}));
  auto i = run_op("Einsum", {i64({2, 2}, {1, 2, 3, 4}), i64({2}, {1, 1})}, attrs({{"equation", std::string("ij,j->i")}}));
  EXPECT_EQ(values<int64_t>(i[0]), (std::vector<int64_t>{3, 7}));
}

TEST(Generate, ValueDependentDimsUnknownAtBuild) {
  auto t = infer_build("ConstantOfShape", {Described{DType::i64, {-1}}});
  EXPECT_FALSE(t[0].rank_known);
  t = infer_build("OneHot", {Described{DType::i64, {5}}, Described{DType::i64, {}}, Described{DType::f32, {2}}},
                  attrs({{"axis", int64_t(0)}}));
  EXPECT_EQ(t[0].shape, (Shape{-1, 5}));
  t = infer_build("Range", {Described{DType::i64, {}, i64({}, {0})}, Described{DType::i64, {}},
                            Described{DType::i64, {}, i64({}, {1})}});
  EXPECT_EQ(t[0].shape, (Shape{-1}));
  t = infer_build("Range", {Described{DType::i64, {}, i64({}, {0})}, Described{DType::i64, {}, i64({}, {7})},
                            Described{DType::i64, {}, i64({}, {2})}});
  EXPECT_EQ(t[0].shape, (Shape{4}));
}
