// Attention (ops/attention.cc): the reference for the fused op. Scores,
// softmax and the weighted sum accumulate in double, one query row at a time,
// in the order the unfused graph computes them (scale, then mask, then a
// max-subtracted softmax), so a row whose scores are all -inf gives NaN
// exactly as Softmax does, and a finite "minimum" mask gives its uniform row.
#include <cmath>

#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

struct Dims {
  int64_t B, Hq, Hkv, Tq, Tk, D, Dv;
};

// Element strides of the mask read as [B, Hq, Tq, Tk] (0 along broadcast dims).
std::vector<int64_t> mask_strides(const Shape& m, const Dims& d) {
  Shape full = {d.B, d.Hq, d.Tq, d.Tk};
  Shape padded(4 - m.size(), 1);
  padded.insert(padded.end(), m.begin(), m.end());
  return broadcast_strides(padded, full);
}

template <typename T>
void attention(const T* q, const T* k, const T* v, const T* mask, const std::vector<int64_t>& ms, T* out, const Dims& d,
               double scale, bool causal) {
  std::vector<double> s(size_t(d.Tk)), acc(size_t(d.Dv));
  int64_t group = d.Hq / d.Hkv;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < d.Hq; ++h) {
      int64_t hk = h / group;
      const T* kb = k + (b * d.Hkv + hk) * d.Tk * d.D;
      const T* vb = v + (b * d.Hkv + hk) * d.Tk * d.Dv;
      for (int64_t i = 0; i < d.Tq; ++i) {
        const T* qi = q + ((b * d.Hq + h) * d.Tq + i) * d.D;
        double mx = -INFINITY;
        for (int64_t j = 0; j < d.Tk; ++j) {
          double dot = 0;
          for (int64_t x = 0; x < d.D; ++x) dot += double(qi[x]) * double(kb[j * d.D + x]);
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
          for (int64_t x = 0; x < d.Dv; ++x) acc[size_t(x)] += p * double(vb[j * d.Dv + x]);
        }
        T* oi = out + ((b * d.Hq + h) * d.Tq + i) * d.Dv;
        for (int64_t x = 0; x < d.Dv; ++x) oi[x] = T(acc[size_t(x)]);
      }
    }
}

void k_attention(KernelContext& c) {
  Tensor q = as_compute(c.input(0)), k = as_compute(c.input(1)), v = as_compute(c.input(2));
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4) c.error("Q, K, V must be rank 4");
  Dims d{q.dim(0), q.dim(1), k.dim(1), q.dim(2), k.dim(2), q.dim(3), v.dim(3)};
  if (d.Hkv == 0 || d.Hq % d.Hkv) c.error("query heads ", d.Hq, " are not a multiple of key/value heads ", d.Hkv);
  // The mask is read in the compute dtype of Q (f32 for f16/bf16).
  Tensor mask = c.has_input(3) ? as_compute(c.input(3)).cast(q.dtype()) : Tensor();
  std::vector<int64_t> ms = c.has_input(3) ? mask_strides(mask.shape(), d) : std::vector<int64_t>(4, 0);
  double scale = c.attrs().get_float("scale", 1.0f);
  bool causal = c.attrs().get_int("causal", 0) != 0;
  Tensor y = Tensor::empty(q.dtype(), {d.B, d.Hq, d.Tq, d.Dv});
  if (q.dtype() == DType::f32)
    attention(q.data<float>(), k.data<float>(), v.data<float>(), c.has_input(3) ? mask.data<float>() : nullptr, ms,
              y.data<float>(), d, scale, causal);
  else if (q.dtype() == DType::f64)
    attention(q.data<double>(), k.data<double>(), v.data<double>(), c.has_input(3) ? mask.data<double>() : nullptr, ms,
              y.data<double>(), d, scale, causal);
  else c.error("dtype ", dtype_name(q.dtype()), " is not supported");
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Attention", k_attention);

}  // namespace
}  // namespace tessera::cpu
