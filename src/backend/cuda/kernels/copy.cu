// The strided copy behind the CUDA shape kernels (copy.cuh): plan
// simplification (drop 1-dims, merge contiguous runs, widen the word), a flat
// grid-stride kernel, and a 32x32 shared-memory tile for copies that swap the
// innermost dim. Index math is 32-bit when every offset fits: 64-bit division
// costs several times more and the copy is otherwise bound by memory.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "backend/cuda/kernels/copy.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera::cuda {
namespace {

template <typename I>
struct CopyArgs {
  int rank;
  I sizes[kMaxDims], src[kMaxDims], dst[kMaxDims];
  I src_base, dst_base;
};

template <typename W, typename I>
__global__ void copy_kernel(const W* __restrict__ src, W* __restrict__ dst, CopyArgs<I> a, I total) {
  pdl_enter();
  I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < total; i += step) {
    I rem = i, s = a.src_base, d = a.dst_base;
#pragma unroll
    for (int k = kMaxDims - 1; k > 0; --k) {
      if (k < a.rank) {
        I q = rem / a.sizes[k], r = rem - q * a.sizes[k];
        s += r * a.src[k];
        d += r * a.dst[k];
        rem = q;
      }
    }
    s += rem * a.src[0];
    d += rem * a.dst[0];
    dst[d] = src[s];
  }
}

// A copy seen as a plane (a, b) batched over the other dims: dim a walks the
// source contiguously (stride 1), dim b the destination. Each block moves one
// 32x32 tile of the plane through shared memory.
template <typename I>
struct TileArgs {
  I na, nb, src_b, dst_a, tiles_a, tiles, batches;
  int brank;
  I bsizes[kMaxDims], bsrc[kMaxDims], bdst[kMaxDims];
  I src_base, dst_base;
};

constexpr int kTile = 32, kTileRows = 8;

template <typename W, typename I>
__global__ void tile_kernel(const W* __restrict__ src, W* __restrict__ dst, TileArgs<I> t) {
  pdl_enter();
  __shared__ W tile[kTile][kTile + 1];
  I ta = I(blockIdx.x) % t.tiles_a, tb = I(blockIdx.x) / t.tiles_a;
  I a0 = ta * kTile, b0 = tb * kTile;
  for (I batch = blockIdx.y; batch < t.batches; batch += gridDim.y) {
    I rem = batch, so = t.src_base, dof = t.dst_base;
    for (int k = t.brank - 1; k >= 0; --k) {
      I q = rem / t.bsizes[k], r = rem - q * t.bsizes[k];
      so += r * t.bsrc[k];
      dof += r * t.bdst[k];
      rem = q;
    }
    for (int j = threadIdx.y; j < kTile; j += kTileRows) {
      I a = a0 + threadIdx.x, b = b0 + j;
      if (a < t.na && b < t.nb) tile[j][threadIdx.x] = src[so + a + b * t.src_b];
    }
    __syncthreads();
    for (int j = threadIdx.y; j < kTile; j += kTileRows) {
      I b = b0 + threadIdx.x, a = a0 + j;
      if (a < t.na && b < t.nb) dst[dof + b + a * t.dst_a] = tile[threadIdx.x][j];
    }
    __syncthreads();
  }
}

// Drop 1-dims and merge dim d into d+1 when both buffers walk them as one run.
CopyPlan simplify(const CopyPlan& p) {
  CopyPlan out;  // built innermost first, reversed at the end
  out.src_base = p.src_base;
  out.dst_base = p.dst_base;
  for (size_t d = p.sizes.size(); d-- > 0;) {
    if (p.sizes[d] == 1) continue;
    if (!out.sizes.empty()) {
      int64_t n = out.sizes.back();
      if (p.src[d] == out.src.back() * n && p.dst[d] == out.dst.back() * n) {
        out.sizes.back() *= p.sizes[d];
        continue;
      }
    }
    out.sizes.push_back(p.sizes[d]);
    out.src.push_back(p.src[d]);
    out.dst.push_back(p.dst[d]);
  }
  if (out.sizes.empty()) out = CopyPlan{{1}, {1}, {1}, p.src_base, p.dst_base};
  std::reverse(out.sizes.begin(), out.sizes.end());
  std::reverse(out.src.begin(), out.src.end());
  std::reverse(out.dst.begin(), out.dst.end());
  return out;
}

// Elements per word: the largest v (word v*elem_bytes <= 16) such that the
// innermost dim is contiguous in both buffers and every stride, base and
// address is a multiple of it. The plan is rewritten in words.
size_t widen(CopyPlan& p, size_t es, const void* src, const void* dst) {
  size_t r = p.sizes.size();
  if (p.src[r - 1] != 1 || p.dst[r - 1] != 1) return 1;
  for (size_t v = 16 / es; v > 1; v /= 2) {
    bool ok = p.sizes[r - 1] % int64_t(v) == 0 && p.src_base % int64_t(v) == 0 && p.dst_base % int64_t(v) == 0 &&
              reinterpret_cast<uintptr_t>(src) % (v * es) == 0 && reinterpret_cast<uintptr_t>(dst) % (v * es) == 0;
    for (size_t d = 0; ok && d + 1 < r; ++d) ok = p.src[d] % int64_t(v) == 0 && p.dst[d] % int64_t(v) == 0;
    if (!ok) continue;
    p.sizes[r - 1] /= int64_t(v);
    for (size_t d = 0; d + 1 < r; ++d) {
      p.src[d] /= int64_t(v);
      p.dst[d] /= int64_t(v);
    }
    p.src_base /= int64_t(v);
    p.dst_base /= int64_t(v);
    return v;
  }
  return 1;
}

