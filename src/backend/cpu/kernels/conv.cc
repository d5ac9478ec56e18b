// CPU kernels for Conv and ConvTranspose (ops/conv.cc), as im2col + GEMM.
// The GEMM is BLAS (sgemm/dgemm), so accumulation is in the input's own float
// type as in ONNX Runtime; f16/bf16 are computed in f32 and rounded once.
// Per batch entry and group:
//   Conv:          Y_g [M/g, cells] = W_g [M/g, C/g * taps] x cols [C/g * taps, cells]
//   ConvTranspose: cols [M/g * taps, cells] = W_g^T x X_g [C/g, cells], then
//                  col2im adds each column entry into the output pixel it lands on.
#include <cblas.h>

#include <algorithm>

#include "backend/cpu/kernels/window.h"

namespace tessera::cpu {
namespace {
using rules::node_label;

// c[m, n] = op(a) * b, row-major; op(a) is [m, k] (a is [k, m] when trans_a).
void gemm(bool trans_a, int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c) {
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0f, a,
              int(std::max<int64_t>(1, trans_a ? m : k)), b, int(std::max<int64_t>(1, n)), 0.0f, c, int(std::max<int64_t>(1, n)));
}
void gemm(bool trans_a, int64_t m, int64_t n, int64_t k, const double* a, const double* b, double* c) {
  cblas_dgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, CblasNoTrans, int(m), int(n), int(k), 1.0, a,
              int(std::max<int64_t>(1, trans_a ? m : k)), b, int(std::max<int64_t>(1, n)), 0.0, c, int(std::max<int64_t>(1, n)));
}

// Per-call sizes shared by both kernels.
struct ConvDims {
  int64_t batch, in_ch, out_ch, group, taps;
};

ConvDims dims_of(const KernelContext& c, const Tensor& x, int64_t out_ch) {
  return {x.dim(0), x.dim(1), out_ch, c.attrs().get_int("group", 1), numel(rules::spatial_dims(c.input(1).shape()))};
}

template <typename T>
void add_bias(const Tensor* bias, int64_t batch, int64_t ch, int64_t cells, T* y) {
  if (!bias) return;
  const T* b = bias->data<T>();
  for (int64_t i = 0; i < batch * ch; ++i)
    for (int64_t p = 0; p < cells; ++p) y[i * cells + p] += b[i % ch];
}

template <typename T>
void conv_forward(const ConvDims& d, const rules::Window& win, const Tensor& x, const Tensor& w, const Tensor* bias, Tensor& y) {
  int64_t cg = d.in_ch / d.group, mg = d.out_ch / d.group, cells = numel(win.out), pixels = numel(win.in);
  std::vector<int64_t> table = gather_table(win.in, win.out, win);
  int64_t rows = int64_t(table.size());  // taps * cells
  std::vector<T> cols(size_t(cg * rows));
  const T *px = x.data<T>(), *pw = w.data<T>();
  T* py = y.data<T>();
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t g = 0; g < d.group; ++g) {
      const T* img = px + (n * d.in_ch + g * cg) * pixels;
      for (int64_t ch = 0; ch < cg; ++ch)
        for (int64_t t = 0; t < rows; ++t) cols[size_t(ch * rows + t)] = table[size_t(t)] < 0 ? T(0) : img[ch * pixels + table[size_t(t)]];
      gemm(false, mg, cells, cg * d.taps, pw + g * mg * cg * d.taps, cols.data(), py + (n * d.out_ch + g * mg) * cells);
    }
  add_bias(bias, d.batch, d.out_ch, cells, py);
}

template <typename T>
void conv_transpose_forward(const ConvDims& d, const rules::Window& win, const Tensor& x, const Tensor& w, const Tensor* bias,
                            Tensor& y) {
  int64_t cg = d.in_ch / d.group, mg = d.out_ch / d.group, cells = numel(win.in), pixels = numel(win.out);
  std::vector<int64_t> table = gather_table(win.out, win.in, win);  // the window slides over the output
  int64_t rows = int64_t(table.size());
  std::vector<T> cols(size_t(mg * rows));
  const T *px = x.data<T>(), *pw = w.data<T>();
  T* py = y.data<T>();
  std::fill(py, py + y.numel(), T(0));
  for (int64_t n = 0; n < d.batch; ++n)
    for (int64_t g = 0; g < d.group; ++g) {
      gemm(true, mg * d.taps, cells, cg, pw + g * cg * mg * d.taps, px + (n * d.in_ch + g * cg) * cells, cols.data());
      for (int64_t ch = 0; ch < mg; ++ch) {
        T* img = py + (n * d.out_ch + g * mg + ch) * pixels;
        for (int64_t t = 0; t < rows; ++t)
          if (table[size_t(t)] >= 0) img[table[size_t(t)]] += cols[size_t(ch * rows + t)];
      }
    }
  add_bias(bias, d.batch, d.out_ch, pixels, py);
}

// Inputs in their compute dtype, the bias null when omitted.
struct Operands {
  Tensor x, w, b;
  const Tensor* bias() const { return b.defined() ? &b : nullptr; }
};
Operands operands(const KernelContext& c) {
  return {as_compute(c.input(0)), as_compute(c.input(1)), c.has_input(2) ? as_compute(c.input(2)) : Tensor()};
}

void k_conv(KernelContext& c) {
  Operands o = operands(c);
  Shape kernel = rules::spatial_dims(o.w.shape());
  rules::Window win = rules::sliding_window(rules::spatial_dims(o.x.shape()), kernel, c.attrs(), false, node_label(c.node()));
  Tensor y = Tensor::empty(o.x.dtype(), c.output_type(0).shape);
  ConvDims d = dims_of(c, o.x, o.w.dim(0));
  if (y.numel() > 0)
    visit_float(c, o.x.dtype(), [&]<typename T>() { conv_forward<T>(d, win, o.x, o.w, o.bias(), y); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Conv", k_conv);

void k_conv_transpose(KernelContext& c) {
  Operands o = operands(c);
  Shape kernel = rules::spatial_dims(o.w.shape());
  rules::Window win = rules::transpose_window(rules::spatial_dims(o.x.shape()), kernel, c.attrs(), node_label(c.node()));
  Tensor y = Tensor::empty(o.x.dtype(), c.output_type(0).shape);
  ConvDims d = dims_of(c, o.x, o.w.dim(1) * c.attrs().get_int("group", 1));
  if (y.numel() > 0)
    visit_float(c, o.x.dtype(), [&]<typename T>() { conv_transpose_forward<T>(d, win, o.x, o.w, o.bias(), y); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("ConvTranspose", k_conv_transpose);

}  // namespace
}  // namespace tessera::cpu
