// Shape ops: data movement that changes a tensor's shape or layout (Reshape,
// Transpose, Concat, Split, Slice, Squeeze/Unsqueeze, Expand, Flatten, Tile,
// Pad, DepthToSpace/SpaceToDepth) and the shape queries (Shape, Size).
// Kernels: backend/*/kernels/shape.*. Rules the kernels share: shape_rules.h.
//
// Targets given as inputs (Reshape's shape, Slice's starts, ...) may be unknown
// at build time; the output then has unknown dims (or an unknown rank) and is
// inferred exactly at run time, where every value is known.
#include <algorithm>

#include "ops/shape_rules.h"

namespace tessera {
namespace {
using namespace rules;

// Print a list of ints as given (to_string(Shape) would print -1 as "?").
std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

// Resolve Reshape's 0 (copy the input dim unless allowzero) and -1 (infer).
Shape reshape_target(const InferContext& c, const TensorType& in, const std::vector<int64_t>& target) {
  bool allowzero = c.attrs().get_int("allowzero", 0) != 0;
  Shape out = target;
  int64_t infer_at = -1, product = 1;
  bool unknown = !in.rank_known || !is_static(in.shape);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer_at >= 0) c.error("target shape ", ints_str(target), " has two -1");
      infer_at = int64_t(i);
      continue;
    }
    if (out[i] < -1) c.error("target shape ", ints_str(target), " has a negative dim");
    if (out[i] == 0 && !allowzero) {
      if (!in.rank_known) {
        out[i] = kUnknownDim;
        continue;
      }
      if (i >= in.shape.size()) c.error("target dim ", i, " is 0 (copy) but the input ", to_string(in.shape), " has no dim ", i);
      out[i] = in.shape[i];
    }
    if (out[i] < 0) unknown = true;
    else product *= out[i];
  }
  if (allowzero && infer_at >= 0 && product == 0) c.error("target shape ", ints_str(target), " has both 0 and -1 under allowzero");
  if (unknown) return out;  // the unknown dims can not be checked, nor -1 inferred
  int64_t total = numel(in.shape);
  if (infer_at >= 0) {
    if (product == 0 || total % product != 0)
      c.error("cannot reshape ", to_string(in.shape), " (", total, " elements) into ", ints_str(target));
    out[size_t(infer_at)] = total / product;
  } else if (product != total) {
    c.error("cannot reshape ", to_string(in.shape), " (", total, " elements) into ", ints_str(target));
  }
  return out;
}

std::vector<TensorType> reshape(const InferContext& c) {
  const TensorType& in = c.input(0);
  auto target = known_ints(c, 1);
  if (!target) {
    int64_t n = known_length(c, 1);
    return {n < 0 ? unknown_rank(in.dtype) : unknown_dims(in.dtype, n)};
  }
  return {{in.dtype, reshape_target(c, in, *target), true}};
}

std::vector<TensorType> transpose(const InferContext& c) {
  const TensorType& in = c.input(0);
  std::vector<int64_t> perm = c.attrs().get_ints("perm");
  if (!in.rank_known) return {perm.empty() ? unknown_rank(in.dtype) : unknown_dims(in.dtype, int64_t(perm.size()))};
  int64_t rank = int64_t(in.shape.size());
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  if (int64_t(perm.size()) != rank) c.error("perm ", ints_str(perm), " does not match input rank ", rank);
  perm = normalize_axes(perm, rank, node_label(c.node()));
  Shape out;
  for (int64_t p : perm) out.push_back(in.shape[size_t(p)]);
  return {{in.dtype, out, true}};
}

// Merge two extents of one dim that must agree (unknown takes the known one).
int64_t merge_dim(const InferContext& c, int64_t a, int64_t b, size_t dim) {
  if (a >= 0 && b >= 0 && a != b) c.error("inputs disagree on dim ", dim, " (", a, " vs ", b, ")");
  return a >= 0 ? a : b;
}

