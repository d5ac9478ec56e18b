// CUDA Softmax / LogSoftmax, LayerNormalization and RMSNormalization, and
// the Skip norms that add a residual first (semantics: backend/cpu/kernels/
// normalization.cc, rms_norm.cc and skip_norm.cc; the register-resident rows
// add the skip as they load a row). All
// statistics are kept in f32 (f64 for f64 inputs).
//
// Over the last dim (the hot case: attention scores, GPT-2's 50257 logits,
// hidden sizes up to 4096+) a warp or a block owns a row: one read of the row
// gathers the statistics (Softmax: online max and rescaled sum; LayerNorm:
// Welford per thread, merged with Chan's formula, which does not cancel the
// way sum/sum-of-squares can when |mean| >> std), a second read writes it.
// Softmax along another axis runs one thread per (outer, inner) line, reads
// coalesced across the inner dim. LayerNorm and RMSNorm rows that fit in
// registers (f16/bf16/f32, up to 1024 aligned 16-byte chunks, a whole-row
// scale) take norm_rows.cuh's kernels instead.
#include <cmath>

#include "backend/cuda/kernels/norm_rows.cuh"
#include "backend/cuda/kernels/reduce_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

// ---- Softmax ----------------------------------------------------------------

// Running max `m` and sum of exp(x - m). A -inf element adds nothing; a row
// of only -inf ends with m = -inf and gives NaN, like the CPU's exp(-inf+inf).
template <typename A>
struct MaxSum {
  A m, s;
  __device__ MaxSum shfl(int mask) const { return {shfl_xor(m, mask), shfl_xor(s, mask)}; }
  __device__ void add(A v) {
    if (v > m) {
      s = s * exp(m - v) + A(1);
      m = v;
    } else if (v != A(-INFINITY)) {
      s += exp(v - m);  // NaN v (or m = +inf) makes s NaN, as on the CPU
    }
  }
  __device__ static void merge(MaxSum& a, const MaxSum& b) {
    const MaxSum& hi = b.m > a.m ? b : a;
    const MaxSum& lo = b.m > a.m ? a : b;
    A s = hi.s + (lo.m == A(-INFINITY) ? (lo.s != lo.s ? lo.s : A(0)) : lo.s * exp(lo.m - hi.m));
    a = {hi.m, s};
  }
};

template <typename A>
__device__ __forceinline__ A softmax_value(A v, const MaxSum<A>& st, bool log_out) {
  return log_out ? v - st.m - A(log(st.s)) : A(exp(v - st.m)) / st.s;
}

template <typename T>
__global__ void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, bool log_out, bool warp_rows) {
  pdl_enter();
  using A = compute_t<T>;
  auto merge = [](MaxSum<A>& a, const MaxSum<A>& b) { MaxSum<A>::merge(a, b); };
  int tid = int(threadIdx.x), nt = int(blockDim.x);
  int64_t r = blockIdx.x, step = gridDim.x;
  if (warp_rows) {
    tid = threadIdx.x & 31, nt = 32;
    r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5), step = rows;  // one row per warp
  }
  for (; r < rows; r += step) {
    const T* px = x + r * n;
    MaxSum<A> st{A(-INFINITY), A(0)};
    for_row(px, n, tid, nt, [&](int64_t, A v) { st.add(v); });
    st = warp_rows ? warp_all_reduce(st, merge) : block_all_reduce(st, merge);
    for (int64_t j = tid; j < n; j += nt) store(y, r * n + j, softmax_value(load(px, j), st, log_out));
  }
}

template <typename T>
__global__ void softmax_lines(const T* x, T* y, Around a, bool log_out) {
  pdl_enter();
  using A = compute_t<T>;
  int64_t lines = a.outer * a.inner;
  for (int64_t l = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; l < lines; l += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = l / a.inner, in = l - o * a.inner, base = o * a.n * a.inner + in;
    MaxSum<A> st{A(-INFINITY), A(0)};
    for (int64_t j = 0; j < a.n; ++j) st.add(load(x, base + j * a.inner));
    for (int64_t j = 0; j < a.n; ++j) store(y, base + j * a.inner, softmax_value(load(x, base + j * a.inner), st, log_out));
  }
}

// Float dtypes only (the CPU kernel's set); a launcher for (T) from a dtype.
template <typename F>
void visit_float_dtype(const KernelContext& ctx, DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    case DType::f64: return f.template operator()<double>();
    default: ctx.error("dtype ", dtype_name(t), " is not supported");
  }
}