// Whether every offset the plan reaches (and the flat count, plus a
// grid-stride step) fits in int32.
bool fits_i32(const CopyPlan& p, int64_t total) {
  constexpr int64_t kLimit = int64_t(std::numeric_limits<int32_t>::max()) - (int64_t(1) << 28);
  int64_t s = p.src_base, d = p.dst_base;
  for (size_t k = 0; k < p.sizes.size(); ++k) {
    s += (p.sizes[k] - 1) * std::llabs(p.src[k]);
    d += (p.sizes[k] - 1) * std::llabs(p.dst[k]);
  }
  return total < kLimit && s < kLimit && d < kLimit && p.src_base < kLimit && p.dst_base < kLimit;
}

template <typename W, typename I>
void launch_flat(const KernelContext& ctx, const void* src, void* dst, const CopyPlan& p, int64_t total) {
  CopyArgs<I> a{};
  a.rank = int(p.sizes.size());
  for (int k = 0; k < a.rank; ++k) {
    a.sizes[k] = I(p.sizes[size_t(k)]);
    a.src[k] = I(p.src[size_t(k)]);
    a.dst[k] = I(p.dst[size_t(k)]);
  }
  a.src_base = I(p.src_base);
  a.dst_base = I(p.dst_base);
  launch_kernel(copy_kernel<W, I>, blocks_for(total), 256, 0, ctx.stream(), static_cast<const W*>(src),
                static_cast<W*>(dst), a, I(total));
}

// The tile path, when the innermost destination dim is not the source's
// contiguous one and both plane sides are long enough to fill a tile.
template <typename W, typename I>
bool try_tiled(const KernelContext& ctx, const void* src, void* dst, const CopyPlan& p) {
  size_t r = p.sizes.size(), b = r - 1, a = r;
  if (r < 2 || p.dst[b] != 1 || p.src[b] == 1) return false;
  for (size_t d = 0; d < b; ++d)
    if (p.src[d] == 1) a = d;
  if (a == r || p.sizes[a] < 16 || p.sizes[b] < 16) return false;
  TileArgs<I> t{};
  t.na = I(p.sizes[a]);
  t.nb = I(p.sizes[b]);
  t.src_b = I(p.src[b]);
  t.dst_a = I(p.dst[a]);
  int64_t tiles_a = (p.sizes[a] + kTile - 1) / kTile, tiles = tiles_a * ((p.sizes[b] + kTile - 1) / kTile);
  if (tiles > std::numeric_limits<int32_t>::max()) return false;
  t.tiles_a = I(tiles_a);
  t.tiles = I(tiles);
  int64_t batches = 1;
  for (size_t d = 0; d < b; ++d) {
    if (d == a) continue;
    t.bsizes[t.brank] = I(p.sizes[d]);
    t.bsrc[t.brank] = I(p.src[d]);
    t.bdst[t.brank] = I(p.dst[d]);
    ++t.brank;
    batches *= p.sizes[d];
  }
  t.batches = I(batches);
  t.src_base = I(p.src_base);
  t.dst_base = I(p.dst_base);
  dim3 grid(unsigned(tiles), unsigned(std::min<int64_t>(batches, 65535)));
  launch_kernel(tile_kernel<W, I>, grid, dim3(kTile, kTileRows), 0, ctx.stream(), static_cast<const W*>(src),
                static_cast<W*>(dst), t);
  return true;
}

}  // namespace

CopyPlan gather_plan(const Shape& out, const std::vector<int64_t>& src_strides, int64_t src_base) {
  CopyPlan p;
  p.sizes.assign(out.begin(), out.end());
  p.src = src_strides;
  Shape st = contiguous_strides(out);
  p.dst.assign(st.begin(), st.end());
  p.src_base = src_base;
  return p;
}

void strided_copy(const KernelContext& ctx, const void* src, void* dst, size_t elem_bytes, CopyPlan plan) {
  int64_t total = 1;
  for (int64_t s : plan.sizes) total *= s;
  if (total == 0) return;
  CopyPlan p = simplify(plan);
  if (p.sizes.size() > size_t(kMaxDims))
    ctx.error("a copy of ", p.sizes.size(), " independent dims (more than ", kMaxDims, ") is not supported");
  size_t v = widen(p, elem_bytes, src, dst);
  total /= int64_t(v);
  bool i32 = fits_i32(p, total);
  visit_word(v * elem_bytes, [&]<typename W>() {
    if constexpr (sizeof(W) <= 8) {  // the tile moves single elements
      if (v == 1 && (i32 ? try_tiled<W, int32_t>(ctx, src, dst, p) : try_tiled<W, int64_t>(ctx, src, dst, p))) return;
    }
    if (i32) launch_flat<W, int32_t>(ctx, src, dst, p, total);
    else launch_flat<W, int64_t>(ctx, src, dst, p, total);
  });
  check_launch(ctx);
}

size_t widest_word(size_t elem_bytes, std::initializer_list<int64_t> counts, std::initializer_list<const void*> ptrs) {
  for (size_t w = 16; w > elem_bytes; w /= 2) {
    bool ok = true;
    for (int64_t c : counts) ok = ok && c % int64_t(w) == 0;
    for (const void* p : ptrs) ok = ok && reinterpret_cast<uintptr_t>(p) % w == 0;
    if (ok) return w;
  }
  return elem_bytes;
}

unsigned long long element_bits(const Tensor& value, DType dtype) {
  Tensor v = value.dtype() == dtype ? value : value.cast(dtype);
  unsigned long long bits = 0;
  std::memcpy(&bits, v.raw(), dtype_size(dtype));
  return bits;
}

}  // namespace tessera::cuda
