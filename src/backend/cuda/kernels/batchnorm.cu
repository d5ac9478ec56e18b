// CUDA BatchNormalization (inference) and InstanceNormalization (semantics:
// backend/cpu/kernels/batchnorm.cc). Both are y = x * a + b per channel (or
// per (n, c) plane), with a, b and InstanceNormalization's statistics in f32
// (f64 for f64 inputs). The per-channel vectors may be any float dtype.
#include <cmath>

#include "backend/cuda/kernels/reduce_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

template <typename F>
void visit_float_x(const KernelContext& ctx, DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    case DType::f64: return f.template operator()<double>();
    default: ctx.error("input X is ", dtype_name(t), ", expected a float type");
  }
}

// Element i is in plane i / inner, channel plane % channels.
template <typename T>
__global__ void batch_norm(const T* x, T* y, int64_t total, int64_t inner, int64_t channels, ParamVec scale, ParamVec bias,
                           ParamVec mean, ParamVec var, float eps) {
  pdl_enter();
  using A = compute_t<T>;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t ch = (i / inner) % channels;
    A a = scale.at<A>(ch) / sqrt(var.at<A>(ch) + A(eps));
    A b = bias.at<A>(ch) - mean.at<A>(ch) * a;
    store(y, i, load(x, i) * a + b);
  }
}

void k_batch_norm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) ctx.error("input X ", to_string(x.shape()), " must be [N, C, ...]");
  int64_t ch = x.dim(1), planes = x.dim(0) * ch, inner = planes ? x.numel() / planes : 0;
  ParamVec scale = param_vec(ctx, 1, "scale"), bias = param_vec(ctx, 2, "B"), mean = param_vec(ctx, 3, "input_mean"),
           var = param_vec(ctx, 4, "input_var");
  if (x.numel() == 0) return;
  float eps = ctx.attrs().get_float("epsilon", 1e-5f);
  visit_float_x(ctx, x.dtype(), [&]<typename T>() {
    launch_kernel(batch_norm<T>, blocks_for(x.numel()), 256, 0, ctx.stream(), static_cast<const T*>(x.raw()),
                  static_cast<T*>(ctx.output(0).raw()), x.numel(), inner, ch, scale, bias, mean, var, eps);
  });
  check_launch(ctx);
}

// One warp (small planes) or one block per (n, c) plane of `inner` elements.
template <typename T>
__global__ void instance_norm(const T* x, T* y, int64_t planes, int64_t inner, int64_t channels, ParamVec scale, ParamVec bias,
                              float eps, bool warp_planes) {
  pdl_enter();
  using A = compute_t<T>;
  auto merge = [](Welford<A>& a, const Welford<A>& b) { Welford<A>::merge(a, b); };
  int tid = int(threadIdx.x), nt = int(blockDim.x);
  int64_t p = blockIdx.x, step = gridDim.x;
  if (warp_planes) {
    tid = threadIdx.x & 31, nt = 32;
    p = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5), step = planes;
  }
  for (; p < planes; p += step) {
    const T* px = x + p * inner;
    Welford<A> s{A(0), A(0), A(0)};
    for_row(px, inner, tid, nt, [&](int64_t, A v) { s.add(v); });
    s = warp_planes ? warp_all_reduce(s, merge) : block_all_reduce(s, merge);
    int64_t ch = p % channels;
    A a = scale.at<A>(ch) / sqrt(s.m2 / A(inner) + A(eps));
    A b = bias.at<A>(ch) - s.mean * a;
    for (int64_t j = tid; j < inner; j += nt) store(y, p * inner + j, load(px, j) * a + b);
  }
}

void k_instance_norm(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 3) ctx.error("input X ", to_string(x.shape()), " must be [N, C, D1, ...]");
  int64_t ch = x.dim(1), planes = x.dim(0) * ch, inner = planes ? x.numel() / planes : 0;
  ParamVec scale = param_vec(ctx, 1, "scale"), bias = param_vec(ctx, 2, "B");
  if (planes == 0 || inner == 0) return;
  float eps = ctx.attrs().get_float("epsilon", 1e-5f);
  bool warp_planes = inner <= kWarpRowMax;
  unsigned grid = warp_planes ? unsigned((planes + 7) / 8) : unsigned(std::min<int64_t>(planes, 1 << 20));
  unsigned block = warp_planes ? 256 : unsigned(kBlockRowThreads);
  visit_float_x(ctx, x.dtype(), [&]<typename T>() {
    launch_kernel(instance_norm<T>, grid, block, 0, ctx.stream(), static_cast<const T*>(x.raw()),
                  static_cast<T*>(ctx.output(0).raw()), planes, inner, ch, scale, bias, eps, warp_planes);
  });
  check_launch(ctx);
}

}  // namespace

TESSERA_CUDA_KERNEL("BatchNormalization", k_batch_norm);
TESSERA_CUDA_KERNEL("InstanceNormalization", k_instance_norm);

}  // namespace tessera::cuda
