// SkipLayerNormalization / SkipSimplifiedLayerNormalization (ops/skip_norm.cc)
// on the CPU: the sum as the unfused Adds compute it (in the compute type,
// rounded to the dtype after each), then the LayerNormalization and
// RMSNormalization references' own row code (norm_rows.h) on it, so a fused
// graph gives the unfused graph's bits.
#include "backend/cpu/kernels/norm_rows.h"
#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

// S = input + skip (+ bias), each Add rounded to `dtype`, in compute type C.
template <typename C>
Tensor skip_sum(const Tensor& x, const Tensor& skip, const Tensor* bias, DType dtype) {
  const int64_t n = x.dim(-1), sn = skip.numel();
  Tensor s = Tensor::empty(x.dtype(), x.shape());
  const C *px = x.data<C>(), *ps = skip.data<C>();
  C* out = s.data<C>();
  for (int64_t i = 0; i < x.numel(); ++i) out[i] = px[i] + ps[i % sn];
  s = s.cast(dtype).cast(x.dtype());
  if (bias) {
    out = s.data<C>();
    const C* pb = bias->data<C>();
    for (int64_t i = 0; i < s.numel(); ++i) out[i] = out[i] + pb[i % n];
    s = s.cast(dtype).cast(x.dtype());
  }
  return s;
}

void skip_norm(KernelContext& c, bool layer_norm) {
  const DType dt = c.input(0).dtype();
  Tensor x = as_compute(c.input(0)), skip = as_compute(c.input(1));
  const size_t bias_at = layer_norm ? 4 : 3;
  const int64_t n = x.rank() ? x.dim(-1) : 0, rows = n ? x.numel() / n : 0;
  if (n == 0 || skip.numel() == 0 || x.numel() % skip.numel() || skip.numel() % n)
    c.error("skip ", to_string(skip.shape()), " does not repeat over input ", to_string(x.shape()));
  auto param = [&](size_t i) {
    if (!c.has_input(i)) return Tensor();
    Tensor t = c.input(i).cast(DType::f64);
    if (t.numel() != n) c.error("input ", i, " ", to_string(t.shape()), " is not [", n, "]");
    return t;
  };
  const Tensor gamma = param(2), beta = layer_norm ? param(3) : Tensor();
  const bool has_bias = c.has_input(bias_at);
  const Tensor bias_in = has_bias ? as_compute(c.input(bias_at)) : Tensor();
  if (has_bias && bias_in.numel() != n) c.error("bias ", to_string(bias_in.shape()), " is not [", n, "]");
  const double eps = c.attrs().get_float("epsilon", 1e-12f);
  Tensor s, y = Tensor::empty(x.dtype(), x.shape());
  auto run = [&]<typename C>() {
    s = skip_sum<C>(x, skip, has_bias ? &bias_in : nullptr, dt);
    if (layer_norm)
      layer_norm_rows(s.data<C>(), gamma.data<double>(), n, c.has_input(3) ? beta.data<double>() : nullptr, n, y.data<C>(),
                      nullptr, nullptr, rows, n, eps);
    else
      rms_norm_rows(s.data<C>(), gamma.data<double>(), n, y.data<C>(), rows, n, eps);
  };
  if (x.dtype() == DType::f32) run.template operator()<float>();
  else if (x.dtype() == DType::f64) run.template operator()<double>();
  else c.error("dtype ", dtype_name(dt), " is not supported");
  c.set_output(0, from_compute(y, dt));
  if (c.num_outputs() > 3 && c.node().outputs[3]) c.set_output(3, from_compute(s, dt));
}

void k_skip_layer_norm(KernelContext& c) { skip_norm(c, true); }
void k_skip_rms_norm(KernelContext& c) { skip_norm(c, false); }
TESSERA_CPU_KERNEL("SkipLayerNormalization", k_skip_layer_norm);
TESSERA_CPU_KERNEL("SkipSimplifiedLayerNormalization", k_skip_rms_norm);

}  // namespace
}  // namespace tessera::cpu