// Grid and block for row kernels: 8 rows per 256-thread block when there are
// rows enough to fill the GPU with warps, else a block per row. Few rows (a
// decode step's [B, 1, H]) on one warp each leave that warp waiting on one
// load after another: measured on an H200, a [1, 768] LayerNorm took 28 us that way
// (a block per row lets many loads be in flight at once).
struct RowLaunch {
  unsigned grid, block;
  bool warp_rows;
};
RowLaunch row_launch(int64_t rows, int64_t n) {
  constexpr int64_t kWarpRowMinRows = 2048;
  if (n <= kWarpRowMax && rows >= kWarpRowMinRows) return {unsigned((rows + 7) / 8), 256, true};
  unsigned block = n <= 4096 ? 256u : unsigned(kBlockRowThreads);
  return {unsigned(std::min<int64_t>(rows, 1 << 20)), block, false};
}

// Element j's entry of a parameter vector broadcast over the row (n_row
// elements): no division when it spans the whole row, the common case.
template <typename A>
__device__ __forceinline__ A param_at(const ParamVec& p, int64_t j, int64_t n_row) {
  return p.at<A>(p.n == n_row ? j : j % p.n);
}

void k_softmax(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx.attrs().get_int("axis", -1), x.rank(), ctx.node().name);
  bool log_out = ctx.node().op == "LogSoftmax";
  Around a = around_axis(x.shape(), axis);
  if (x.numel() == 0) return;
  visit_float_dtype(ctx, x.dtype(), [&]<typename T>() {
    const T* px = static_cast<const T*>(x.raw());
    T* py = static_cast<T*>(ctx.output(0).raw());
    if (a.inner == 1) {
      RowLaunch l = row_launch(a.outer, a.n);
      launch_kernel(softmax_rows<T>, l.grid, l.block, 0, ctx.stream(), px, py, a.outer, a.n, log_out, l.warp_rows);
    } else {
      launch_kernel(softmax_lines<T>, blocks_for(a.outer * a.inner), 256, 0, ctx.stream(), px, py, a, log_out);
    }
  });
  check_launch(ctx);
}

// norm_rows.cuh's kernel for `chunks` (1, 2 or 4) 16-byte chunks per thread, a warp or a block a row.
template <template <int, bool> class K>
auto by_chunks(const norm_rows::Launch& l) {
  if (l.warp) return l.chunks == 1 ? K<1, true>::fn : l.chunks == 2 ? K<2, true>::fn : K<4, true>::fn;
  return l.chunks == 1 ? K<1, false>::fn : l.chunks == 2 ? K<2, false>::fn : K<4, false>::fn;
}

// The register-resident rows (norm_rows.cuh) fit: a 16-bit or f32 X whose
// rows are whole 16-byte chunks, at most 1024 of them, everything aligned.
template <typename T>
constexpr bool kFastRowType = std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;
norm_rows::Launch fast_rows(int64_t n, size_t elem, std::initializer_list<const void*> ptrs) {
  int64_t v = int64_t(16 / elem);
  if (n % v || n > (int64_t(1) << 30)) return {};
  for (const void* p : ptrs)
    if (!aligned16(p)) return {};
  return norm_rows::launch_for(n / v);
}

// ---- LayerNormalization -------------------------------------------------------

template <typename T>
__global__ void layer_norm_rows(const T* x, T* y, ParamVec scale, ParamVec bias, bool has_bias, FloatOut mean_out,
                                FloatOut inv_out, int64_t rows, int64_t n, float eps, bool warp_rows) {
  pdl_enter();
  using A = compute_t<T>;
  auto merge = [](Welford<A>& a, const Welford<A>& b) { Welford<A>::merge(a, b); };
  int tid = int(threadIdx.x), nt = int(blockDim.x);
  int64_t r = blockIdx.x, step = gridDim.x;
  if (warp_rows) {
    tid = threadIdx.x & 31, nt = 32;
    r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5), step = rows;
  }
  for (; r < rows; r += step) {
    const T* px = x + r * n;
    Welford<A> w{A(0), A(0), A(0)};
    for_row(px, n, tid, nt, [&](int64_t, A v) { w.add(v); });
    w = warp_rows ? warp_all_reduce(w, merge) : block_all_reduce(w, merge);
    A inv = A(1) / sqrt(w.m2 / A(n) + A(eps));
    T* py = y + r * n;
    for_row(px, n, tid, nt, [&](int64_t j, A x) {
      A v = (x - w.mean) * inv * param_at<A>(scale, j, n);
      if (has_bias) v += param_at<A>(bias, j, n);
      store(py, j, v);
    });
    if (tid == 0) {
      if (mean_out.p) mean_out.put(r, w.mean);
      if (inv_out.p) inv_out.put(r, inv);
    }
  }
}

