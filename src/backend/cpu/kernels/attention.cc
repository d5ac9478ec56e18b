// Attention (ops/attention.cc): the reference for the fused op. Scores,
// softmax and the weighted sum accumulate in double, one query row at a time,
// in the order the unfused graph computes them (scale, then mask, then a
// max-subtracted softmax), so a row whose scores are all -inf gives NaN
// exactly as Softmax does, and a finite "minimum" mask gives its uniform row.
// Q, K, V and the output are read and written through (batch, head, position)
// element strides from the layout attribute (0 = [B, H, T, D], 1 = [B, T, H, D];
// D contiguous in both), so no Transpose is needed around the op; packed Q, K, V
// are column blocks of [B, T, W] inputs (ops/attention_rules.h). With rope
// tables, Q's and K's rows are first rotated in a copy, in double, and rounded
// to their dtype, as the unfused Rope writes them.
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

// The rope tables (inputs 4 and 5) as doubles, with their batch and position strides.
struct RopeTables {
  Tensor cos, sin;
  rules::TableStrides tc, ts;
  bool interleaved = false;
};

// A copy of `x` (a compute-dtype input holding `heads` rows (b, h, t) of D through strides
// `s` from `offset`) with those rows rotated by the tables, rounded to `dtype` (Rope's
// arithmetic: backend/cpu/kernels/rope.cc).
Tensor rotated(const Tensor& x, int64_t offset, const Strides& s, int64_t heads, const Dims& d, const RopeTables& rt,
               DType dtype) {
  const rules::TableStrides &tc = rt.tc, &ts = rt.ts;
  const bool interleaved = rt.interleaved;
  Tensor y = x.cast(DType::f64), in = y.clone();
  const double *pc = rt.cos.data<double>(), *ps = rt.sin.data<double>(), *px = in.data<double>();
  double* py = y.data<double>();
  const int64_t half = d.D / 2;
  for (int64_t b = 0; b < d.B; ++b)
    for (int64_t h = 0; h < heads; ++h)
      for (int64_t t = 0; t < d.Tq; ++t) {
        const int64_t row = offset + b * s.b + h * s.h + t * s.t;
        const double *xr = px + row, *cr = pc + b * tc.b + t * tc.t, *sr = ps + b * ts.b + t * ts.t;
        for (int64_t j = 0; j < d.D; ++j) {
          double rot = interleaved ? (j % 2 ? xr[j - 1] : -xr[j + 1]) : (j < half ? -xr[j + half] : xr[j - half]);
          py[row + j] = xr[j] * cr[j] + rot * sr[j];
        }
      }
  return y.cast(dtype).cast(x.dtype());
}

void k_attention(KernelContext& c) {
  Tensor q = as_compute(c.input(0)), k = as_compute(c.input(1)), v = as_compute(c.input(2));
  // Inference has checked the attributes; a kernel run on an unchecked node still must not misread memory.
  rules::Geometry g;
  std::string bad = rules::geometry(q.shape(), k.shape(), v.shape(), c.attrs().get_ints("layout", {0, 0, 0, 0}),
                                    c.attrs().get_ints("packed", {}), g);
  if (!bad.empty()) c.error(bad);
  Dims d{g.B, g.Hq, g.Hkv, g.Tq, g.Tk, g.D, g.Dv};
  // The mask is read in the compute dtype of Q (f32 for f16/bf16).
  Tensor mask = c.has_input(3) ? as_compute(c.input(3)).cast(q.dtype()) : Tensor();
  std::vector<int64_t> ms = c.has_input(3) ? mask_strides(mask.shape(), d) : std::vector<int64_t>(4, 0);
  if (c.has_input(4) != c.has_input(5)) c.error("rope tables come in pairs (cos, sin)");
  if (c.has_input(4)) {
    if (d.Tq != d.Tk || d.D % 2) c.error("rope needs equal query and key lengths and an even head dim");
    RopeTables rt{c.input(4).cast(DType::f64), c.input(5).cast(DType::f64), {}, {},
                  c.attrs().get_int("rope_interleaved", 0) != 0};
    for (auto [t, st] : {std::pair{&rt.cos, &rt.tc}, std::pair{&rt.sin, &rt.ts}}) {
      std::string bad = rules::rope_table(t->shape(), d.B, d.Tq, d.D, *st);
      if (!bad.empty()) c.error(bad);
    }
    q = rotated(q, g.offset[0], g.st[0], d.Hq, d, rt, c.input(0).dtype());
    k = rotated(k, g.offset[1], g.st[1], d.Hkv, d, rt, c.input(1).dtype());
  }
  double scale = c.attrs().get_float("scale", 1.0f);
  bool causal = c.attrs().get_int("causal", 0) != 0;
  Tensor y = Tensor::empty(q.dtype(), g.out);
  const Strides st[4] = {g.st[0], g.st[1], g.st[2], g.st[3]};
  auto run = [&]<typename T>() {
    attention(q.data<T>() + g.offset[0], k.data<T>() + g.offset[1], v.data<T>() + g.offset[2],
              c.has_input(3) ? mask.data<T>() : nullptr, ms, y.data<T>(), d, st, scale, causal);
  };
  if (q.dtype() == DType::f32) run.template operator()<float>();
  else if (q.dtype() == DType::f64) run.template operator()<double>();
  else c.error("dtype ", dtype_name(q.dtype()), " is not supported");
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Attention", k_attention);

}  // namespace
}  // namespace tessera::cpu
