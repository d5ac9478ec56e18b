// CPU kernels for BatchNormalization (inference) and InstanceNormalization
// (ops/batchnorm.cc). Both become y = x * a[c] + b[c] per channel (or per
// plane); a and b, and InstanceNormalization's mean and variance, are computed
// in double, so the f32 output rounds once.
#include <cmath>

#include "backend/cpu/kernels/window.h"

namespace tessera::cpu {
namespace {

// y = x * a[i] + b[i] over `planes` runs of `inner` elements; run i uses pair i % a.size().
template <typename T>
void affine(const T* x, T* y, int64_t planes, int64_t inner, const std::vector<double>& a, const std::vector<double>& b) {
  for (int64_t p = 0; p < planes; ++p) {
    size_t k = size_t(p) % a.size();
    for (int64_t i = 0; i < inner; ++i) y[p * inner + i] = T(double(x[p * inner + i]) * a[k] + b[k]);
  }
}

void k_batch_norm(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  const Tensor &scale = c.input(1), &bias = c.input(2), &mean = c.input(3), &var = c.input(4);
  int64_t ch = x.dim(1), planes = x.dim(0) * ch, inner = planes ? x.numel() / planes : 0;
  double eps = c.attrs().get_float("epsilon", 1e-5f);
  std::vector<double> a(static_cast<size_t>(ch)), b(static_cast<size_t>(ch));
  for (int64_t k = 0; k < ch; ++k) {
    a[size_t(k)] = scale.item_f64(k) / std::sqrt(var.item_f64(k) + eps);
    b[size_t(k)] = bias.item_f64(k) - mean.item_f64(k) * a[size_t(k)];
  }
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  if (ch > 0) visit_float(c, x.dtype(), [&]<typename T>() { affine<T>(x.data<T>(), y.data<T>(), planes, inner, a, b); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("BatchNormalization", k_batch_norm);

// Mean and (population) variance of each plane, two-pass for accuracy.
template <typename T>
void plane_stats(const T* x, int64_t planes, int64_t inner, std::vector<double>& mean, std::vector<double>& var) {
  for (int64_t p = 0; p < planes; ++p) {
    const T* v = x + p * inner;
    double s = 0, ss = 0;
    for (int64_t i = 0; i < inner; ++i) s += double(v[i]);
    double m = s / double(inner);
    for (int64_t i = 0; i < inner; ++i) ss += (double(v[i]) - m) * (double(v[i]) - m);
    mean[size_t(p)] = m;
    var[size_t(p)] = ss / double(inner);
  }
}

void k_instance_norm(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  const Tensor &scale = c.input(1), &bias = c.input(2);
  int64_t ch = x.dim(1), planes = x.dim(0) * ch, inner = planes ? x.numel() / planes : 0;
  double eps = c.attrs().get_float("epsilon", 1e-5f);
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  if (planes > 0 && inner > 0)
    visit_float(c, x.dtype(), [&]<typename T>() {
      size_t n = static_cast<size_t>(planes);
      std::vector<double> mean(n), var(n), a(n), b(n);
      plane_stats<T>(x.data<T>(), planes, inner, mean, var);
      for (int64_t p = 0; p < planes; ++p) {
        a[size_t(p)] = scale.item_f64(p % ch) / std::sqrt(var[size_t(p)] + eps);
        b[size_t(p)] = bias.item_f64(p % ch) - mean[size_t(p)] * a[size_t(p)];
      }
      affine<T>(x.data<T>(), y.data<T>(), planes, inner, a, b);
    });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("InstanceNormalization", k_instance_norm);

}  // namespace
}  // namespace tessera::cpu