template <typename T>
struct LayerNormK {
  template <int C, bool W>
  struct At {
    static constexpr auto fn = norm_rows::layer_norm<T, C, W>;
  };
};

void k_layer_norm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx.attrs().get_int("axis", -1), x.rank(), ctx.node().name);
  int64_t rows = around_axis(x.shape(), axis).outer, n = rows ? x.numel() / rows : 0;
  ParamVec scale = param_vec(ctx, 1, "Scale"), bias;
  if (scale.n == 0 || n % scale.n) ctx.error("Scale ", to_string(ctx.input(1).shape()), " does not broadcast over the normalised dims");
  bool has_bias = ctx.has_input(2);
  if (has_bias) {
    bias = param_vec(ctx, 2, "B");
    if (bias.n == 0 || n % bias.n) ctx.error("B ", to_string(ctx.input(2).shape()), " does not broadcast over the normalised dims");
  }
  FloatOut mean_out, inv_out;
  if (ctx.has_output(1)) mean_out = float_out(ctx, 1);
  if (ctx.has_output(2)) inv_out = float_out(ctx, 2);
  if (rows == 0) return;
  float eps = ctx.attrs().get_float("epsilon", 1e-5f);
  visit_float_dtype(ctx, x.dtype(), [&]<typename T>() {
    if constexpr (kFastRowType<T>) {
      const Tensor& sc = ctx.input(1);
      const Tensor* b = has_bias ? &ctx.input(2) : nullptr;
      bool params = sc.dtype() == x.dtype() && scale.n == n && (!b || (b->dtype() == x.dtype() && bias.n == n));
      norm_rows::Launch l = params ? fast_rows(n, sizeof(T), {x.raw(), ctx.output(0).raw(), sc.raw(), b ? b->raw() : nullptr})
                                   : norm_rows::Launch{};
      if (l.chunks) {
        auto k = by_chunks<LayerNormK<T>::template At>(l);
        launch_kernel(k, l.grid(rows), unsigned(l.threads), 0, ctx.stream(), static_cast<const T*>(x.raw()),
                      static_cast<T*>(ctx.output(0).raw()), static_cast<const T*>(sc.raw()),
                      b ? static_cast<const T*>(b->raw()) : nullptr, mean_out, inv_out, rows, int(n), eps,
                      norm_rows::Skip<T>{});
        return;
      }
    }
    RowLaunch l = row_launch(rows, n);
    launch_kernel(layer_norm_rows<T>, l.grid, l.block, 0, ctx.stream(), static_cast<const T*>(x.raw()),
                  static_cast<T*>(ctx.output(0).raw()), scale, bias, has_bias, mean_out, inv_out, rows, n, eps,
                  l.warp_rows);
  });
  check_launch(ctx);
}

// ---- RMSNormalization -----------------------------------------------------------

template <typename A>
struct SumSq {
  A s;
  __device__ SumSq shfl(int mask) const { return {shfl_xor(s, mask)}; }
};

// Y = X / sqrt(mean(X^2) + eps) * scale, rounded once into Y's dtype (Scale's).
template <typename T>
__global__ void rms_norm_rows(const T* x, FloatOut y, ParamVec scale, int64_t rows, int64_t n, float eps, bool warp_rows) {
  pdl_enter();
  using A = compute_t<T>;
  auto merge = [](SumSq<A>& a, const SumSq<A>& b) { a.s += b.s; };
  int tid = int(threadIdx.x), nt = int(blockDim.x);
  int64_t r = blockIdx.x, step = gridDim.x;
  if (warp_rows) {
    tid = threadIdx.x & 31, nt = 32;
    r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5), step = rows;
  }
  for (; r < rows; r += step) {
    const T* px = x + r * n;
    SumSq<A> ss{A(0)};
    for_row(px, n, tid, nt, [&](int64_t, A v) { ss.s += v * v; });
    ss = warp_rows ? warp_all_reduce(ss, merge) : block_all_reduce(ss, merge);
    A inv = A(1) / sqrt(ss.s / A(n) + A(eps));
    for_row(px, n, tid, nt, [&](int64_t j, A v) { y.put(r * n + j, v * inv * param_at<A>(scale, j, n)); });
  }
}

