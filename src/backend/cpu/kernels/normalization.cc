// Softmax, LogSoftmax and LayerNormalization, accumulating in double so the
// reference stays below fp32 rounding noise.
#include <cmath>

#include "backend/cpu/kernels/norm_rows.h"
#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

// The tensor as [outer][n][inner] around `axis`.
struct Around {
  int64_t outer = 1, n = 1, inner = 1;
};
Around around(const Shape& s, int64_t axis) {
  Around a;
  for (int64_t i = 0; i < int64_t(s.size()); ++i) (i < axis ? a.outer : i == axis ? a.n : a.inner) *= s[size_t(i)];
  return a;
}

template <typename T>
void softmax_rows(const T* x, T* y, Around a, bool log) {
  std::vector<double> row(size_t(a.n));
  for (int64_t o = 0; o < a.outer; ++o)
    for (int64_t i = 0; i < a.inner; ++i) {
      const T* px = x + o * a.n * a.inner + i;
      T* py = y + o * a.n * a.inner + i;
      double mx = -INFINITY, sum = 0;
      for (int64_t j = 0; j < a.n; ++j) mx = std::max(mx, double(px[j * a.inner]));
      for (int64_t j = 0; j < a.n; ++j) sum += row[size_t(j)] = std::exp(double(px[j * a.inner]) - mx);
      for (int64_t j = 0; j < a.n; ++j)
        py[j * a.inner] = T(log ? double(px[j * a.inner]) - mx - std::log(sum) : row[size_t(j)] / sum);
    }
}

void k_softmax(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -1), x.rank(), c.node().name);
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  bool log = c.node().op == "LogSoftmax";
  if (x.dtype() == DType::f32) softmax_rows(x.data<float>(), y.data<float>(), around(x.shape(), axis), log);
  else if (x.dtype() == DType::f64) softmax_rows(x.data<double>(), y.data<double>(), around(x.shape(), axis), log);
  else c.error("dtype ", dtype_name(x.dtype()), " is not supported");
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Softmax", k_softmax);
TESSERA_CPU_KERNEL("LogSoftmax", k_softmax);

void k_layer_norm(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -1), x.rank(), c.node().name);
  Around a = around(x.shape(), axis);
  int64_t rows = a.outer, n = x.numel() / std::max<int64_t>(rows, 1);
  // Scale and bias broadcast to the normalised block [n]; read as doubles.
  Tensor scale = c.input(1).cast(DType::f64);
  if (n % std::max<int64_t>(scale.numel(), 1)) c.error("Scale ", to_string(scale.shape()), " does not broadcast over the normalised dims");
  Tensor bias = c.has_input(2) ? c.input(2).cast(DType::f64) : Tensor();
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  // Mean/InvStdDev are computed in f32 and converted if stash_type asks otherwise.
  Tensor mean = Tensor::empty(DType::f32, {rows}), inv = Tensor::empty(DType::f32, {rows});
  const double* pb = c.has_input(2) ? bias.data<double>() : nullptr;
  const double eps = c.attrs().get_float("epsilon", 1e-5f);
  auto run = [&]<typename T>() {
    layer_norm_rows(x.data<T>(), scale.data<double>(), scale.numel(), pb, pb ? bias.numel() : 1, y.data<T>(),
                    mean.data<float>(), inv.data<float>(), rows, n, eps);
  };
  if (x.dtype() == DType::f32) run.template operator()<float>();
  else if (x.dtype() == DType::f64) run.template operator()<double>();
  else c.error("dtype ", dtype_name(x.dtype()), " is not supported");
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
  for (size_t i = 1; i < c.num_outputs(); ++i)
    if (c.node().outputs[i])
      c.set_output(i, (i == 1 ? mean : inv).reshaped(c.output_type(i).shape).cast(c.output_type(i).dtype));
}
TESSERA_CPU_KERNEL("LayerNormalization", k_layer_norm);

}  // namespace
}  // namespace tessera::cpu