std::vector<TensorType> concat(const InferContext& c) {
  const TensorType* ranked = nullptr;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    if (c.input(i).dtype != c.input(0).dtype) c.error("input ", i, " is ", dtype_name(c.input(i).dtype), ", input 0 is ", dtype_name(c.input(0).dtype));
    if (!ranked && c.input(i).rank_known) ranked = &c.input(i);
  }
  DType dt = c.input(0).dtype;
  if (!ranked) return {unknown_rank(dt)};
  Shape out = ranked->shape;
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis"), int64_t(out.size()), node_label(c.node())));
  int64_t total = 0;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    const TensorType& t = c.input(i);
    if (!t.rank_known) {
      total = kUnknownDim;
      continue;
    }
    if (t.shape.size() != out.size()) c.error("input ", i, " has rank ", t.shape.size(), ", input 0 has rank ", out.size());
    for (size_t d = 0; d < out.size(); ++d)
      if (d != axis) out[d] = merge_dim(c, out[d], t.shape[d], d);
    total = (total < 0 || t.shape[axis] < 0) ? kUnknownDim : total + t.shape[axis];
  }
  out[axis] = total;
  return {{dt, out, true}};
}

std::vector<TensorType> split(const InferContext& c) {
  const TensorType& in = c.input(0);
  size_t n_out = c.node().outputs.size();
  if (!in.rank_known) return std::vector<TensorType>(n_out, unknown_rank(in.dtype));
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), int64_t(in.shape.size()), node_label(c.node())));
  std::vector<int64_t> sizes(n_out, kUnknownDim);
  if (!c.has_input(1) || c.value(1))
    sizes = split_sizes(in.shape[axis], n_out, known_ints(c, 1), c.attrs().get_int("num_outputs", 0), node_label(c.node()));
  std::vector<TensorType> outs;
  for (int64_t s : sizes) {
    outs.push_back({in.dtype, in.shape, true});
    outs.back().shape[axis] = s;
  }
  return outs;
}

std::vector<TensorType> slice(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  auto starts = known_ints(c, 1), ends = known_ints(c, 2), axes = known_ints(c, 3), steps = known_ints(c, 4);
  bool axes_ok = !c.has_input(3) || axes, steps_ok = !c.has_input(4) || steps;
  if (starts && ends && axes_ok && steps_ok) {
    SliceWindow w = slice_window(in.shape, *starts, *ends, axes.value_or(std::vector<int64_t>{}),
                                 steps.value_or(std::vector<int64_t>{}), node_label(c.node()));
    return {{in.dtype, w.out, true}};
  }
  TensorType out = in;
  if (!axes_ok || (!axes && !starts)) return {unknown_dims(in.dtype, int64_t(in.shape.size()))};
  std::vector<int64_t> sliced = axes ? *axes : std::vector<int64_t>{};
  if (!axes)  // default axes are 0..n-1 with n the length of starts
    for (int64_t i = 0; i < int64_t(starts->size()); ++i) sliced.push_back(i);
  for (int64_t a : normalize_axes(sliced, int64_t(in.shape.size()), node_label(c.node()))) out.shape[size_t(a)] = kUnknownDim;
  return {out};
}

std::vector<TensorType> unsqueeze(const InferContext& c) {
  const TensorType& in = c.input(0);
  auto axes = known_ints(c, 1);
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  int64_t rank = int64_t(in.shape.size());
  if (!axes) {
    int64_t n = known_length(c, 1);
    return {n < 0 ? unknown_rank(in.dtype) : unknown_dims(in.dtype, rank + n)};
  }
  int64_t out_rank = rank + int64_t(axes->size());
  std::vector<bool> inserted(size_t(out_rank), false);
  for (int64_t a : normalize_axes(*axes, out_rank, node_label(c.node()))) inserted[size_t(a)] = true;
  Shape out;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) out.push_back(inserted[size_t(i)] ? 1 : in.shape[next++]);
  return {{in.dtype, out, true}};
}

