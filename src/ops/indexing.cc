// Indexing ops: read or write elements chosen by index tensors (Gather,
// GatherElements, GatherND, ScatterND, ScatterElements), find them (NonZero,
// TopK, ArgMax, ArgMin). Index inputs may be int32 or int64; index outputs
// are int64 as in ONNX. Kernels: backend/*/kernels/indexing.*.
#include "ops/shape_rules.h"

namespace tessera {
namespace {
using namespace rules;

void check_index_dtype(const InferContext& c, size_t i) {
  DType t = c.input(i).dtype;
  if (t != DType::i64 && t != DType::i32) c.error("input ", i, " holds indices and must be int32 or int64, got ", dtype_name(t));
}

std::vector<TensorType> gather(const InferContext& c) {
  const TensorType &data = c.input(0), &idx = c.input(1);
  check_index_dtype(c, 1);
  if (!data.rank_known || !idx.rank_known) return {unknown_rank(data.dtype)};
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), int64_t(data.shape.size()), node_label(c.node())));
  Shape out(data.shape.begin(), data.shape.begin() + int64_t(axis));
  out.insert(out.end(), idx.shape.begin(), idx.shape.end());
  out.insert(out.end(), data.shape.begin() + int64_t(axis) + 1, data.shape.end());
  return {{data.dtype, out, true}};
}

// GatherElements/ScatterElements: indices of the data's rank, no larger than
// the data off the axis (the kernels rely on it to stay in bounds).
void check_element_indices(const InferContext& c, const TensorType& data, const TensorType& idx) {
  if (!data.rank_known || !idx.rank_known) return;
  if (data.shape.size() != idx.shape.size()) c.error("indices have rank ", idx.shape.size(), ", data has rank ", data.shape.size());
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), int64_t(data.shape.size()), node_label(c.node())));
  for (size_t d = 0; d < data.shape.size(); ++d)
    if (d != axis && data.shape[d] >= 0 && idx.shape[d] > data.shape[d])
      c.error("indices ", to_string(idx.shape), " exceed data ", to_string(data.shape), " in dim ", d);
}

std::vector<TensorType> gather_elements(const InferContext& c) {
  const TensorType &data = c.input(0), &idx = c.input(1);
  check_index_dtype(c, 1);
  check_element_indices(c, data, idx);
  return {{data.dtype, idx.shape, idx.rank_known}};
}

// GatherND: output = indices.shape[:-1] + data.shape[batch_dims + k:], k = indices.shape[-1].
std::vector<TensorType> gather_nd(const InferContext& c) {
  const TensorType &data = c.input(0), &idx = c.input(1);
  check_index_dtype(c, 1);
  int64_t b = c.attrs().get_int("batch_dims", 0);
  if (!data.rank_known || !idx.rank_known || idx.shape.empty() || idx.shape.back() < 0) {
    if (idx.rank_known && idx.shape.empty()) c.error("indices must have rank >= 1");
    return {unknown_rank(data.dtype)};
  }
  int64_t r = int64_t(data.shape.size()), q = int64_t(idx.shape.size()), k = idx.shape.back();
  if (b < 0 || b >= std::min(r, q)) c.error("batch_dims ", b, " must be below both ranks (data ", r, ", indices ", q, ")");
  if (k < 1 || k > r - b) c.error("index tuples have length ", k, ", data has ", r - b, " dims after the batch dims");
  for (int64_t i = 0; i < b; ++i)
    if (data.shape[size_t(i)] >= 0 && idx.shape[size_t(i)] >= 0 && data.shape[size_t(i)] != idx.shape[size_t(i)])
      c.error("batch dim ", i, " differs: data ", data.shape[size_t(i)], ", indices ", idx.shape[size_t(i)]);
  Shape out(idx.shape.begin(), idx.shape.end() - 1);
  out.insert(out.end(), data.shape.begin() + b + k, data.shape.end());
  return {{data.dtype, out, true}};
}

void check_reduction(const InferContext& c) {
  std::string r = c.attrs().get_string("reduction", "none");
  if (r != "none" && r != "add" && r != "mul" && r != "max" && r != "min") c.error("unknown reduction '", r, "'");
}

