// CUDA kernel for TensorScatter (ops/kv_cache.cc): the output starts as a
// copy of the cache, then row b of the update lands at positions
// [w[b], w[b] + T) of the axis, moved as the widest word the rows allow.
// The write indices stay on the device, so a row that would run past the
// cache is dropped rather than reported (the CPU kernel reports it).
// inplace=1 with a cache the caller passed on the device: the executor makes
// the output that very buffer (KernelInfo::inplace_input), so only the new
// rows move; otherwise the output is its own buffer and starts as a copy.
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/kernels/copy.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

template <typename W>
__global__ void scatter_rows(const W* __restrict__ upd, const int64_t* __restrict__ w, W* __restrict__ out, int64_t outer,
                             int64_t S, int64_t T, int64_t inner, int64_t total) {
  pdl_enter();
  int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += step) {
    int64_t k = i % inner, r = i / inner, t = r % T, bo = r / T, b = bo / outer;
    int64_t start = w ? w[b] : 0;
    if (start < 0 || start + T > S) continue;
    out[(bo * S + start + t) * inner + k] = upd[i];
  }
}

void k_tensor_scatter(KernelContext& ctx) {
  const Tensor &cache = ctx.input(0), &upd = ctx.input(1);
  Tensor& out = ctx.output(0);
  if (out.raw() != cache.raw() && cache.nbytes())
    TSR_CUDA(cudaMemcpyAsync(out.raw(), cache.raw(), cache.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream()));
  if (upd.numel() == 0) return;
  int64_t rank = cache.rank(), axis = normalize_axis(ctx.attrs().get_int("axis", -2), rank, ctx.node().name);
  int64_t outer = 1, inner = 1;
  for (int64_t d = 1; d < axis; ++d) outer *= cache.dim(d);
  for (int64_t d = axis + 1; d < rank; ++d) inner *= cache.dim(d);
  size_t es = dtype_size(cache.dtype());
  size_t wb = widest_word(es, {inner * int64_t(es)}, {upd.raw(), out.raw()});
  int64_t inner_w = inner * int64_t(es) / int64_t(wb), S = cache.dim(axis), T = upd.dim(axis);
  int64_t total = upd.dim(0) * outer * T * inner_w;
  const int64_t* w = ctx.has_input(2) ? ctx.input(2).data<int64_t>() : nullptr;
  visit_word(wb, [&]<typename W>() {
    launch_kernel(scatter_rows<W>, blocks_for(total), 256, 0, ctx.stream(), static_cast<const W*>(upd.raw()), w,
                  static_cast<W*>(out.raw()), outer, S, T, inner_w, total);
  });
  check_launch(ctx);
}

}  // namespace

TESSERA_CUDA_KERNEL_INPLACE("TensorScatter", k_tensor_scatter, 0);

}  // namespace tessera::cuda
