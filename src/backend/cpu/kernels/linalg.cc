// MatMul and Gemm on the CPU: f32/f64 through OpenBLAS (fast enough for the
// tests' models), integers with a plain loop, f16/bf16 computed in f32.
#include <cblas.h>

#include "backend/cpu/kernels/linalg.h"
#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

// C[m,n] = alpha * op(A) op(B) + beta * C, row-major, leading dims from the transposes.
template <typename T>
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, const T* b, T beta, T* c) {
  auto TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
  blasint lda = blasint(ta ? m : k), ldb = blasint(tb ? k : n);
  if constexpr (std::is_same_v<T, float>) {
    cblas_sgemm(CblasRowMajor, TA, TB, blasint(m), blasint(n), blasint(k), alpha, a, lda, b, ldb, beta, c, blasint(n));
  } else if constexpr (std::is_same_v<T, double>) {
    cblas_dgemm(CblasRowMajor, TA, TB, blasint(m), blasint(n), blasint(k), alpha, a, lda, b, ldb, beta, c, blasint(n));
  } else {
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += a[ta ? p * m + i : i * k + p] * b[tb ? j * k + p : p * n + j];
        c[i * n + j] = T(alpha * acc + (beta == T(0) ? T(0) : beta * c[i * n + j]));
      }
  }
}

}  // namespace

Tensor matmul_compute(KernelContext& c) {
  Tensor a = as_compute(c.input(0)), b = as_compute(c.input(1));
  Shape sa = a.rank() == 1 ? Shape{1, a.dim(0)} : a.shape(), sb = b.rank() == 1 ? Shape{b.dim(0), 1} : b.shape();
  int64_t m = sa[sa.size() - 2], k = sa.back(), n = sb.back();
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  Shape batch = broadcast_shapes(ba, bb, c.node().name);
  Tensor out = Tensor::empty(a.dtype(), c.output_type(0).shape);
  std::vector<int64_t> st[2] = {broadcast_strides(ba, batch), broadcast_strides(bb, batch)};
  visit_dtype(a.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      c.error("MatMul on bool is not supported");
    } else {
      for_each_broadcast(batch, st, [&](int64_t i, const int64_t* off) {
        gemm<T>(false, false, m, n, k, T(1), a.data<T>() + off[0] * m * k, b.data<T>() + off[1] * k * n, T(0),
                out.data<T>() + i * m * n);
      });
    }
  });
  return out;
}

namespace {

void k_matmul(KernelContext& c) { c.set_output(0, from_compute(matmul_compute(c), c.output_type(0).dtype)); }
TESSERA_CPU_KERNEL("MatMul", k_matmul);

void k_gemm(KernelContext& c) {
  Tensor a = as_compute(c.input(0)), b = as_compute(c.input(1));
  bool ta = c.attrs().get_int("transA", 0), tb = c.attrs().get_int("transB", 0);
  float alpha = c.attrs().get_float("alpha", 1.0f), beta = c.attrs().get_float("beta", 1.0f);
  int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1), n = tb ? b.dim(0) : b.dim(1);
  Tensor out = Tensor::zeros(a.dtype(), {m, n});
  bool has_c = c.has_input(2) && beta != 0.0f;
  if (has_c) {  // out = broadcast(C), then gemm accumulates into it with beta
    Tensor cc = as_compute(c.input(2)).cast(a.dtype());
    std::vector<int64_t> st[1] = {broadcast_strides(cc.shape(), out.shape())};
    size_t es = dtype_size(a.dtype());
    for_each_broadcast(out.shape(), st, [&](int64_t i, const int64_t* off) {
      std::memcpy(static_cast<char*>(out.raw()) + size_t(i) * es, static_cast<const char*>(cc.raw()) + size_t(off[0]) * es, es);
    });
  }
  visit_dtype(a.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      c.error("Gemm on bool is not supported");
    } else {
      gemm<T>(ta, tb, m, n, k, T(alpha), a.data<T>(), b.data<T>(), T(has_c ? beta : 0.0f), out.data<T>());
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Gemm", k_gemm);

}  // namespace
}  // namespace tessera::cpu