std::vector<TensorType> squeeze(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  int64_t rank = int64_t(in.shape.size());
  auto axes = known_ints(c, 1);
  if (c.has_input(1) && !axes) {
    int64_t n = known_length(c, 1);
    return {n <= 0 ? unknown_rank(in.dtype) : unknown_dims(in.dtype, rank - n)};
  }
  Shape out;
  // No axes, or empty ones, drop every 1: ONNX Runtime (the oracle) reads empty
  // axes so, though ONNX's own shape inference takes them as a no-op.
  if (!axes || axes->empty()) {
    if (!is_static(in.shape)) return {unknown_rank(in.dtype)};  // an unknown dim may be 1
    for (int64_t d : in.shape)
      if (d != 1) out.push_back(d);
    return {{in.dtype, out, true}};
  }
  std::vector<bool> drop(size_t(rank), false);
  for (int64_t a : normalize_axes(*axes, rank, node_label(c.node()))) {
    if (in.shape[size_t(a)] > 1 || in.shape[size_t(a)] == 0) c.error("cannot squeeze axis ", a, " of extent ", in.shape[size_t(a)]);
    drop[size_t(a)] = true;
  }
  for (int64_t i = 0; i < rank; ++i)
    if (!drop[size_t(i)]) out.push_back(in.shape[size_t(i)]);
  return {{in.dtype, out, true}};
}

std::vector<TensorType> expand(const InferContext& c) {
  const TensorType& in = c.input(0);
  auto target = known_ints(c, 1);
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  if (!target) {
    int64_t n = known_length(c, 1);
    return {n < 0 ? unknown_rank(in.dtype) : unknown_dims(in.dtype, std::max<int64_t>(n, int64_t(in.shape.size())))};
  }
  for (int64_t d : *target)
    if (d < 0) c.error("target shape ", ints_str(*target), " has a negative dim");
  return {{in.dtype, broadcast_shapes(in.shape, *target, node_label(c.node())), true}};
}

int64_t product_or_unknown(const Shape& s, size_t from, size_t to) {
  int64_t p = 1;
  for (size_t i = from; i < to; ++i) {
    if (s[i] == 0) return 0;
    if (s[i] < 0) p = kUnknownDim;
    else if (p >= 0) p *= s[i];
  }
  return p;
}

std::vector<TensorType> flatten(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_dims(in.dtype, 2)};
  size_t rank = in.shape.size();
  // axis lies in [-rank, rank]: it may equal the rank (everything goes to the outer dim).
  int64_t a = c.attrs().get_int("axis", 1);
  if (a < -int64_t(rank) || a > int64_t(rank)) c.error("axis ", a, " is out of range for rank ", rank);
  size_t axis = size_t(a < 0 ? a + int64_t(rank) : a);
  return {{in.dtype, {product_or_unknown(in.shape, 0, axis), product_or_unknown(in.shape, axis, rank)}, true}};
}

std::vector<TensorType> tile(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  auto reps = known_ints(c, 1);
  if (!reps) return {unknown_dims(in.dtype, int64_t(in.shape.size()))};
  if (reps->size() != in.shape.size()) c.error("repeats has ", reps->size(), " values for input rank ", in.shape.size());
  Shape out = in.shape;
  for (size_t i = 0; i < out.size(); ++i) {
    if ((*reps)[i] < 0) c.error("repeats ", ints_str(*reps), " has a negative value");
    out[i] = (*reps)[i] == 0 ? 0 : (out[i] < 0 ? kUnknownDim : out[i] * (*reps)[i]);
  }
  return {{in.dtype, out, true}};
}

std::vector<TensorType> pad(const InferContext& c) {
  const TensorType& in = c.input(0);
  std::string mode = c.attrs().get_string("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap") c.error("unknown mode '", mode, "'");
  if (!in.rank_known) return {unknown_rank(in.dtype)};
  int64_t rank = int64_t(in.shape.size());
  auto pads = known_ints(c, 1), axes = known_ints(c, 3);
  if (!pads || (c.has_input(3) && !axes)) return {unknown_dims(in.dtype, rank)};
  PadAmounts p = pad_amounts(rank, *pads, axes.value_or(std::vector<int64_t>{}), node_label(c.node()));
  Shape out = in.shape;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] < 0) continue;
    out[i] += p.begin[i] + p.end[i];
    if (out[i] < 0) c.error("pads ", ints_str(*pads), " remove more than dim ", i, " holds (", in.shape[i], ")");
    if (mode != "constant" && in.shape[i] == 0 && out[i] > 0) c.error("mode '", mode, "' cannot pad the empty dim ", i);
  }
  return {{in.dtype, out, true}};
}

