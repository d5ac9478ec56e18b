// CUDA kernels for the pooling ops (ops/pool.cc): MaxPool (with its Indices
// output), AveragePool, LpPool and their Global* forms. Our own kernels rather
// than cuDNN's pooling, which has no dilations, no asymmetric pads, no LpPool
// and no ONNX ceil_mode/count_include_pad divisor. Semantics mirror the CPU
// reference (backend/cpu/kernels/pool.cc) step for step:
//  - windows from ops/conv_rules.h (sliding_window), taps in row-major order;
//  - MaxPool: the first in-input tap seeds the maximum, later taps replace it
//    only when greater (so the first maximum wins and a NaN seed sticks);
//  - sums accumulate in double, and f16/bf16 round once at the end.
// Windowed pools run one thread per output element; the Global forms one
// block per N x C plane with a shared-memory reduction.
#include <algorithm>
#include <cfloat>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/conv_rules.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxSpatial = kMaxDims - 2;
constexpr int kGlobalThreads = 256;

enum class Kind { Max, Average, Lp };

// One window geometry, passed to the kernel by value.
struct Geom {
  int rank = 0;
  int64_t in[kMaxSpatial] = {}, out[kMaxSpatial] = {}, kernel[kMaxSpatial] = {}, stride[kMaxSpatial] = {},
          dilation[kMaxSpatial] = {}, pad_begin[kMaxSpatial] = {}, pad_end[kMaxSpatial] = {};
  int64_t pixels = 1, cells = 1, taps = 1;
};

struct Options {
  bool include_pad = false;  // AveragePool's count_include_pad
  bool col_major = false;    // MaxPool's storage_order 1, for Indices
  double p = 2;              // LpPool's power
};

template <typename C>
__device__ __forceinline__ C lowest() {
  if constexpr (std::is_same_v<C, float>) return -FLT_MAX;
  else if constexpr (std::is_same_v<C, double>) return -DBL_MAX;
  else if constexpr (std::is_same_v<C, int8_t>) return int8_t(-128);
  else return C(0);  // uint8_t
}

// AveragePool's count_include_pad divisor: per dim, the taps inside the padded
// input (a ceil_mode window may reach past the end padding; those don't count).
__device__ double padded_count(const Geom& g, const int64_t* start) {
  double n = 1;
  for (int d = 0; d < g.rank; ++d) {
    int64_t count = 0;
    for (int64_t k = 0; k < g.kernel[d]; ++k) {
      int64_t x = start[d] + k * g.dilation[d];
      count += x >= -g.pad_begin[d] && x < g.in[d] + g.pad_end[d];
    }
    n *= double(count);
  }
  return n;
}

template <typename T, Kind K>
__global__ void window_pool(const T* x, T* y, int64_t* indices, Geom g, int64_t planes, Options opt) {
  pdl_enter();
  using C = compute_t<T>;
  int64_t total = planes * g.cells;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t plane = i / g.cells, rest = i - plane * g.cells;
    int64_t start[kMaxSpatial] = {}, tap[kMaxSpatial] = {};
    for (int d = g.rank - 1; d >= 0; --d) {
      start[d] = (rest % g.out[d]) * g.stride[d] - g.pad_begin[d];
      rest /= g.out[d];
    }
    const T* img = x + plane * g.pixels;
    C best = lowest<C>();
    int64_t arg_row = -1, arg_col = -1, valid = 0;
    double acc = 0;
    for (int64_t t = 0; t < g.taps; ++t) {
      int64_t off = 0, col = 0, col_stride = 1;
      bool inside = true;
      for (int d = 0; d < g.rank; ++d) {
        int64_t xd = start[d] + tap[d] * g.dilation[d];
        inside = inside && xd >= 0 && xd < g.in[d];
        off = off * g.in[d] + xd;
        col += xd * col_stride;  // column-major: the first spatial dim fastest
        col_stride *= g.in[d];
      }
      for (int d = g.rank - 1; d >= 0; --d) {  // next tap, row-major over the kernel
        if (++tap[d] < g.kernel[d]) break;
        tap[d] = 0;
      }
      if (!inside) continue;
      C v = load(img, off);
      if constexpr (K == Kind::Max) {
        if (arg_row < 0 || v > best) {
          best = v;
          arg_row = off;
          arg_col = col;
        }
      } else if constexpr (K == Kind::Average) {
        acc += double(v);
        ++valid;
      } else {
        acc += pow(fabs(double(v)), opt.p);
      }
    }
    if constexpr (K == Kind::Max) {
      store(y, i, best);
      if (indices) indices[i] = arg_row < 0 ? -1 : plane * g.pixels + (opt.col_major ? arg_col : arg_row);
    } else if constexpr (K == Kind::Average) {
      store(y, i, acc / (opt.include_pad ? padded_count(g, start) : double(valid)));
    } else {
      store(y, i, pow(acc, 1.0 / opt.p));
    }
  }
}

