// Pad/crop copies and the bias add for kernels/conv.cc (see conv_util.h).
// f16/bf16 are added in f32 and rounded once per element.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels/conv_util.h"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda::conv {
namespace {

template <typename T>
__global__ void copy_box_kernel(const T* src, T* dst, int64_t planes, Box box, const T* bias, int64_t channels) {
  pdl_enter();
  int64_t src_cells = 1, dst_cells = 1;
  for (int d = 0; d < box.rank; ++d) {
    src_cells *= box.src[d];
    dst_cells *= box.dst[d];
  }
  int64_t total = planes * dst_cells;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t plane = i / dst_cells, rest = i - plane * dst_cells;
    // Walk the dims last to first, building the source offset row-major.
    int64_t off = 0, scale = 1;
    bool inside = true;
    for (int d = box.rank - 1; d >= 0; --d) {
      int64_t o = rest % box.dst[d];
      rest /= box.dst[d];
      int64_t s = o + box.shift[d];
      inside = inside && s >= 0 && s < box.src[d];
      off += s * scale;
      scale *= box.src[d];
    }
    compute_t<T> v = inside ? load(src, plane * src_cells + off) : compute_t<T>(0);
    if (bias) v += load(bias, plane % channels);
    store(dst, i, v);
  }
}

template <typename T>
__global__ void add_bias_kernel(T* y, const T* bias, int64_t channels, int64_t cells, int64_t total) {
  pdl_enter();
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x)
    store(y, i, load(y, i) + load(bias, (i / cells) % channels));
}

template <typename F>
void visit_conv_float(const KernelContext& ctx, DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::f16: return f.template operator()<__half>();
    case DType::bf16: return f.template operator()<__nv_bfloat16>();
    default: ctx.error("dtype ", dtype_name(t), " is not supported (float types only)");
  }
}

}  // namespace

void copy_box(const KernelContext& ctx, DType t, const void* src, void* dst, int64_t planes, const Box& box,
              const void* bias, int64_t channels) {
  int64_t cells = 1;
  for (int d = 0; d < box.rank; ++d) cells *= box.dst[d];
  int64_t total = planes * cells;
  if (total == 0) return;
  visit_conv_float(ctx, t, [&]<typename T>() {
    launch_kernel(copy_box_kernel<T>, blocks_for(total), 256, 0, ctx.stream(), static_cast<const T*>(src),
                  static_cast<T*>(dst), planes, box, static_cast<const T*>(bias), channels);
  });
  check_launch(ctx);
}

void add_bias(const KernelContext& ctx, DType t, void* y, const void* bias, int64_t batch, int64_t channels,
              int64_t cells) {
  int64_t total = batch * channels * cells;
  if (total == 0) return;
  visit_conv_float(ctx, t, [&]<typename T>() {
    launch_kernel(add_bias_kernel<T>, blocks_for(total), 256, 0, ctx.stream(), static_cast<T*>(y),
                  static_cast<const T*>(bias), channels, cells, total);
  });
  check_launch(ctx);
}

}  // namespace tessera::cuda::conv
