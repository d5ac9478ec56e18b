// CUDA kernels for the indexing ops that choose elements by value
// (ops/indexing.cc): TopK, ArgMax, ArgMin. Values are compared in the
// compute type (f16/bf16 as f32) and moved as stored, like the CPU kernels.
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/shape_rules.h"

namespace tessera::cuda {
namespace {
using rules::node_label;

template <typename C>
__device__ __forceinline__ bool is_nan(C v) {
  if constexpr (std::is_floating_point_v<C>) return v != v;
  else return false;
}

// A tensor seen around one axis: `outer` blocks of n slices of `inner` elements.
struct Lines {
  int64_t outer = 1, n = 1, inner = 1;
};
Lines lines_around(const Shape& s, size_t axis) {
  Lines l;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i < axis) l.outer *= s[i];
    if (i == axis) l.n = s[i];
    if (i > axis) l.inner *= s[i];
  }
  return l;
}

// ---- TopK ----

// A total order for ranking: NaN above every number (NaNs tie), so that the
// ranks of a line are a permutation and every output slot is written. Without
// NaN it is the CPU's order: by value, ties by the lower index.
template <typename C>
__device__ __forceinline__ bool above(C a, C b) {
  return (is_nan(a) && !is_nan(b)) || a > b;
}
template <typename C>
__device__ __forceinline__ bool same(C a, C b) {
  return a == b || (is_nan(a) && is_nan(b));
}

// One thread per input element: its rank is the number of elements of its
// line that come first; the k first land at their rank. Counting stops at k,
// so an element far from the top stops early (about n*k*log(n) compares per
// line rather than n*n).
template <typename T>
__global__ void topk_kernel(const T* __restrict__ x, T* __restrict__ vals, int64_t* __restrict__ inds, Lines l, int64_t k,
                            bool largest, int64_t total) {
  pdl_enter();
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < total; e += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = e / l.inner, in = e - r * l.inner, o = r / l.n, pos = r - o * l.n;
    const T* line = x + o * l.n * l.inner + in;
    auto v = load(line, pos * l.inner);
    int64_t rank = 0;
    for (int64_t j = 0; j < l.n && rank < k; ++j) {
      auto w = load(line, j * l.inner);
      bool first = largest ? above(w, v) : above(v, w);
      if (first || (j < pos && same(w, v))) ++rank;
    }
    if (rank < k) {
      int64_t dst = (o * k + rank) * l.inner + in;
      vals[dst] = line[pos * l.inner];
      if (inds) inds[dst] = pos;
    }
  }
}

void k_topk(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& vals = ctx.output(0);
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", -1), x.rank(), node_label(ctx.node())));
  bool largest = ctx.attrs().get_int("largest", 1) != 0;
  int64_t k = vals.shape()[axis];
  if (vals.numel() == 0) return;
  Lines l = lines_around(x.shape(), axis);
  int64_t* inds = ctx.has_output(1) ? ctx.output(1).data<int64_t>() : nullptr;
  visit_device_dtype(x.dtype(), [&]<typename T>() {
    launch_kernel(topk_kernel<T>, blocks_for(x.numel()), 256, 0, ctx.stream(), x.data<T>(), vals.data<T>(), inds, l, k,
                  largest, x.numel());
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("TopK", k_topk);

// ---- ArgMax / ArgMin ----

template <bool Max, typename C>
__device__ __forceinline__ bool better(C v, C cur) {
  if constexpr (Max) return v > cur;
  else return v < cur;
}

// One thread per line, the CPU's scan exactly: the first extreme (the last
// with select_last_index); NaN is never taken unless it is element 0.
template <typename T, bool Max>
__global__ void arg_lines(const T* __restrict__ x, int64_t* __restrict__ y, Lines l, bool last) {
  pdl_enter();
  int64_t lines = l.outer * l.inner;
  for (int64_t line = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; line < lines; line += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = line / l.inner, in = line - o * l.inner;
    const T* row = x + o * l.n * l.inner + in;
    int64_t best = 0;
    auto cur = load(row, 0);
    for (int64_t i = 1; i < l.n; ++i) {
      auto v = load(row, i * l.inner);
      if (better<Max>(v, cur) || (last && v == cur)) {
        best = i;
        cur = v;
      }
    }
    y[line] = best;
  }
}

// One block per contiguous row (inner == 1, long rows): each thread scans a
// strided part skipping NaN, then a tree merge by (value, index). The CPU's
// scan gives the same answer: a NaN at element 0 wins, any other NaN is
// never taken, and among the rest the first (or last) extreme wins.
constexpr int kArgThreads = 256;

template <typename T, bool Max>
__global__ void arg_rows(const T* __restrict__ x, int64_t* __restrict__ y, int64_t rows, int64_t n, bool last) {
  pdl_enter();
  using C = compute_t<T>;
  __shared__ C sv[kArgThreads];
  __shared__ int64_t si[kArgThreads];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * n;
    C bv{};
    int64_t bi = -1;
    for (int64_t i = threadIdx.x; i < n; i += kArgThreads) {
      C v = load(row, i);
      if (is_nan(v)) continue;
      if (bi < 0 || better<Max>(v, bv) || (last && v == bv)) {
        bv = v;
        bi = i;
      }
    }
    sv[threadIdx.x] = bv;
    si[threadIdx.x] = bi;
    __syncthreads();
    for (int s = kArgThreads / 2; s > 0; s /= 2) {
      if (int(threadIdx.x) < s) {
        C ov = sv[threadIdx.x + s];
        int64_t oi = si[threadIdx.x + s], mi = si[threadIdx.x];
        bool take = false;
        if (oi >= 0) {
          if (mi < 0 || better<Max>(ov, sv[threadIdx.x])) take = true;
          else if (!better<Max>(sv[threadIdx.x], ov)) take = last ? oi > mi : oi < mi;  // equal values
        }
        if (take) {
          sv[threadIdx.x] = ov;
          si[threadIdx.x] = oi;
        }
      }
      __syncthreads();
    }
    if (threadIdx.x == 0) y[r] = (is_nan(load(row, 0)) || si[0] < 0) ? 0 : si[0];
    __syncthreads();
  }
}

void k_arg_reduce(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", 0), x.rank(), node_label(ctx.node())));
  bool want_max = ctx.node().op == "ArgMax", last = ctx.attrs().get_int("select_last_index", 0) != 0;
  Lines l = lines_around(x.shape(), axis);
  if (out.numel() == 0 || l.n == 0) return;  // inference refuses an empty axis
  visit_device_dtype(x.dtype(), [&]<typename T>() {
    auto run = [&]<bool Max>() {
      if (l.inner == 1 && l.n >= 1024) {
        unsigned grid = unsigned(std::min<int64_t>(l.outer, int64_t(1) << 20));
        launch_kernel(arg_rows<T, Max>, grid, kArgThreads, 0, ctx.stream(), x.data<T>(), out.data<int64_t>(), l.outer,
                      l.n, last);
      } else {
        launch_kernel(arg_lines<T, Max>, blocks_for(l.outer * l.inner), 256, 0, ctx.stream(), x.data<T>(),
                      out.data<int64_t>(), l, last);
      }
    };
    if (want_max) run.template operator()<true>();
    else run.template operator()<false>();
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("ArgMax", k_arg_reduce);
TESSERA_CUDA_KERNEL("ArgMin", k_arg_reduce);

}  // namespace
}  // namespace tessera::cuda