template <typename T, typename O>
struct RmsNormK {
  template <int C, bool W>
  struct At {
    static constexpr auto fn = norm_rows::rms_norm<T, O, C, W>;
  };
};

// norm_rows::rms_norm for Y's dtype (f16, bf16 or f32); false for another.
template <typename T>
bool launch_rms_fast(KernelContext& ctx, const norm_rows::Launch& l, DType y_dtype, const void* x, void* y,
                     const void* scale, int64_t rows, int64_t n, float eps, norm_rows::Skip<T> skip = {}) {
  auto go = [&]<typename O>() {
    auto k = by_chunks<RmsNormK<T, O>::template At>(l);
    launch_kernel(k, l.grid(rows), unsigned(l.threads), 0, ctx.stream(), static_cast<const T*>(x), static_cast<O*>(y),
                  static_cast<const O*>(scale), rows, int(n), eps, skip);
    return true;
  };
  switch (y_dtype) {
    case DType::f32: return go.template operator()<float>();
    case DType::f16: return go.template operator()<__half>();
    case DType::bf16: return go.template operator()<__nv_bfloat16>();
    default: return false;
  }
}

void k_rms_norm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t axis = normalize_axis(ctx.attrs().get_int("axis", -1), x.rank(), ctx.node().name);
  int64_t rows = around_axis(x.shape(), axis).outer, n = rows ? x.numel() / rows : 0;
  ParamVec scale = param_vec(ctx, 1, "scale");
  if (scale.n == 0 || n % scale.n) ctx.error("scale ", to_string(ctx.input(1).shape()), " does not broadcast over the normalised dims");
  FloatOut y = float_out(ctx, 0);
  if (rows == 0 || n == 0) return;
  float eps = ctx.attrs().get_float("epsilon", 1e-5f);
  visit_float_dtype(ctx, x.dtype(), [&]<typename T>() {
    if constexpr (kFastRowType<T>) {
      const Tensor& sc = ctx.input(1);
      void* py = ctx.output(0).raw();
      norm_rows::Launch l = scale.n == n && sc.dtype() == y.dtype ? fast_rows(n, sizeof(T), {x.raw(), py, sc.raw()})
                                                                   : norm_rows::Launch{};
      if (l.chunks && launch_rms_fast<T>(ctx, l, y.dtype, x.raw(), py, sc.raw(), rows, n, eps)) return;
    }
    RowLaunch l = row_launch(rows, n);
    launch_kernel(rms_norm_rows<T>, l.grid, l.block, 0, ctx.stream(), static_cast<const T*>(x.raw()), y, scale, rows, n,
                  eps, l.warp_rows);
  });
  check_launch(ctx);
}

// ---- SkipLayerNormalization / SkipSimplifiedLayerNormalization -------------------

// S = X + skip[i % skip_n] (+ bias[i % n]), each Add rounded to T as the CPU reference does.
template <typename T>
__global__ void skip_sum(const T* x, const T* skip, int64_t skip_n, const T* bias, int64_t n, T* s, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    store(s, i, load(x, i) + load(skip, i % skip_n));
    if (bias) store(s, i, load(s, i) + load(bias, i % n));
  }
}

// The fast path: norm_rows' kernels adding the skip as they load a row (no bias input).
template <typename T>
bool skip_norm_fast(KernelContext& ctx, bool ln, int64_t rows, int64_t n, float eps, void* sum) {
  const Tensor &x = ctx.input(0), &skip = ctx.input(1), &gamma = ctx.input(2);
  const Tensor* beta = ln && ctx.has_input(3) ? &ctx.input(3) : nullptr;
  void* y = ctx.output(0).raw();
  norm_rows::Launch l = fast_rows(n, sizeof(T), {x.raw(), y, gamma.raw(), beta ? beta->raw() : nullptr, skip.raw(), sum});
  if (!l.chunks) return false;
  const norm_rows::Skip<T> sk{static_cast<const T*>(skip.raw()), skip.numel() / n, static_cast<T*>(sum)};
  if (!ln) return launch_rms_fast<T>(ctx, l, x.dtype(), x.raw(), y, gamma.raw(), rows, n, eps, sk);
  auto k = by_chunks<LayerNormK<T>::template At>(l);
  launch_kernel(k, l.grid(rows), unsigned(l.threads), 0, ctx.stream(), static_cast<const T*>(x.raw()),
                static_cast<T*>(y), static_cast<const T*>(gamma.raw()),
                beta ? static_cast<const T*>(beta->raw()) : nullptr, FloatOut{}, FloatOut{}, rows, int(n), eps, sk);
  return true;
}

