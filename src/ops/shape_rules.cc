#include "ops/shape_rules.h"

#include <algorithm>

namespace tessera::rules {

std::string node_label(const Node& node) { return str("node '", node.name, "' (", node.op, ")"); }

std::optional<std::vector<int64_t>> known_ints(const InferContext& ctx, size_t i) {
  if (!ctx.has_input(i) || !ctx.value(i)) return std::nullopt;
  return ctx.value(i)->to_i64_vector();
}

int64_t known_length(const InferContext& ctx, size_t i) {
  const TensorType& t = ctx.input(i);
  if (!t.rank_known || t.shape.size() != 1) return kUnknownDim;
  return t.shape[0];
}

std::vector<int64_t> normalize_axes(const std::vector<int64_t>& axes, int64_t rank, const std::string& what) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    int64_t n = normalize_axis(a, rank, what);
    if (std::find(out.begin(), out.end(), n) != out.end()) fail(ErrorKind::Shape, what, ": axis ", a, " is repeated");
    out.push_back(n);
  }
  return out;
}

namespace {
// Clamp one sliced dimension; returns {start, count}.
std::pair<int64_t, int64_t> clamp_slice(int64_t d, int64_t start, int64_t end, int64_t step) {
  if (d == 0) return {0, 0};  // also keeps the clamp bounds below ordered
  if (start < 0) start += d;
  if (end < 0) end += d;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, d);
    end = std::clamp<int64_t>(end, 0, d);
    // 1 + (len-1)/step rather than ceil(len/step): no overflow for huge steps.
    return {start, end > start ? 1 + (end - start - 1) / step : 0};
  }
  start = std::clamp<int64_t>(start, 0, d - 1);
  end = std::clamp<int64_t>(end, -1, d - 1);
  return {start, start > end ? 1 + (start - end - 1) / -step : 0};
}
}  // namespace

SliceWindow slice_window(const Shape& in, const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                         std::vector<int64_t> axes, std::vector<int64_t> steps, const std::string& what) {
  size_t n = starts.size();
  int64_t rank = int64_t(in.size());
  if (ends.size() != n) fail(ErrorKind::Shape, what, ": starts has ", n, " values but ends has ", ends.size());
  if (axes.empty())
    for (size_t i = 0; i < n; ++i) axes.push_back(int64_t(i));
  if (steps.empty()) steps.assign(n, 1);
  if (axes.size() != n || steps.size() != n)
    fail(ErrorKind::Shape, what, ": starts, ends, axes and steps must have the same length (", n, ", ", ends.size(),
         ", ", axes.size(), ", ", steps.size(), ")");
  axes = normalize_axes(axes, rank, what);
  SliceWindow w{std::vector<int64_t>(in.size(), 0), std::vector<int64_t>(in.size(), 1), in};
  for (size_t i = 0; i < n; ++i) {
    size_t a = size_t(axes[i]);
    if (steps[i] == 0) fail(ErrorKind::Shape, what, ": step for axis ", axes[i], " is 0");
    w.step[a] = steps[i];
    if (in[a] < 0) {
      w.out[a] = kUnknownDim;
      continue;
    }
    auto [start, count] = clamp_slice(in[a], starts[i], ends[i], steps[i]);
    w.start[a] = start;
    w.out[a] = count;
  }
  return w;
}

std::vector<int64_t> split_sizes(int64_t dim, size_t n_out, const std::optional<std::vector<int64_t>>& split,
                                 int64_t num_outputs, const std::string& what) {
  int64_t n = int64_t(n_out);
  if (split) {
    if (split->size() != n_out)
      fail(ErrorKind::Shape, what, ": split has ", split->size(), " sizes for ", n_out, " outputs");
    int64_t sum = 0;
    for (int64_t s : *split) {
      if (s < 0) fail(ErrorKind::Shape, what, ": split size ", s, " is negative");
      sum += s;
    }
    if (dim >= 0 && sum != dim) fail(ErrorKind::Shape, what, ": split sizes add up to ", sum, ", the axis has ", dim);
    return *split;
  }
  if (num_outputs > 0 && num_outputs != n)
    fail(ErrorKind::Shape, what, ": num_outputs is ", num_outputs, " but the node has ", n, " outputs");
  if (dim < 0) return std::vector<int64_t>(n_out, kUnknownDim);
  if (num_outputs > 0) {
    int64_t chunk = (dim + n - 1) / n, last = dim - chunk * (n - 1);
    if (last < 0) fail(ErrorKind::Shape, what, ": cannot split ", dim, " into ", n, " chunks of ", chunk);
    std::vector<int64_t> sizes(n_out, chunk);
    sizes.back() = last;
    return sizes;
  }
  if (dim % n != 0) fail(ErrorKind::Shape, what, ": axis of extent ", dim, " does not split evenly into ", n, " outputs");
  return std::vector<int64_t>(n_out, dim / n);
}

PadAmounts pad_amounts(int64_t rank, const std::vector<int64_t>& pads, const std::vector<int64_t>& axes,
                       const std::string& what) {
  std::vector<int64_t> ax = axes;
  if (ax.empty())
    for (int64_t i = 0; i < rank; ++i) ax.push_back(i);
  ax = normalize_axes(ax, rank, what);
  size_t k = ax.size();
  if (pads.size() != 2 * k) fail(ErrorKind::Shape, what, ": pads has ", pads.size(), " values, expected ", 2 * k);
  PadAmounts p{std::vector<int64_t>(size_t(rank), 0), std::vector<int64_t>(size_t(rank), 0)};
  for (size_t i = 0; i < k; ++i) {
    p.begin[size_t(ax[i])] = pads[i];
    p.end[size_t(ax[i])] = pads[i + k];
  }
  return p;
}

Tensor constant_value(const Attributes& attrs, const std::string& what) {
  const char* kinds[] = {"value", "value_float", "value_floats", "value_int", "value_ints"};
  int found = 0;
  for (const char* k : kinds) found += attrs.has(k) ? 1 : 0;
  if (found != 1) {
    if (attrs.has("sparse_value") || attrs.has("value_string") || attrs.has("value_strings"))
      fail(ErrorKind::Unsupported, what, ": sparse and string constants are not supported");
    fail(ErrorKind::Shape, what, ": exactly one of value, value_float(s), value_int(s) must be set");
  }
  if (attrs.has("value")) return attrs.get_tensor("value");
  if (attrs.has("value_float")) return Tensor::from<float>(DType::f32, {}, {attrs.get_float("value_float", 0)});
  if (attrs.has("value_int")) return Tensor::scalar_i64(attrs.get_int("value_int"));
  if (attrs.has("value_ints")) return Tensor::vector_i64(attrs.get_ints("value_ints"));
  std::vector<float> f = attrs.get_floats("value_floats");
  return Tensor::from<float>(DType::f32, {int64_t(f.size())}, f);
}

}  // namespace tessera::rules
