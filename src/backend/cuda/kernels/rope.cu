// Rope (ops/rope.cc) on the GPU: f32 arithmetic (f64 for f64), rounded once.
// The common case (16-bit or f32 X, tables spanning the head dim, everything
// 16-byte aligned) gives a thread 16 bytes of X: one vector load each of X,
// its rotation partners, cos and sin, and the broadcast offsets worked out
// once per chunk. Otherwise one thread per element (on an H200 that took
// 118 us for Llama's [1, 2048, 32, 128] bf16 Q: 64-bit divisions per element).
// With the block attribute X is a wider tensor whose column block Y rotates.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernel_registry.h"
#include "ops/rope_rules.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxRank = 8;

// Y's dims and each table's strides along them (0 where the table broadcasts).
// Y's element i reads X at xi(i): rows of `out_row` elements of Y are columns
// [begin, begin + out_row) of X's rows of `in_row` (the block attribute; without
// it in_row = out_row = d and begin = 0, so xi(i) = i).
struct RopeDims {
  int rank;
  int64_t dims[kMaxRank], cos_st[kMaxRank], sin_st[kMaxRank];
  int64_t n, d;
  int64_t in_row, out_row, begin;
  bool interleaved;
  __device__ __forceinline__ int64_t xi(int64_t i) const { return (i / out_row) * in_row + begin + i % out_row; }
};

template <typename T>
__global__ void rope_kernel(const T* __restrict__ x, const T* __restrict__ cs, const T* __restrict__ sn, T* __restrict__ y,
                            RopeDims r) {
  using C = compute_t<T>;
  const int64_t half = r.d / 2;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < r.n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rest = i, oc = 0, os = 0;
    for (int a = r.rank - 1; a >= 0; --a) {
      int64_t idx = rest % r.dims[a];
      rest /= r.dims[a];
      oc += idx * r.cos_st[a];
      os += idx * r.sin_st[a];
    }
    const int64_t j = i % r.d, k = r.xi(i);
    C rot = r.interleaved ? (j % 2 ? load(x, k - 1) : -load(x, k + 1)) : (j < half ? -load(x, k + half) : load(x, k - half));
    store(y, i, load(x, k) * load(cs, oc) + rot * load(sn, os));
  }
}

template <typename T>
__global__ void rope_vec(const T* __restrict__ x, const T* __restrict__ cs, const T* __restrict__ sn, T* __restrict__ y,
                         RopeDims r) {
  constexpr int V = 16 / int(sizeof(T));
  using C = compute_t<T>;
  const int64_t half = r.d / 2, chunks = r.n / V;
  for (int64_t c = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; c < chunks; c += int64_t(gridDim.x) * blockDim.x) {
    const int64_t i = c * V, j = i % r.d;
    int64_t rest = i / r.d, oc = j, os = j;  // the tables' last stride is 1
    for (int a = r.rank - 2; a >= 0; --a) {
      int64_t idx = rest % r.dims[a];
      rest /= r.dims[a];
      oc += idx * r.cos_st[a];
      os += idx * r.sin_st[a];
    }
    const int64_t k = r.xi(i);
    uint4 xr = __ldg(reinterpret_cast<const uint4*>(x + k)), cr = __ldg(reinterpret_cast<const uint4*>(cs + oc)),
          sr = __ldg(reinterpret_cast<const uint4*>(sn + os)), pr = xr;
    if (!r.interleaved) pr = __ldg(reinterpret_cast<const uint4*>(x + (j < half ? k + half : k - half)));
    const T *xe = reinterpret_cast<const T*>(&xr), *ce = reinterpret_cast<const T*>(&cr),
            *se = reinterpret_cast<const T*>(&sr), *pe = reinterpret_cast<const T*>(&pr);
    uint4 out;
    T* oe = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < V; ++k) {
      C rot = r.interleaved ? (k % 2 ? load(xe, k - 1) : -load(xe, k + 1)) : (j < half ? -load(pe, k) : load(pe, k));
      store(oe, k, load(xe, k) * load(ce, k) + rot * load(se, k));
    }
    *reinterpret_cast<uint4*>(y + i) = out;
  }
}

// rope_vec applies: whole 16-byte chunks that never straddle the two halves,
// tables contiguous along the head dim with chunk-aligned offsets, aligned pointers.
bool vec_fits(const RopeDims& r, size_t elem, std::initializer_list<const void*> ptrs) {
  const int64_t v = int64_t(16 / elem);
  if (elem > 4 || r.rank < 1 || r.d % (2 * v) || r.cos_st[r.rank - 1] != 1 || r.sin_st[r.rank - 1] != 1) return false;
  if (r.in_row % v || r.begin % v || r.out_row % v) return false;
  for (int a = 0; a + 1 < r.rank; ++a)
    if (r.cos_st[a] % v || r.sin_st[a] % v) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

void k_rope(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &cs = ctx.input(1), &sn = ctx.input(2);
  const Tensor& y = ctx.output(0);
  if (y.rank() > kMaxRank) ctx.error("rank ", y.rank(), " is above the ", kMaxRank, " this kernel takes");
  if (cs.rank() > y.rank() || sn.rank() > y.rank()) ctx.error("a table has a higher rank than Y");
  RopeDims r{};
  r.rank = int(y.rank());
  for (int a = 0; a < r.rank; ++a) r.dims[a] = y.dim(a);
  std::vector<int64_t> cos_st = broadcast_strides(cs.shape(), y.shape()), sin_st = broadcast_strides(sn.shape(), y.shape());
  std::copy(cos_st.begin(), cos_st.end(), r.cos_st);
  std::copy(sin_st.begin(), sin_st.end(), r.sin_st);
  r.n = y.numel();
  r.d = r.rank ? y.dim(-1) : 0;
  r.in_row = r.out_row = std::max<int64_t>(r.d, 1);
  if (ctx.attrs().has("block")) {
    const std::vector<int64_t> b = ctx.attrs().get_ints("block");
    Shape want;
    std::string bad = rules::rope_block_shape(x.shape(), b, want);
    if (!bad.empty()) ctx.error(bad);
    if (want != y.shape()) ctx.error("block of X ", to_string(x.shape()), " is ", to_string(want), ", not Y ", to_string(y.shape()));
    r.in_row = x.dim(-1), r.out_row = b[1] * b[2], r.begin = b[0];
  }
  r.interleaved = ctx.attrs().get_int("interleaved", 0) != 0;
  if (r.n == 0) return;
  if (r.d % 2) ctx.error("head dim ", r.d, " is odd");
  visit_device_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      if (vec_fits(r, sizeof(T), {x.raw(), cs.raw(), sn.raw(), ctx.output(0).raw()})) {
        rope_vec<T><<<blocks_for(r.n / int64_t(16 / sizeof(T))), 256, 0, ctx.stream()>>>(
            static_cast<const T*>(x.raw()), static_cast<const T*>(cs.raw()), static_cast<const T*>(sn.raw()),
            static_cast<T*>(ctx.output(0).raw()), r);
        check_launch(ctx);
        return;
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> ||
                  std::is_same_v<T, __nv_bfloat16>)
      rope_kernel<T><<<blocks_for(r.n), 256, 0, ctx.stream()>>>(static_cast<const T*>(x.raw()), static_cast<const T*>(cs.raw()),
                                                              static_cast<const T*>(sn.raw()), static_cast<T*>(ctx.output(0).raw()), r);
    else
      ctx.error("dtype ", dtype_name(x.dtype()), " is not a float type");
  });
  check_launch(ctx);
}

}  // namespace

TESSERA_CUDA_KERNEL("Rope", k_rope);

}  // namespace tessera::cuda
