// Rope (ops/rope.cc) on the GPU: f32 arithmetic (f64 for f64), rounded once.
// The common case (16-bit or f32 X, tables spanning the head dim, everything
// 16-byte aligned, under 2^31 elements) gives a thread 16 bytes of Y: one
// vector load each of X, its rotation partners, cos and sin, with 32-bit
// index math and divisions by multiply-shift (FastDiv; 64-bit divisions per
// chunk held Llama's [16, 512, 32, 128] Q at 28% of DRAM bandwidth on an
// H200). Otherwise one thread per element with 64-bit indices.
// With the block attribute X is a wider tensor whose column block rotates;
// with full = 1, Y is all of X, the columns outside the block copied.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/fast_div.cuh"
#include "backend/cuda/kernel_registry.h"
#include "backend/cuda/kernels/rope.h"
#include "backend/cuda/pdl.cuh"
#include "ops/rope_rules.h"

namespace tessera::cuda {
namespace {

using RopeDims = rope::Dims;
constexpr int kMaxRank = rope::kMaxRank;

// Block element e, or -1 when Y's element i is a copied column (full); x_at: i's element of X.
__device__ __forceinline__ int64_t block_index(const RopeDims& r, int64_t i, int64_t& x_at) {
  if (!r.full) {
    x_at = (i / r.width) * r.in_row + r.begin + i % r.width;
    return i;
  }
  x_at = i;
  const int64_t row = i / r.in_row, col = i % r.in_row - r.begin;
  return col >= 0 && col < r.width ? row * r.width + col : -1;
}

template <typename T>
__global__ void rope_kernel(const T* __restrict__ x, const T* __restrict__ cs, const T* __restrict__ sn, T* __restrict__ y,
                            RopeDims r) {
  pdl_enter();
  using C = compute_t<T>;
  const int64_t half = r.d / 2;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < r.n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t k;
    const int64_t e = block_index(r, i, k);
    if (e < 0) {
      y[i] = x[i];
      continue;
    }
    int64_t rest = e, oc = 0, os = 0;
    for (int a = r.rank - 1; a >= 0; --a) {
      int64_t idx = rest % r.dims[a];
      rest /= r.dims[a];
      oc += idx * r.cos_st[a];
      os += idx * r.sin_st[a];
    }
    const int64_t j = e % r.d;
    C rot = r.interleaved ? (j % 2 ? load(x, k - 1) : -load(x, k + 1)) : (j < half ? -load(x, k + half) : load(x, k - half));
    store(y, i, load(x, k) * load(cs, oc) + rot * load(sn, os));
  }
}

// RopeDims in 32 bits for rope_vec (every index below 2^31).
struct RopeVec {
  int rank;  // the block's rank; dims[0 .. rank-2] are divided by, D by d
  FastDiv dims[kMaxRank], d, in_row, width;
  uint32_t cos_st[kMaxRank], sin_st[kMaxRank];
  uint32_t chunks, begin;
  bool full, interleaved;
};

template <typename T>
__global__ void rope_vec(const T* __restrict__ x, const T* __restrict__ cs, const T* __restrict__ sn, T* __restrict__ y,
                         RopeVec r) {
  pdl_enter();
  constexpr uint32_t V = 16 / sizeof(T);
  using C = compute_t<T>;
  const uint32_t half = r.d.d / 2;
  for (uint32_t c = blockIdx.x * blockDim.x + threadIdx.x; c < r.chunks; c += gridDim.x * blockDim.x) {
    const uint32_t i = c * V;
    uint32_t e, k;  // the block element and X's element of Y's element i
    if (r.full) {
      const uint32_t row = r.in_row.div(i), col = i - row * r.in_row.d;
      if (col < r.begin || col >= r.begin + r.width.d) {  // whole chunks: begin and width are multiples of V
        *reinterpret_cast<uint4*>(y + i) = __ldg(reinterpret_cast<const uint4*>(x + i));
        continue;
      }
      e = row * r.width.d + col - r.begin, k = i;
    } else {
      const uint32_t row = r.width.div(i);
      e = i, k = row * r.in_row.d + r.begin + (i - row * r.width.d);
    }
    uint32_t rest = r.d.div(e);
    const uint32_t j = e - rest * r.d.d;
    uint32_t oc = j, os = j;  // the tables' last stride is 1
#pragma unroll
    for (int a = kMaxRank - 2; a >= 0; --a) {  // unrolled: the parameters are indexed statically
      if (a > r.rank - 2) continue;
      const uint32_t q = r.dims[a].div(rest), idx = rest - q * r.dims[a].d;
      rest = q;
      oc += idx * r.cos_st[a];
      os += idx * r.sin_st[a];
    }
    uint4 xr = __ldg(reinterpret_cast<const uint4*>(x + k)), cr = __ldg(reinterpret_cast<const uint4*>(cs + oc)),
          sr = __ldg(reinterpret_cast<const uint4*>(sn + os)), pr = xr;
    if (!r.interleaved) pr = __ldg(reinterpret_cast<const uint4*>(x + (j < half ? k + half : k - half)));
    const T *xe = reinterpret_cast<const T*>(&xr), *ce = reinterpret_cast<const T*>(&cr),
            *se = reinterpret_cast<const T*>(&sr), *pe = reinterpret_cast<const T*>(&pr);
    uint4 out;
    T* oe = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int t = 0; t < int(V); ++t) {
      C rot = r.interleaved ? (t % 2 ? load(xe, t - 1) : -load(xe, t + 1)) : (j < half ? -load(pe, t) : load(pe, t));
      store(oe, t, load(xe, t) * load(ce, t) + rot * load(se, t));
    }
    *reinterpret_cast<uint4*>(y + i) = out;
  }
}

