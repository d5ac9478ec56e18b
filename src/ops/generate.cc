// Ops that make tensors from attributes and small inputs (Constant,
// ConstantOfShape, Range, EyeLike, OneHot) or rewrite one in place by
// position (Trilu, CumSum). Kernels: backend/*/kernels/generate.*.
#include <cmath>

#include "ops/shape_rules.h"

namespace tessera {
namespace {
using namespace rules;

std::vector<TensorType> constant(const InferContext& c) {
  Tensor v = constant_value(c.attrs(), node_label(c.node()));
  return {{v.dtype(), v.shape(), true}};
}

// The fill value's dtype decides the output's; float32 0 when absent.
DType fill_dtype(const Attributes& a) { return a.has("value") ? a.get_tensor("value").dtype() : DType::f32; }

std::vector<TensorType> constant_of_shape(const InferContext& c) {
  DType dt = fill_dtype(c.attrs());
  if (c.attrs().has("value") && c.attrs().get_tensor("value").numel() != 1) c.error("value must hold exactly one element");
  auto shape = known_ints(c, 0);
  if (!shape) {
    int64_t n = known_length(c, 0);
    return {n < 0 ? unknown_rank(dt) : unknown_dims(dt, n)};
  }
  for (int64_t d : *shape)
    if (d < 0) c.error("shape has a negative dim ", d);
  return {{dt, *shape, true}};
}

// Element count ceil((limit - start) / delta) as ONNX Runtime computes it:
// the difference in the input type, the division in double.
int64_t range_count(const InferContext& c, const Tensor& start, const Tensor& limit, const Tensor& delta) {
  DType t = start.dtype();
  double diff;
  if (t == DType::f32) diff = double(float(limit.item_f64()) - float(start.item_f64()));
  else if (is_float(t)) diff = limit.item_f64() - start.item_f64();
  else diff = double(limit.item_i64() - start.item_i64());
  double step = delta.item_f64();
  if (step == 0) c.error("delta is 0");
  double n = std::ceil(diff / step);
  return n > 0 ? int64_t(n) : 0;
}

std::vector<TensorType> range(const InferContext& c) {
  DType dt = c.input(0).dtype;
  for (size_t i = 0; i < 3; ++i) {
    if (c.input(i).dtype != dt) c.error("input ", i, " is ", dtype_name(c.input(i).dtype), ", start is ", dtype_name(dt));
    if (c.input(i).rank_known && is_static(c.input(i).shape) && numel(c.input(i).shape) != 1)
      c.error("input ", i, " must be a scalar");
  }
  if (dt == DType::boolean) c.error("bool is not a numeric type");
  if (!c.value(0) || !c.value(1) || !c.value(2)) return {unknown_dims(dt, 1)};
  return {{dt, {range_count(c, *c.value(0), *c.value(1), *c.value(2))}, true}};
}

std::vector<TensorType> eye_like(const InferContext& c) {
  const TensorType& in = c.input(0);
  DType dt = in.dtype;
  if (c.attrs().has("dtype")) {
    int64_t code = c.attrs().get_int("dtype");
    if (code < 0 || code > int64_t(DType::boolean)) c.error("dtype ", code, " is not a tessera dtype");
    dt = DType(code);
  }
  if (in.rank_known && in.shape.size() != 2) c.error("input must be 2-D, got ", to_string(in.shape));
  return {{dt, in.rank_known ? in.shape : Shape{kUnknownDim, kUnknownDim}, true}};
}

// OneHot inserts the depth dim at `axis` of the indices' shape.
std::vector<TensorType> one_hot(const InferContext& c) {
  const TensorType &idx = c.input(0), &values = c.input(2);
  if (values.rank_known && is_static(values.shape) && numel(values.shape) != 2)
    c.error("values must hold two elements [off, on], got shape ", to_string(values.shape));
  if (!idx.rank_known) return {unknown_rank(values.dtype)};
  int64_t rank = int64_t(idx.shape.size()) + 1;
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", -1), rank, node_label(c.node())));
  int64_t depth = kUnknownDim;
  if (const Tensor* d = c.value(1)) {
    if (d->numel() != 1) c.error("depth must hold one value");
    depth = int64_t(d->item_f64());  // non-integer depths are truncated, as ONNX says
    if (depth < 1) c.error("depth ", depth, " must be positive");
  }
  Shape out = idx.shape;
  out.insert(out.begin() + int64_t(axis), depth);
  return {{values.dtype, out, true}};
}

std::vector<TensorType> trilu(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (in.rank_known && in.shape.size() < 2) c.error("input must have rank >= 2, got ", to_string(in.shape));
  if (c.value(1) && c.value(1)->numel() != 1) c.error("k must hold one value");
  return {in};
}

std::vector<TensorType> cumsum(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (in.dtype == DType::boolean) c.error("bool is not a numeric type");
  if (const Tensor* axis = c.value(1)) {
    if (axis->numel() != 1) c.error("axis must hold one value");
    if (in.rank_known) normalize_axis(axis->item_i64(), int64_t(in.shape.size()), node_label(c.node()));
  }
  return {in};
}

struct Registrar {
  Registrar() {
    OpRegistry::add({"Constant", 0, 0, 1, 1, constant});
    OpRegistry::add({"ConstantOfShape", 1, 1, 1, 1, constant_of_shape});
    OpRegistry::add({"Range", 3, 3, 1, 1, range});
    OpRegistry::add({"EyeLike", 1, 1, 1, 1, eye_like});
    OpRegistry::add({"OneHot", 3, 3, 1, 1, one_hot});
    OpRegistry::add({"Trilu", 1, 2, 1, 1, trilu});
    OpRegistry::add({"CumSum", 2, 2, 1, 1, cumsum});
  }
} registrar;

}  // namespace
}  // namespace tessera