std::vector<TensorType> scatter_nd(const InferContext& c) {
  check_index_dtype(c, 1);
  check_reduction(c);
  const TensorType &data = c.input(0), &idx = c.input(1), &upd = c.input(2);
  if (upd.dtype != data.dtype) c.error("updates are ", dtype_name(upd.dtype), ", data is ", dtype_name(data.dtype));
  if (idx.rank_known && idx.shape.empty()) c.error("indices must have rank >= 1");
  if (data.rank_known && idx.rank_known && upd.rank_known && idx.shape.back() >= 0) {
    // updates.shape must be indices.shape[:-1] + data.shape[k:]
    int64_t k = idx.shape.back();
    if (k > int64_t(data.shape.size())) c.error("index tuples have length ", k, ", data has rank ", data.shape.size());
    Shape want(idx.shape.begin(), idx.shape.end() - 1);
    want.insert(want.end(), data.shape.begin() + k, data.shape.end());
    bool ok = want.size() == upd.shape.size();
    for (size_t i = 0; ok && i < want.size(); ++i) ok = want[i] < 0 || upd.shape[i] < 0 || want[i] == upd.shape[i];
    if (!ok) c.error("updates have shape ", to_string(upd.shape), ", expected ", to_string(want));
  }
  return {data};
}

std::vector<TensorType> scatter_elements(const InferContext& c) {
  check_index_dtype(c, 1);
  check_reduction(c);
  const TensorType &data = c.input(0), &idx = c.input(1), &upd = c.input(2);
  if (upd.dtype != data.dtype) c.error("updates are ", dtype_name(upd.dtype), ", data is ", dtype_name(data.dtype));
  if (idx.rank_known && upd.rank_known && idx.shape != upd.shape && is_static(idx.shape) && is_static(upd.shape))
    c.error("indices ", to_string(idx.shape), " and updates ", to_string(upd.shape), " must have the same shape");
  check_element_indices(c, data, idx);
  return {data};
}

// NonZero's count of elements is data: known only when the input value is.
std::vector<TensorType> nonzero(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_dims(DType::i64, 2)};
  // A scalar counts as a 1-element vector, as in ONNX Runtime.
  int64_t rank = std::max<int64_t>(int64_t(in.shape.size()), 1), count = kUnknownDim;
  if (const Tensor* v = c.value(0)) {
    count = 0;
    for (int64_t i = 0; i < v->numel(); ++i) count += v->item_f64(i) != 0 ? 1 : 0;
  }
  return {{DType::i64, {rank, count}, true}};
}

std::vector<TensorType> topk(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (c.input(1).dtype != DType::i64) c.error("K must be int64, got ", dtype_name(c.input(1).dtype));
  if (!in.rank_known) return {unknown_rank(in.dtype), unknown_rank(DType::i64)};
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", -1), int64_t(in.shape.size()), node_label(c.node())));
  Shape out = in.shape;
  out[axis] = kUnknownDim;
  if (const Tensor* kv = c.value(1)) {
    if (kv->numel() != 1) c.error("K must hold one value, it holds ", kv->numel());
    int64_t k = kv->item_i64(0);
    if (k < 0 || (in.shape[axis] >= 0 && k > in.shape[axis]))
      c.error("K = ", k, " is out of range for axis ", axis, " of extent ", in.shape[axis]);
    out[axis] = k;
  }
  return {{in.dtype, out, true}, {DType::i64, out, true}};
}

std::vector<TensorType> arg_reduce(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_rank(DType::i64)};
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), int64_t(in.shape.size()), node_label(c.node())));
  if (in.shape[axis] == 0) c.error("cannot reduce the empty axis ", axis);
  Shape out = in.shape;
  if (c.attrs().get_int("keepdims", 1) != 0) out[axis] = 1;
  else out.erase(out.begin() + int64_t(axis));
  return {{DType::i64, out, true}};
}

struct Registrar {
  Registrar() {
    OpRegistry::add({"Gather", 2, 2, 1, 1, gather});
    OpRegistry::add({"GatherElements", 2, 2, 1, 1, gather_elements});
    OpRegistry::add({"GatherND", 2, 2, 1, 1, gather_nd});
    OpRegistry::add({"ScatterND", 3, 3, 1, 1, scatter_nd});
    OpRegistry::add({"ScatterElements", 3, 3, 1, 1, scatter_elements});
    OpRegistry::add({"NonZero", 1, 1, 1, 1, nonzero});
    OpRegistry::add({"TopK", 2, 2, 1, 2, topk});
    OpRegistry::add({"ArgMax", 1, 1, 1, 1, arg_reduce});
    OpRegistry::add({"ArgMin", 1, 1, 1, 1, arg_reduce});
  }
} registrar;

}  // namespace
}  // namespace tessera
