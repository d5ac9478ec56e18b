// Rope (ops/rope.cc) on the CPU: each element with its rotation partner, in
// double, rounded once into X's dtype (a block of X's columns first copied out,
// and with full = 1 written back into a copy of X).
#include <algorithm>

#include "backend/cpu/loops.h"
#include "ops/rope_rules.h"

namespace tessera::cpu {
namespace {

// X's columns [begin, begin + heads·D) as [..., heads, D] (the block attribute).
Tensor block_of(const Tensor& x, const std::vector<int64_t>& b, const KernelContext& c) {
  Shape s;
  std::string bad = rules::rope_block_shape(x.shape(), b, s);
  if (!bad.empty()) c.error(bad);
  const int64_t w = x.dim(-1), width = b[1] * b[2], rows = x.numel() / w;
  Tensor y = Tensor::empty(DType::f64, s);
  for (int64_t r = 0; r < rows; ++r)
    std::copy_n(x.data<double>() + r * w + b[0], width, y.data<double>() + r * width);
  return y;
}

// full = 1: X with the rotated block `y` written over its columns.
Tensor with_block(const Tensor& x, const Tensor& y, int64_t begin) {
  Tensor out = x.clone();
  const int64_t w = x.dim(-1), width = y.dim(-2) * y.dim(-1);
  for (int64_t r = 0, rows = x.numel() / w; r < rows; ++r)
    std::copy_n(y.data<double>() + r * width, width, out.data<double>() + r * w + begin);
  return out;
}

void k_rope(KernelContext& c) {
  const Tensor x_in = c.input(0).cast(DType::f64);
  Tensor x = x_in, cs = c.input(1).cast(DType::f64), sn = c.input(2).cast(DType::f64);
  const bool full = c.attrs().get_int("full", 0) != 0;
  if (full && !c.attrs().has("block")) c.error("full = 1 needs a block attribute");
  if (c.attrs().has("block")) x = block_of(x, c.attrs().get_ints("block"), c);
  bool interleaved = c.attrs().get_int("interleaved", 0) != 0;
  int64_t d = x.rank() ? x.dim(-1) : 0, half = d / 2;
  if (d % 2) c.error("head dim ", d, " is odd");
  Tensor y = Tensor::empty(DType::f64, x.shape());
  const double *px = x.data<double>(), *pc = cs.data<double>(), *ps = sn.data<double>();
  double* py = y.data<double>();
  std::vector<int64_t> st[2] = {broadcast_strides(cs.shape(), x.shape()), broadcast_strides(sn.shape(), x.shape())};
  for_each_broadcast<2>(x.shape(), st, [&](int64_t i, const int64_t* off) {
    int64_t j = i % d;
    double rot = interleaved ? (j % 2 ? px[i - 1] : -px[i + 1]) : (j < half ? -px[i + half] : px[i - half]);
    py[i] = px[i] * pc[off[0]] + rot * ps[off[1]];
  });
  if (full) y = with_block(x_in, y, c.attrs().get_ints("block")[0]);
  c.set_output(0, y.cast(c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Rope", k_rope);

}  // namespace
}  // namespace tessera::cpu
