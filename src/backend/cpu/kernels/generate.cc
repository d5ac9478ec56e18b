// CPU kernels for ops/generate.cc: tensors made from attributes and small
// inputs, and position-based rewrites (Trilu, CumSum).
#include "backend/cpu/kernels/movement.h"
#include "backend/cpu/loops.h"
#include "ops/shape_rules.h"

namespace tessera::cpu {
namespace {
using rules::node_label;

void k_constant(KernelContext& c) { c.set_output(0, rules::constant_value(c.attrs(), node_label(c.node()))); }
TESSERA_CPU_KERNEL("Constant", k_constant);

void k_constant_of_shape(KernelContext& c) {
  Tensor& out = c.output(0);
  if (c.attrs().has("value")) fill_with(out, c.attrs().get_tensor("value"));
  else std::memset(out.raw(), 0, out.nbytes());
}
TESSERA_CPU_KERNEL("ConstantOfShape", k_constant_of_shape);

// Repeated addition in the output type, as ONNX's reference function (a Loop
// adding delta) and ONNX Runtime do; start + i*delta rounds differently.
void k_range(KernelContext& c) {
  Tensor start = as_compute(c.input(0)), delta = as_compute(c.input(2));
  Tensor out = Tensor::empty(start.dtype(), c.output_type(0).shape);
  visit_dtype(start.dtype(), [&]<typename T>() {
    T v = *start.data<T>(), d = *delta.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i, v = T(v + d)) out.data<T>()[i] = v;
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Range", k_range);

void k_eye_like(KernelContext& c) {
  Tensor& out = c.output(0);
  std::memset(out.raw(), 0, out.nbytes());
  Tensor one = scalar_like(out.dtype(), 1);
  int64_t k = c.attrs().get_int("k", 0), rows = out.dim(0), cols = out.dim(1);
  for (int64_t i = 0; i < rows; ++i)
    if (i + k >= 0 && i + k < cols) copy_element(one, 0, out, i * cols + i + k);
}
TESSERA_CPU_KERNEL("EyeLike", k_eye_like);

// out[o, d, i] = on if indices[o, i] (negatives wrap once) == d, else off.
void k_one_hot(KernelContext& c) {
  std::vector<int64_t> idx = c.input(0).to_i64_vector();
  const Tensor& values = c.input(2);
  Tensor& out = c.output(0);
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", -1), out.rank(), node_label(c.node())));
  int64_t depth = out.shape()[axis];
  AxisBlocks b = blocks_around(out.shape(), axis);
  for (int64_t o = 0; o < b.outer; ++o)
    for (int64_t d = 0; d < depth; ++d)
      for (int64_t i = 0; i < b.inner; ++i) {
        int64_t v = idx[size_t(o * b.inner + i)];
        if (v < 0) v += depth;
        copy_element(values, v == d ? 1 : 0, out, (o * depth + d) * b.inner + i);
      }
}
TESSERA_CPU_KERNEL("OneHot", k_one_hot);

// Keep j - i >= k (upper) or j - i <= k (lower) in every trailing matrix;
// all-zero bytes are zero in every dtype.
void k_trilu(KernelContext& c) {
  const Tensor& x = c.input(0);
  Tensor out = x.clone();
  bool upper = c.attrs().get_int("upper", 1) != 0;
  int64_t k = c.has_input(1) ? c.input(1).item_i64(0) : 0;
  int64_t rows = x.dim(-2), cols = x.dim(-1), mats = rows * cols != 0 ? x.numel() / (rows * cols) : 0;
  size_t es = dtype_size(x.dtype());
  char* p = static_cast<char*>(out.raw());
  for (int64_t m = 0; m < mats; ++m)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j)
        if (upper ? j - i < k : j - i > k) std::memset(p + size_t((m * rows + i) * cols + j) * es, 0, es);
  c.set_output(0, out);
}
TESSERA_CPU_KERNEL("Trilu", k_trilu);

// Running sum along the axis in the input's type (f16/bf16 in f32).
void k_cumsum(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  size_t axis = size_t(normalize_axis(c.input(1).item_i64(0), x.rank(), node_label(c.node())));
  bool exclusive = c.attrs().get_int("exclusive", 0) != 0, reverse = c.attrs().get_int("reverse", 0) != 0;
  Tensor out = Tensor::empty(x.dtype(), x.shape());
  int64_t n = x.shape()[axis];
  AxisBlocks b = blocks_around(x.shape(), axis);
  visit_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      c.error("CumSum on bool is not supported");
    } else {
      for (int64_t o = 0; o < b.outer; ++o)
        for (int64_t in = 0; in < b.inner; ++in) {
          T acc = T(0);
          for (int64_t s = 0; s < n; ++s) {
            int64_t at = o * n * b.inner + (reverse ? n - 1 - s : s) * b.inner + in;
            T v = x.data<T>()[at];
            if (!exclusive) acc = T(acc + v);
            out.data<T>()[at] = acc;
            if (exclusive) acc = T(acc + v);
          }
        }
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("CumSum", k_cumsum);

}  // namespace
}  // namespace tessera::cpu
