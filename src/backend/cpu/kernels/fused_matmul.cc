// FusedMatMul on the CPU: MatMul's own path (matmul_compute), then the bias
// and the activation in double on the compute-dtype result, rounded once to
// the output dtype — the same numbers as the unfused MatMul + Add + act chain
// up to that chain's extra rounding between ops.
#include <cmath>

#include "backend/cpu/kernels/linalg.h"
#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

double activate(const std::string& act, double x) {
  if (act == "relu") return x > 0 ? x : 0.0;
  if (act == "gelu") return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  if (act == "gelu_tanh") return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
  return x;
}

void k_fused_matmul(KernelContext& c) {
  std::string act = c.attrs().get_string("activation", "");
  Tensor out = matmul_compute(c);
  Tensor bias = c.has_input(2) ? as_compute(c.input(2)) : Tensor();
  int64_t n = c.input(1).dim(-1);
  if (bias.defined() && bias.numel() != n) c.error("bias has ", bias.numel(), " elements, N is ", n);
  visit_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_floating_point_v<T>) {
      T* po = out.data<T>();
      const T* pb = bias.defined() ? bias.data<T>() : nullptr;
      for (int64_t i = 0; i < out.numel(); ++i) {
        double x = double(po[i]);
        if (pb) x += double(pb[i % n]);
        po[i] = T(activate(act, x));
      }
    } else {
      c.error("needs a floating-point dtype, got ", dtype_name(out.dtype()));
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("FusedMatMul", k_fused_matmul);

}  // namespace
}  // namespace tessera::cpu