std::vector<TensorType> shape_of(const InferContext& c) {
  const TensorType& in = c.input(0);
  if (!in.rank_known) return {unknown_dims(DType::i64, 1)};
  int64_t rank = int64_t(in.shape.size());
  auto clamp = [&](int64_t v) { return std::clamp<int64_t>(v < 0 ? v + rank : v, 0, rank); };
  int64_t start = clamp(c.attrs().get_int("start", 0)), end = clamp(c.attrs().get_int("end", rank));
  return {{DType::i64, {std::max<int64_t>(end - start, 0)}, true}};
}

std::vector<TensorType> size_of(const InferContext& c) { return {{DType::i64, {}, true}}; }

// DepthToSpace [N,C,H,W] -> [N,C/b²,H*b,W*b]; SpaceToDepth the reverse.
std::vector<TensorType> depth_space(const InferContext& c) {
  const TensorType& in = c.input(0);
  int64_t b = c.attrs().get_int("blocksize");
  if (b <= 0) c.error("blocksize ", b, " must be positive");
  if (!in.rank_known) return {unknown_dims(in.dtype, 4)};
  if (in.shape.size() != 4) c.error("input must be 4-D [N,C,H,W], got ", to_string(in.shape));
  Shape s = in.shape, out = s;
  auto mul = [](int64_t d, int64_t k) { return d < 0 ? kUnknownDim : d * k; };
  auto div = [&](int64_t d, int64_t k, const char* name) {
    if (d >= 0 && d % k != 0) c.error(name, " = ", d, " is not divisible by ", k);
    return d < 0 ? kUnknownDim : d / k;
  };
  if (c.node().op == "DepthToSpace") {
    std::string mode = c.attrs().get_string("mode", "DCR");
    if (mode != "DCR" && mode != "CRD") c.error("unknown mode '", mode, "'");
    out = {s[0], div(s[1], b * b, "C"), mul(s[2], b), mul(s[3], b)};
  } else {
    out = {s[0], mul(s[1], b * b), div(s[2], b, "H"), div(s[3], b, "W")};
  }
  return {{in.dtype, out, true}};
}

struct Registrar {
  Registrar() {
    OpRegistry::add({"Reshape", 2, 2, 1, 1, reshape});
    OpRegistry::add({"Transpose", 1, 1, 1, 1, transpose});
    OpRegistry::add({"Concat", 1, 1 << 16, 1, 1, concat});
    OpRegistry::add({"Split", 1, 2, 1, 1 << 16, split});
    OpRegistry::add({"Slice", 3, 5, 1, 1, slice});
    OpRegistry::add({"Unsqueeze", 2, 2, 1, 1, unsqueeze});
    OpRegistry::add({"Squeeze", 1, 2, 1, 1, squeeze});
    OpRegistry::add({"Expand", 2, 2, 1, 1, expand});
    OpRegistry::add({"Flatten", 1, 1, 1, 1, flatten});
    OpRegistry::add({"Tile", 2, 2, 1, 1, tile});
    OpRegistry::add({"Pad", 2, 4, 1, 1, pad});
    OpRegistry::add({"Shape", 1, 1, 1, 1, shape_of});
    OpRegistry::add({"Size", 1, 1, 1, 1, size_of});
    OpRegistry::add({"DepthToSpace", 1, 1, 1, 1, depth_space});
    OpRegistry::add({"SpaceToDepth", 1, 1, 1, 1, depth_space});
  }
} registrar;

}  // namespace
}  // namespace tessera
