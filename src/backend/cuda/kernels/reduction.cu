// CUDA Reduce* kernels (semantics: backend/cpu/kernels/reduction.cc). Floats
// accumulate in f32 (f16/bf16/f32) or f64; integers in their own type, as on
// the CPU, so integer sums wrap identically.
//
// The input dims are collapsed into alternating kept/reduced groups. When the
// only reduced group is the last one (rows: the hot case, LayerNorm-style
// statistics, ReduceMean over the hidden dim) a warp or a block reduces each
// contiguous row with 16-byte loads; any other pattern runs one thread per
// output element, walking its reduced elements through an index map.
//
// One deliberate difference from the CPU: Max/Min propagate NaN wherever it
// is (the CPU's std::max keeps a NaN only when it comes first, which depends
// on the visiting order and cannot be reproduced in parallel).
#include <cmath>
#include <limits>

#include "backend/cuda/kernels/reduce_util.cuh"
#include "backend/cuda/pdl.cuh"

namespace tessera {
std::vector<int64_t> reduction_axes(const Node& n, const Tensor* axes_input, int64_t rank, bool& known);
}

namespace tessera::cuda {
namespace {

enum class RK : int { Sum, Mean, Max, Min, Prod, L1, L2, SumSquare, LogSum, LogSumExp };

RK kind_of(const std::string& op) {
  static const std::pair<const char*, RK> kinds[] = {
      {"ReduceSum", RK::Sum},       {"ReduceMean", RK::Mean}, {"ReduceMax", RK::Max},
      {"ReduceMin", RK::Min},       {"ReduceProd", RK::Prod}, {"ReduceL1", RK::L1},
      {"ReduceL2", RK::L2},         {"ReduceSumSquare", RK::SumSquare},
      {"ReduceLogSum", RK::LogSum}, {"ReduceLogSumExp", RK::LogSumExp}};
  for (auto& [name, k] : kinds)
    if (op == name) return k;
  fail(ErrorKind::Internal, "[cuda] not a reduction: ", op);
}

template <typename A>
__device__ __forceinline__ bool is_nan(A v) {
  return v != v;  // false for integers
}

// The running state of one output: `a` the accumulator; `m` the running max
// of LogSumExp (a then holds sum(exp(x - m))).
template <typename A>
struct St {
  A a, m;
  __device__ St shfl(int mask) const { return {shfl_xor(a, mask), shfl_xor(m, mask)}; }
};

template <typename A>
__device__ __forceinline__ St<A> st_init(RK k) {
  if constexpr (std::is_floating_point_v<A>) {
    if (k == RK::Max) return {A(-INFINITY), A(0)};
    if (k == RK::Min) return {A(INFINITY), A(0)};
    if (k == RK::LogSumExp) return {A(0), A(-INFINITY)};
  } else {
    if (k == RK::Max) return {std::numeric_limits<A>::lowest(), A(0)};
    if (k == RK::Min) return {std::numeric_limits<A>::max(), A(0)};
  }
  return {k == RK::Prod ? A(1) : A(0), A(0)};
}

template <typename A>
__device__ __forceinline__ void st_add(RK k, St<A>& s, A v) {
  switch (k) {
    case RK::Max: s.a = (v > s.a || is_nan(v)) ? v : s.a; break;
    case RK::Min: s.a = (v < s.a || is_nan(v)) ? v : s.a; break;
    case RK::Prod: s.a = A(s.a * v); break;
    case RK::L1:
      if constexpr (std::is_unsigned_v<A>) s.a = A(s.a + v);
      else s.a = A(s.a + (v < A(0) ? A(-v) : v));
      break;
    case RK::L2:
    case RK::SumSquare: s.a = A(s.a + v * v); break;
    case RK::LogSumExp:
      if constexpr (std::is_floating_point_v<A>) {
        if (is_nan(v)) s.a = v;
        else if (v > s.m) { s.a = (s.m == A(-INFINITY) ? A(0) : s.a * exp(s.m - v)) + A(1); s.m = v; }
        else if (v != A(-INFINITY)) s.a += exp(v - s.m);
      }
      break;
    default: s.a = A(s.a + v); break;  // Sum, Mean, LogSum
  }
}

template <typename A>
__device__ __forceinline__ void st_merge(RK k, St<A>& s, const St<A>& o) {
  switch (k) {
    case RK::Max: s.a = (o.a > s.a || is_nan(o.a)) ? o.a : s.a; break;
    case RK::Min: s.a = (o.a < s.a || is_nan(o.a)) ? o.a : s.a; break;
    case RK::Prod: s.a = A(s.a * o.a); break;
    case RK::LogSumExp:
      if constexpr (std::is_floating_point_v<A>) {
        St<A> hi = o.m > s.m ? o : s, lo = o.m > s.m ? s : o;
        // A part that saw only -inf (or nothing) adds nothing; NaN in `a` carries.
        if (lo.m != A(-INFINITY)) hi.a += lo.a * exp(lo.m - hi.m);
        else if (is_nan(lo.a)) hi.a = lo.a;
        s = hi;
      }
      break;
    default: s.a = A(s.a + o.a); break;
  }
}

// The output value of a finished state over `count` elements (0: empty reduction).
template <typename A>
__device__ __forceinline__ A st_finish(RK k, const St<A>& s, int64_t count) {
  switch (k) {
    case RK::Mean: return A(double(s.a) / double(count > 0 ? count : 1));
    case RK::L2: return A(sqrt(double(s.a)));
    case RK::LogSum: return A(log(double(s.a)));
    case RK::LogSumExp:
      if constexpr (std::is_floating_point_v<A>) return s.m + log(s.a);
      return s.a;
    case RK::Max:
      if (count == 0) return std::numeric_limits<A>::lowest();
      return s.a;
    case RK::Min:
      if (count == 0) return std::numeric_limits<A>::max();
      return s.a;
    default: return s.a;
  }
}

// Row reduction: output r folds x[r*n, (r+1)*n). One warp per row (warp_rows)
// or one block per row.
template <typename T>
__global__ void reduce_rows(const T* x, T* y, int64_t rows, int64_t n, RK k, bool warp_rows) {
  pdl_enter();
  using A = compute_t<T>;
  auto merge = [k](St<A>& s, const St<A>& o) { st_merge(k, s, o); };
  if (warp_rows) {
    int lane = threadIdx.x & 31;
    int64_t r = int64_t(blockIdx.x) * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    St<A> s = st_init<A>(k);
    for_row(x + r * n, n, lane, 32, [&](int64_t, A v) { st_add(k, s, v); });
    s = warp_all_reduce(s, merge);
    if (lane == 0) store(y, r, st_finish(k, s, n));
    return;
  }
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    St<A> s = st_init<A>(k);
    for_row(x + r * n, n, int(threadIdx.x), int(blockDim.x), [&](int64_t, A v) { st_add(k, s, v); });
    s = block_all_reduce(s, merge);
    if (threadIdx.x == 0) store(y, r, st_finish(k, s, n));
  }
}

// General pattern: thread per output; `kept` maps an output index to its
// first input offset, `red` a reduced index to the offset within it.
template <typename T>
__global__ void reduce_general(const T* x, T* y, int64_t n_out, int64_t count, IndexMap kept, IndexMap red, RK k) {
  pdl_enter();
  using A = compute_t<T>;
  for (int64_t o = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; o < n_out; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t base = kept.offset(o);
    St<A> s = st_init<A>(k);
    for (int64_t r = 0; r < count; ++r) st_add(k, s, load(x, base + red.offset(r)));
    store(y, o, st_finish(k, s, count));
  }
}

struct Groups {
  std::vector<int64_t> size;
  std::vector<bool> reduced;
};

// Merge adjacent dims of the same kind; size-1 dims vanish.
Groups collapse(const Shape& s, const std::vector<bool>& reduced) {
  Groups g;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == 1) continue;
    if (!g.size.empty() && g.reduced.back() == reduced[i]) g.size.back() *= s[i];
    else g.size.push_back(s[i]), g.reduced.push_back(reduced[i]);
  }
  return g;
}

