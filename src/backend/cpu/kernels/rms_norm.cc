// RMSNormalization (ops/rms_norm.cc): each row of the normalised dims is
// divided by its root mean square, accumulated in double so the reference
// stays below f32 rounding noise, then multiplied by scale (indexed j %
// numel(scale): the schema makes scale the trailing normalised dims); the row
// code is norm_rows.h.
#include "backend/cpu/kernels/norm_rows.h"
#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

void k_rms_norm(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  int64_t axis = normalize_axis(c.attrs().get_int("axis", -1), x.rank(), c.node().name);
  int64_t rows = 1;
  for (int64_t i = 0; i < axis; ++i) rows *= x.dim(i);
  int64_t n = rows ? x.numel() / rows : 0;
  Tensor scale = c.input(1).cast(DType::f64);
  if (scale.numel() == 0 || n % scale.numel()) c.error("scale ", to_string(scale.shape()), " does not broadcast over the normalised dims");
  double eps = c.attrs().get_float("epsilon", 1e-5f);
  // Computed in X's compute type, rounded once into Y's dtype (scale's).
  Tensor y = Tensor::empty(x.dtype(), x.shape());
  if (x.dtype() == DType::f32) rms_norm_rows(x.data<float>(), scale.data<double>(), scale.numel(), y.data<float>(), rows, n, eps);
  else if (x.dtype() == DType::f64) rms_norm_rows(x.data<double>(), scale.data<double>(), scale.numel(), y.data<double>(), rows, n, eps);
  else c.error("dtype ", dtype_name(x.dtype()), " is not supported");
  DType out = c.output_type(0).dtype;
  c.set_output(0, y.dtype() == out ? y : y.cast(out));
}

}  // namespace

TESSERA_CPU_KERNEL("RMSNormalization", k_rms_norm);

}  // namespace tessera::cpu