template <typename T, Kind K>
__global__ void global_pool(const T* x, T* y, int64_t planes, int64_t pixels, double p) {
  pdl_enter();
  using C = compute_t<T>;
  __shared__ double sums[kGlobalThreads];
  __shared__ C maxes[kGlobalThreads];
  for (int64_t plane = blockIdx.x; plane < planes; plane += gridDim.x) {
    const T* img = x + plane * pixels;
    // Every thread seeds its maximum with the plane's first element, as the CPU's
    // first tap does: a NaN there is the answer, a later NaN is never taken.
    C best = pixels > 0 ? load(img, 0) : lowest<C>();
    double acc = 0;
    for (int64_t j = threadIdx.x; j < pixels; j += blockDim.x) {
      C v = load(img, j);
      if constexpr (K == Kind::Max) best = v > best ? v : best;
      else if constexpr (K == Kind::Average) acc += double(v);
      else acc += pow(fabs(double(v)), p);
    }
    sums[threadIdx.x] = acc;
    maxes[threadIdx.x] = best;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
      if (threadIdx.x < half) {
        sums[threadIdx.x] += sums[threadIdx.x + half];
        C other = maxes[threadIdx.x + half];
        if (other > maxes[threadIdx.x]) maxes[threadIdx.x] = other;
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) {
      if constexpr (K == Kind::Max) store(y, plane, maxes[0]);
      else if constexpr (K == Kind::Average) store(y, plane, sums[0] / double(pixels));
      else store(y, plane, pow(sums[0], 1.0 / p));
    }
    __syncthreads();  // the shared arrays are reused for the next plane
  }
}

// f32/f64/f16/bf16, and int8/uint8 where `ints` (MaxPool); otherwise an error.
template <typename F>
void visit_pool_dtype(const KernelContext& ctx, DType t, bool ints, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    case DType::i8: if (ints) return f.template operator()<int8_t>(); break;
    case DType::u8: if (ints) return f.template operator()<uint8_t>(); break;
    default: break;
  }
  ctx.error("dtype ", dtype_name(t), " is not supported (float types", ints ? ", int8 or uint8)" : " only)");
}

Geom geom_of(const KernelContext& ctx, const rules::Window& w) {
  Geom g;
  if (w.in.size() > size_t(kMaxSpatial)) ctx.error(w.in.size(), " spatial dims (at most ", kMaxSpatial, " on cuda)");
  g.rank = int(w.in.size());
  for (int d = 0; d < g.rank; ++d) {
    size_t i = size_t(d);
    g.in[d] = w.in[i];
    g.out[d] = w.out[i];
    g.kernel[d] = w.kernel[i];
    g.stride[d] = w.stride[i];
    g.dilation[d] = w.dilation[i];
    g.pad_begin[d] = w.pad_begin[i];
    g.pad_end[d] = w.pad_end[i];
    g.pixels *= w.in[i];
    g.cells *= w.out[i];
    g.taps *= w.kernel[i];
  }
  return g;
}

bool is_global(const KernelContext& ctx) { return ctx.node().op.starts_with("Global"); }

template <Kind K>
void run_global(const KernelContext& ctx, double p) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  int64_t planes = x.dim(0) * x.dim(1), pixels = numel(rules::spatial_dims(x.shape()));
  if (planes == 0) return;
  unsigned grid = unsigned(std::min<int64_t>(planes, int64_t(1) << 20));
  visit_pool_dtype(ctx, x.dtype(), false, [&]<typename T>() {
    launch_kernel(global_pool<T, K>, grid, kGlobalThreads, 0, ctx.stream(), x.data<T>(), y.data<T>(), planes, pixels,
                  p);
  });
  check_launch(ctx);
}

template <Kind K>
void run_window(const KernelContext& ctx, const Options& opt) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  rules::Window w = rules::sliding_window(rules::spatial_dims(x.shape()), ctx.attrs().get_ints("kernel_shape"), ctx.attrs(),
                                          ctx.attrs().get_int("ceil_mode", 0) != 0, rules::node_label(ctx.node()));
  if (w.out != rules::spatial_dims(y.shape())) ctx.error("window extents disagree with the inferred output");
  Geom g = geom_of(ctx, w);
  int64_t planes = x.dim(0) * x.dim(1), total = planes * g.cells;
  if (total == 0) return;
  int64_t* indices = K == Kind::Max && ctx.has_output(1) ? ctx.output(1).data<int64_t>() : nullptr;
  visit_pool_dtype(ctx, x.dtype(), K == Kind::Max, [&]<typename T>() {
    launch_kernel(window_pool<T, K>, blocks_for(total), 256, 0, ctx.stream(), x.data<T>(), y.data<T>(), indices, g,
                  planes, opt);
  });
  check_launch(ctx);
}

void k_max_pool(KernelContext& ctx) {
  if (is_global(ctx)) return run_global<Kind::Max>(ctx, 0);
  Options opt;
  opt.col_major = ctx.attrs().get_int("storage_order", 0) == 1;
  run_window<Kind::Max>(ctx, opt);
}
TESSERA_CUDA_KERNEL("MaxPool", k_max_pool);
TESSERA_CUDA_KERNEL("GlobalMaxPool", k_max_pool);

void k_average_pool(KernelContext& ctx) {
  if (is_global(ctx)) return run_global<Kind::Average>(ctx, 0);
  Options opt;
  opt.include_pad = ctx.attrs().get_int("count_include_pad", 0) != 0;
  run_window<Kind::Average>(ctx, opt);
}
TESSERA_CUDA_KERNEL("AveragePool", k_average_pool);
TESSERA_CUDA_KERNEL("GlobalAveragePool", k_average_pool);

void k_lp_pool(KernelContext& ctx) {
  double p = double(ctx.attrs().get_int("p", 2));
  if (is_global(ctx)) return run_global<Kind::Lp>(ctx, p);
  Options opt;
  opt.p = p;
  run_window<Kind::Lp>(ctx, opt);
}
TESSERA_CUDA_KERNEL("LpPool", k_lp_pool);
TESSERA_CUDA_KERNEL("GlobalLpPool", k_lp_pool);

}  // namespace
}  // namespace tessera::cuda
