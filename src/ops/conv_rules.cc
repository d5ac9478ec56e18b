#include "ops/conv_rules.h"

#include <algorithm>

namespace tessera::rules {
namespace {

enum class AutoPad { NotSet, SameUpper, SameLower, Valid };

AutoPad auto_pad_of(const Attributes& a, const std::string& what) {
  std::string s = a.get_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::NotSet;
  if (s == "SAME_UPPER") return AutoPad::SameUpper;
  if (s == "SAME_LOWER") return AutoPad::SameLower;
  if (s == "VALID") return AutoPad::Valid;
  fail(ErrorKind::InvalidArgument, what, ": auto_pad '", s, "' is not NOTSET, SAME_UPPER, SAME_LOWER or VALID");
}

std::string ints_str(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
  return s + "]";
}

// An INTS attribute with `n` values (all `fallback` when absent), each >= lo.
std::vector<int64_t> per_dim(const Attributes& a, const char* name, size_t n, int64_t fallback, int64_t lo,
                             const std::string& what) {
  if (!a.has(name)) return std::vector<int64_t>(n, fallback);
  std::vector<int64_t> v = a.get_ints(name);
  if (v.size() != n) fail(ErrorKind::Shape, what, ": ", name, " ", ints_str(v), " has ", v.size(), " values, expected ", n);
  for (int64_t x : v)
    if (x < lo) fail(ErrorKind::Shape, what, ": ", name, " ", ints_str(v), " has a value below ", lo);
  return v;
}

Window base_window(const Shape& in, const std::vector<int64_t>& kernel, const Attributes& a, const std::string& what) {
  size_t k = in.size();
  if (k == 0) fail(ErrorKind::Shape, what, ": the input has no spatial dims (expected [N, C, D1, ...])");
  if (kernel.size() != k)
    fail(ErrorKind::Shape, what, ": kernel ", ints_str(kernel), " has ", kernel.size(), " dims, the input has ", k, " spatial dims");
  for (int64_t x : kernel)
    if (x < 1) fail(ErrorKind::Shape, what, ": kernel ", ints_str(kernel), " has an extent below 1");
  Window w;
  w.in = in;
  w.kernel = kernel;
  w.stride = per_dim(a, "strides", k, 1, 1, what);
  w.dilation = per_dim(a, "dilations", k, 1, 1, what);
  std::vector<int64_t> pads = per_dim(a, "pads", 2 * k, 0, 0, what);
  w.pad_begin.assign(pads.begin(), pads.begin() + long(k));
  w.pad_end.assign(pads.begin() + long(k), pads.end());
  w.out.assign(k, kUnknownDim);
  return w;
}

// SAME_UPPER puts the odd padding element at the end, SAME_LOWER at the start.
void split_pad(Window& w, size_t i, int64_t total, bool extra_at_end) {
  w.pad_begin[i] = extra_at_end ? total / 2 : total - total / 2;
  w.pad_end[i] = total - w.pad_begin[i];
}

}  // namespace

Shape spatial_dims(const Shape& s) { return s.size() > 2 ? Shape(s.begin() + 2, s.end()) : Shape{}; }

Window sliding_window(const Shape& in, const std::vector<int64_t>& kernel, const Attributes& a, bool ceil_mode,
                      const std::string& what) {
  Window w = base_window(in, kernel, a, what);
  AutoPad ap = auto_pad_of(a, what);
  for (size_t i = 0; i < in.size(); ++i) {
    int64_t s = w.stride[i];
    if (ap == AutoPad::Valid) w.pad_begin[i] = w.pad_end[i] = 0;
    if (in[i] < 0) continue;  // output extent stays unknown
    if (ap == AutoPad::SameUpper || ap == AutoPad::SameLower) {
      // ceil_mode does not apply: SAME means ceil(in / stride) by definition.
      w.out[i] = (in[i] + s - 1) / s;
      split_pad(w, i, std::max<int64_t>(0, (w.out[i] - 1) * s + w.span(i) - in[i]), ap == AutoPad::SameUpper);
      continue;
    }
    int64_t room = in[i] + w.pad_begin[i] + w.pad_end[i] - w.span(i);
    if (room < 0)
      fail(ErrorKind::Shape, what, ": kernel extent ", w.span(i), " (kernel ", kernel[i], ", dilation ", w.dilation[i],
           ") is larger than the padded input ", in[i] + w.pad_begin[i] + w.pad_end[i], " along spatial dim ", i);
    w.out[i] = room / s + 1;
    if (ceil_mode && room % s != 0) {
      ++w.out[i];
      // A window starting in the trailing padding would see no input at all.
      if ((w.out[i] - 1) * s >= in[i] + w.pad_begin[i]) --w.out[i];
    }
  }
  return w;
}

Window transpose_window(const Shape& in, const std::vector<int64_t>& kernel, const Attributes& a,
                        const std::string& what) {
  Window w = base_window(in, kernel, a, what);
  size_t k = in.size();
  AutoPad ap = auto_pad_of(a, what);
  std::vector<int64_t> adj = per_dim(a, "output_padding", k, 0, 0, what);
  std::vector<int64_t> shape = a.get_ints("output_shape");
  if (shape.size() == k + 2) shape.erase(shape.begin(), shape.begin() + 2);  // given as [N, C, D1, ...]
  if (!shape.empty() && shape.size() != k)
    fail(ErrorKind::Shape, what, ": output_shape ", ints_str(shape), " does not match ", k, " spatial dims");
  bool same = ap == AutoPad::SameUpper || ap == AutoPad::SameLower;
  for (size_t i = 0; i < k; ++i) {
    if (!shape.empty()) w.out[i] = shape[i];
    if (ap == AutoPad::Valid) w.pad_begin[i] = w.pad_end[i] = 0;
    if (in[i] < 0) continue;
    int64_t full = w.stride[i] * (in[i] - 1) + adj[i] + w.span(i);  // output extent with no padding
    if (!shape.empty() || same) {
      // The padding that trims `full` down to the requested extent; never negative
      // (a larger request leaves the extra output elements at zero plus bias).
      int64_t want = shape.empty() ? in[i] * w.stride[i] : shape[i];
      int64_t total = std::max<int64_t>(0, full - want);
      split_pad(w, i, total, ap == AutoPad::SameUpper);
      w.out[i] = shape.empty() ? full - total : shape[i];
    } else {
      w.out[i] = full - w.pad_begin[i] - w.pad_end[i];
    }
    if (w.out[i] <= 0)
      fail(ErrorKind::Shape, what, ": output extent ", w.out[i], " along spatial dim ", i, " is not positive (pads ",
           w.pad_begin[i], "+", w.pad_end[i], " exceed the full extent ", full, ")");
  }
  return w;
}

}  // namespace tessera::rules