void k_reduce(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& y = ctx.output(0);
  RK k = kind_of(ctx.node().op);
  if (x.dtype() == DType::boolean) ctx.error("reductions on bool are not supported");
  if (!is_float(x.dtype()) && k == RK::LogSumExp) ctx.error("ReduceLogSumExp on ", dtype_name(x.dtype()), " is not supported");
  bool known = true;
  std::vector<int64_t> axes = reduction_axes(ctx.node(), ctx.has_input(1) ? &ctx.require_host(1, "axes") : nullptr, x.rank(), known);
  std::vector<bool> reduced(size_t(x.rank()), false);
  for (int64_t a : axes) reduced[size_t(a)] = true;
  int64_t n_out = y.numel();
  if (n_out == 0) return;
  int64_t count = 1;
  for (int64_t i = 0; i < x.rank(); ++i)
    if (reduced[size_t(i)]) count *= x.dim(i);
  Groups g = collapse(x.shape(), reduced);
  int n_red_groups = 0;
  for (bool r : g.reduced) n_red_groups += r ? 1 : 0;
  bool rows = count > 0 && n_red_groups == 1 && g.reduced.back();
  visit_device_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else {
      const T* px = static_cast<const T*>(x.raw());
      T* py = static_cast<T*>(y.raw());
      if (rows) {
        bool warp_rows = count <= kWarpRowMax;
        if (warp_rows)
          launch_kernel(reduce_rows<T>, unsigned((n_out + 7) / 8), 256, 0, ctx.stream(), px, py, n_out, count, k, true);
        else
          launch_kernel(reduce_rows<T>, unsigned(std::min<int64_t>(n_out, 1 << 20)), kBlockRowThreads, 0, ctx.stream(),
                        px, py, n_out, count, k, false);
        return;
      }
      if (g.size.size() > size_t(kMaxDims)) ctx.error("the reduced and kept dims of ", to_string(x.shape()), " alternate too often");
      IndexMap kept, red;
      int64_t stride = 1;
      std::vector<int64_t> strides(g.size.size());
      for (size_t i = g.size.size(); i-- > 0;) strides[i] = stride, stride *= g.size[i];
      for (size_t i = 0; i < g.size.size(); ++i) {
        IndexMap& m = g.reduced[i] ? red : kept;
        m.sizes[m.rank] = g.size[i];
        m.strides[m.rank] = strides[i];
        ++m.rank;
      }
      launch_kernel(reduce_general<T>, blocks_for(n_out), 256, 0, ctx.stream(), px, py, n_out, count, kept, red, k);
    }
  });
  check_launch(ctx);
}


}  // namespace

TESSERA_CUDA_KERNEL("ReduceSum", k_reduce);
TESSERA_CUDA_KERNEL("ReduceMean", k_reduce);
TESSERA_CUDA_KERNEL("ReduceMax", k_reduce);
TESSERA_CUDA_KERNEL("ReduceMin", k_reduce);
TESSERA_CUDA_KERNEL("ReduceProd", k_reduce);
TESSERA_CUDA_KERNEL("ReduceL1", k_reduce);
TESSERA_CUDA_KERNEL("ReduceL2", k_reduce);
TESSERA_CUDA_KERNEL("ReduceSumSquare", k_reduce);
TESSERA_CUDA_KERNEL("ReduceLogSum", k_reduce);
TESSERA_CUDA_KERNEL("ReduceLogSumExp", k_reduce);

}  // namespace tessera::cuda