void k_skip_norm(KernelContext& ctx, bool ln) {
  const Tensor &x = ctx.input(0), &skip = ctx.input(1);
  const size_t bias_at = ln ? 4 : 3;
  const int64_t n = x.rank() ? x.dim(-1) : 0, rows = n ? x.numel() / n : 0;
  if (n == 0 || skip.numel() == 0 || skip.numel() % n || x.numel() % skip.numel())
    ctx.error("skip ", to_string(skip.shape()), " does not repeat over input ", to_string(x.shape()));
  for (size_t i = 1; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (ctx.input(i).dtype() != x.dtype()) ctx.error("input ", i, " is not input's dtype ", dtype_name(x.dtype()));
    if (i >= 2 && ctx.input(i).numel() != n) ctx.error("input ", i, " ", to_string(ctx.input(i).shape()), " is not [", n, "]");
  }
  if (ctx.has_output(1) || ctx.has_output(2)) ctx.error("outputs mean and inv_std_var are not computed");
  if (rows == 0) return;
  const float eps = ctx.attrs().get_float("epsilon", 1e-12f);
  void* sum = ctx.has_output(3) ? ctx.output(3).raw() : nullptr;
  const Tensor* bias = ctx.has_input(bias_at) ? &ctx.input(bias_at) : nullptr;
  visit_float_dtype(ctx, x.dtype(), [&]<typename T>() {
    if constexpr (kFastRowType<T>)
      if (!bias && skip_norm_fast<T>(ctx, ln, rows, n, eps, sum)) return;
    // Otherwise S into the sum output (or scratch), then the general row kernels over it.
    T* s = sum ? static_cast<T*>(sum) : static_cast<T*>(ctx.scratch(x.nbytes()));
    launch_kernel(skip_sum<T>, blocks_for(x.numel()), 256, 0, ctx.stream(), static_cast<const T*>(x.raw()),
                  static_cast<const T*>(skip.raw()), skip.numel(), bias ? static_cast<const T*>(bias->raw()) : nullptr,
                  n, s, x.numel());
    RowLaunch l = row_launch(rows, n);
    const ParamVec gamma = param_vec(ctx, 2, "gamma");
    if (ln) {
      const bool has_beta = ctx.has_input(3);
      const ParamVec beta = has_beta ? param_vec(ctx, 3, "beta") : ParamVec{};
      launch_kernel(layer_norm_rows<T>, l.grid, l.block, 0, ctx.stream(), s, static_cast<T*>(ctx.output(0).raw()),
                    gamma, beta, has_beta, FloatOut{}, FloatOut{}, rows, n, eps, l.warp_rows);
    } else {
      launch_kernel(rms_norm_rows<T>, l.grid, l.block, 0, ctx.stream(), s, float_out(ctx, 0), gamma, rows, n, eps,
                    l.warp_rows);
    }
  });
  check_launch(ctx);
}

void k_skip_layer_norm(KernelContext& ctx) { k_skip_norm(ctx, true); }
void k_skip_rms_norm(KernelContext& ctx) { k_skip_norm(ctx, false); }

}  // namespace

TESSERA_CUDA_KERNEL("SkipLayerNormalization", k_skip_layer_norm);
TESSERA_CUDA_KERNEL("SkipSimplifiedLayerNormalization", k_skip_rms_norm);
TESSERA_CUDA_KERNEL("Softmax", k_softmax);
TESSERA_CUDA_KERNEL("LogSoftmax", k_softmax);
TESSERA_CUDA_KERNEL("LayerNormalization", k_layer_norm);
TESSERA_CUDA_KERNEL("RMSNormalization", k_rms_norm);

}  // namespace tessera::cuda
