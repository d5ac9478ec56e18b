// FusedMatMul on the CPU: MatMul's own path (matmul_compute; with trans_b a
// BLAS call on B as stored, [N, K]), then the bias and the activation in
// double on the compute-dtype result (then the residual), rounded once to the
// output dtype — the same numbers as the unfused MatMul/Gemm + Add + act
// (+ Add) chain up to that chain's extra rounding between ops.
#include <cblas.h>

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

// A[..., K] @ B[N, K]^T in the compute dtype (A's leading dims fold into rows).
Tensor matmul_trans_b(KernelContext& c) {
  Tensor a = as_compute(c.input(0)), b = as_compute(c.input(1));
  if (b.rank() != 2) c.error("trans_b needs a 2-D B, got ", to_string(b.shape()));
  int64_t k = a.dim(-1), n = b.dim(0);
  if (b.dim(1) != k) c.error("A has K = ", k, ", B [N, K] has K = ", b.dim(1));
  int64_t m = k == 0 ? 0 : a.numel() / k;
  Tensor out = Tensor::zeros(a.dtype(), c.output_type(0).shape);
  if (m == 0 || n == 0 || k == 0) return out;
  auto M = blasint(m), N = blasint(n), K = blasint(k);
  if (a.dtype() == DType::f32)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, a.data<float>(), K, b.data<float>(), K, 0.0f,
                out.data<float>(), N);
  else if (a.dtype() == DType::f64)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0, a.data<double>(), K, b.data<double>(), K, 0.0,
                out.data<double>(), N);
  else
    c.error("needs a floating-point dtype, got ", dtype_name(a.dtype()));
  return out;
}

void k_fused_matmul(KernelContext& c) {
  std::string act = c.attrs().get_string("activation", "");
  bool trans_b = c.attrs().get_int("trans_b", 0) != 0;
  Tensor out = trans_b ? matmul_trans_b(c) : matmul_compute(c);
  Tensor bias = c.has_input(2) ? as_compute(c.input(2)) : Tensor();
  Tensor residual = c.has_input(3) ? as_compute(c.input(3)) : Tensor();
  if (residual.defined() && residual.numel() != out.numel())
    c.error("residual ", to_string(residual.shape()), " is not the output's shape ", to_string(out.shape()));
  int64_t n = trans_b ? c.input(1).dim(0) : c.input(1).dim(-1);
  if (bias.defined() && bias.numel() != n) c.error("bias has ", bias.numel(), " elements, N is ", n);
  visit_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_floating_point_v<T>) {
      T* po = out.data<T>();
      const T* pb = bias.defined() ? bias.data<T>() : nullptr;
      const T* pr = residual.defined() ? residual.data<T>() : nullptr;
      for (int64_t i = 0; i < out.numel(); ++i) {
        double x = double(po[i]);
        if (pb) x += double(pb[i % n]);
        x = activate(act, x);
        if (pr) x += double(pr[i]);
        po[i] = T(x);
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
