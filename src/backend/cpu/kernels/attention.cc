// Attention (ops/attention.cc): the reference for the fused op. Scores,
// softmax and the weighted sum accumulate in double, one query row at a time,
// in the order the unfused graph computes them (scale, then mask, then a
// max-subtracted softmax), so a row whose scores are all -inf gives NaN
// exactly as Softmax does, and a finite "minimum" mask gives its uniform row.
// Q, K, V and the output are read and written through (batch, head, position)
// element strides from the layout attribute (0 = [B, H, T, D], 1 = [B, T, H, D];
// D contiguous in both), so no Transpose is needed around the op.
#include <algorithm>
#include <cmath>

#include "backend/cpu/loops.h"
#include "ops/attention_rules.h"

namespace tessera::cpu {
namespace {

struct Dims {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
};

using Strides = rules::RowStrides;

// Element strides of the mask read as [B, Hq, Tq, Tk] (0 along broadcast dims).
std::vector<int64_t> mask_strides(const Shape& m, const Dims& d) {
  Shape full = {d.B, d.Hq, d.Tq, d.Tk};
  Shape padded(4 - m.size(), 1);
  padded.insert(padded.end(), m.begin(), m.end());
  return broadcast_strides(padded, full);
}

template <typename T>
void attention(const T* q, const T* k, const T* v, const T* mask, const std::vector<int64_t>& ms, T* out, const Dims& d,
               const Strides (&st)[4], double scale, bool causal) {
  const Strides &sq = st[0], &sk = st[1], &sv = st[2], &so = st[3];
  std::vector<double> s(size_t(d.Tk)), acc(size_t(d.Dv));
  int64_t group = d.Hq / d.Hkv;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.Hq; ++h) {
      int64_t hk = h / group;
      const T* kb = k + b * sk.b + hk * sk.h;
      const T* vb = v + b * sv.b + hk * sv.h;
      for (int64_t i = 0; i < d.Tq; ++i) {
        const T* qi = q + b * sq.b + h * sq.h + i * sq.t;
        double mx = -INFINITY;
        for (int64_t j = 0; j < d.Tk; ++j) {
          double dot = 0;
          for (int64_t x = 0; x < d.D; ++x) dot += double(qi[x]) * double(kb[j * sk.t + x]);
          double sc = dot * scale;
          if (mask) sc += double(mask[b * ms[0] + h * ms[1] + i * ms[2] + j * ms[3]]);
          if (causal && j > i) sc = -INFINITY;
          s[size_t(j)] = sc;
          mx = std::max(mx, sc);
        }
        double sum = 0;
        for (int64_t j = 0; j < d.Tk; ++j) sum += s[size_t(j)] = std::exp(s[size_t(j)] - mx);
        std::fill(acc.begin(), acc.end(), 0.0);
        for (int64_t j = 0; j < d.Tk; ++j) {
          double p = s[size_t(j)] / sum;
          for (int64_t x = 0; x < d.Dv; ++x) acc[size_t(x)] += p * double(vb[j * sv.t + x]);
        }
        T* oi = out + b * so.b + h * so.h + i * so.t;
        for (int64_t x = 0; x < d.Dv; ++x) oi[x] = T(acc[size_t(x)]);
      }
    }
}

void k_attention(KernelContext& c) {
  Tensor q = as_compute(c.input(0)), k = as_compute(c.input(1)), v = as_compute(c.input(2));
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) c.error("Q, K, V must be rank 4");
  // Inference has checked the attribute; a kernel run on an unchecked node still must not misread memory.
  std::vector<int64_t> layout = c.attrs().get_ints("layout", {0, 0, 0, 0});
  if (!rules::valid_layout(layout)) c.error("layout must be 4 entries of 0 or 1");
  auto H = [&](const Tensor& t, size_t i) { return t.dim(int64_t(rules::heads_dim(layout[i]))); };
  auto L = [&](const Tensor& t, size_t i) { return t.dim(int64_t(rules::length_dim(layout[i]))); };
  Dims d{q.dim(0), H(q, 0), H(k, 1), L(q, 0), L(k, 1), q.dim(3), v.dim(3)};
  if (d.Hkv == 0 || d.Hq % d.Hkv) c.error("query heads ", d.Hq, " are not a multiple of key/value heads ", d.Hkv);
  if (k.dim(0) != d.B || v.dim(0) != d.B || H(v, 2) != d.Hkv || L(v, 2) != d.Tk || k.dim(3) != d.D)
    c.error("Q ", to_string(q.shape()), ", K ", to_string(k.shape()), ", V ", to_string(v.shape()), " do not fit together");
  // The mask is read in the compute dtype of Q (f32 for f16/bf16).
  Tensor mask = c.has_input(3) ? as_compute(c.input(3)).cast(q.dtype()) : Tensor();
  std::vector<int64_t> ms = c.has_input(3) ? mask_strides(mask.shape(), d) : std::vector<int64_t>(4, 0);
  double scale = c.attrs().get_float("scale", 1.0f);
  bool causal = c.attrs().get_int("causal", 0) != 0;
  Tensor y = Tensor::empty(q.dtype(), layout[3] ? Shape{d.B, d.Tq, d.Hq, d.Dv} : Shape{d.B, d.Hq, d.Tq, d.Dv});
  const Strides st[4] = {rules::row_strides(q.shape(), layout[0]), rules::row_strides(k.shape(), layout[1]),
                         rules::row_strides(v.shape(), layout[2]), rules::row_strides(y.shape(), layout[3])};
  if (q.dtype() == DType::f32)
    attention(q.data<float>(), k.data<float>(), v.data<float>(), c.has_input(3) ? mask.data<float>() : nullptr, ms,
              y.data<float>(), d, st, scale, causal);
  else if (q.dtype() == DType::f64)
    attention(q.data<double>(), k.data<double>(), v.data<double>(), c.has_input(3) ? mask.data<double>() : nullptr, ms,
              y.data<double>(), d, st, scale, causal);
  else c.error("dtype ", dtype_name(q.dtype()), " is not supported");
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Attention", k_attention);

}  // namespace
}  // namespace tessera::cpu