// rope_vec applies: under 2^31 elements of X and Y, whole 16-byte chunks that never straddle
// the two halves or the block's edges, tables contiguous along the head dim with chunk-aligned
// offsets, aligned pointers. Fills `v`.
bool vec_fits(const RopeDims& r, int64_t x_numel, size_t elem, std::initializer_list<const void*> ptrs, RopeVec& v) {
  const int64_t n = int64_t(16 / elem);
  if (elem > 4 || r.rank < 1 || r.d % (2 * n) || r.cos_st[r.rank - 1] != 1 || r.sin_st[r.rank - 1] != 1) return false;
  if (r.in_row % n || r.begin % n || r.width % n || r.n % n) return false;
  if (x_numel >= (int64_t(1) << 31) || r.n >= (int64_t(1) << 31)) return false;
  for (int a = 0; a + 1 < r.rank; ++a)
    if (r.cos_st[a] % n || r.sin_st[a] % n || r.cos_st[a] >= (int64_t(1) << 31) || r.sin_st[a] >= (int64_t(1) << 31)) return false;
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  v.rank = r.rank;
  for (int a = 0; a < r.rank; ++a) {
    v.dims[a] = make_fastdiv(uint32_t(r.dims[a]));
    v.cos_st[a] = uint32_t(r.cos_st[a]), v.sin_st[a] = uint32_t(r.sin_st[a]);
  }
  v.d = make_fastdiv(uint32_t(r.d)), v.in_row = make_fastdiv(uint32_t(r.in_row)), v.width = make_fastdiv(uint32_t(r.width));
  v.chunks = uint32_t(r.n / n), v.begin = uint32_t(r.begin);
  v.full = r.full, v.interleaved = r.interleaved;
  return true;
}

void k_rope(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &cs = ctx.input(1), &sn = ctx.input(2);
  const Tensor& y = ctx.output(0);
  RopeDims r{};
  r.full = ctx.attrs().get_int("full", 0) != 0;
  if (r.full && !ctx.attrs().has("block")) ctx.error("full = 1 needs a block attribute");
  // The rotated block's shape: Y, or with full the block view of X.
  Shape blk = y.shape();
  if (ctx.attrs().has("block")) {
    const std::vector<int64_t> b = ctx.attrs().get_ints("block");
    std::string bad = rules::rope_block_shape(x.shape(), b, blk);
    if (!bad.empty()) ctx.error(bad);
    if (r.full && y.shape() != x.shape()) ctx.error("Y ", to_string(y.shape()), " is not X's shape ", to_string(x.shape()), " (full = 1)");
    if (!r.full && blk != y.shape()) ctx.error("block of X ", to_string(blk), " is not Y ", to_string(y.shape()));
    r.in_row = x.dim(-1), r.width = b[1] * b[2], r.begin = b[0];
  }
  if (blk.size() > size_t(kMaxRank)) ctx.error("rank ", blk.size(), " is above the ", kMaxRank, " this kernel takes");
  if (size_t(cs.rank()) > blk.size() || size_t(sn.rank()) > blk.size()) ctx.error("a table has a higher rank than the rotated block");
  r.rank = int(blk.size());
  for (int a = 0; a < r.rank; ++a) r.dims[a] = blk[size_t(a)];
  std::vector<int64_t> cos_st = broadcast_strides(cs.shape(), blk), sin_st = broadcast_strides(sn.shape(), blk);
  std::copy(cos_st.begin(), cos_st.end(), r.cos_st);
  std::copy(sin_st.begin(), sin_st.end(), r.sin_st);
  r.n = y.numel();
  r.d = r.rank ? blk.back() : 0;
  if (!ctx.attrs().has("block")) r.in_row = r.width = std::max<int64_t>(r.d, 1);
  r.interleaved = ctx.attrs().get_int("interleaved", 0) != 0;
  if (r.n == 0) return;
  if (r.d % 2) ctx.error("head dim ", r.d, " is odd");
  rope::launch(ctx, x.dtype(), r, x.raw(), x.numel(), cs.raw(), sn.raw(), ctx.output(0).raw());
}

}  // namespace

void rope::launch(KernelContext& ctx, DType dt, const RopeDims& r, const void* x, int64_t x_numel, const void* cs,
                  const void* sn, void* y) {
  visit_device_dtype(dt, [&]<typename T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>) {
      RopeVec v;
      if (vec_fits(r, x_numel, sizeof(T), {x, cs, sn, y}, v)) {
        launch_kernel(rope_vec<T>, blocks_for(int64_t(v.chunks)), 256, 0, ctx.stream(), static_cast<const T*>(x),
                      static_cast<const T*>(cs), static_cast<const T*>(sn), static_cast<T*>(y), v);
        check_launch(ctx);
        return;
      }
    }
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, __half> ||
                  std::is_same_v<T, __nv_bfloat16>)
      launch_kernel(rope_kernel<T>, blocks_for(r.n), 256, 0, ctx.stream(), static_cast<const T*>(x),
                    static_cast<const T*>(cs), static_cast<const T*>(sn), static_cast<T*>(y), r);
    else
      ctx.error("dtype ", dtype_name(dt), " is not a float type");
  });
  check_launch(ctx);
}

TESSERA_CUDA_KERNEL("Rope", k_rope);

}  // namespace tessera::cuda
