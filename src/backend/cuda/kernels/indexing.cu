// CUDA kernels for the indexing ops that move elements chosen by index
// tensors (ops/indexing.cc): Gather, GatherElements, GatherND, ScatterND,
// ScatterElements. Index inputs live on the device (int32 or int64);
// negative indices count from the end, as on the CPU. An index out of range
// is an error on the CPU; here no host ever sees the indices, so a gather
// writes zeros for it and a scatter drops that update.
//
// Gathers and plain scatters move bytes (rows as the widest aligned word, so
// an embedding lookup copies 16 bytes a thread). Scatter reductions combine
// with atomics in the CPU's compute type (f16/bf16 in f32, int8/uint8 in an
// int32 accumulator that wraps alike), through scratch when that type is
// wider than the data. NonZero is not here: its output shape is data, so the
// executor runs it on the CPU.
#include <cstring>
#include <type_traits>

#include "backend/cuda/kernels/copy.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/shape_rules.h"

namespace tessera::cuda {
namespace {
using rules::node_label;

template <typename F>
decltype(auto) visit_index(const KernelContext& ctx, DType t, F&& f) {
  if (t == DType::i64) return f.template operator()<int64_t>();
  if (t == DType::i32) return f.template operator()<int32_t>();
  ctx.error("indices must be int32 or int64, got ", dtype_name(t));
}

constexpr int64_t kI32Limit = int64_t(INT32_MAX) - (int64_t(1) << 28);  // room for a grid-stride step

// ---- Gather: [outer, n, inner] data, m indices -> [outer, m, inner] ----

template <typename W, typename I, typename IDX>
__global__ void gather_kernel(const W* __restrict__ x, const IDX* __restrict__ ind, W* __restrict__ y, I n, I m, I inner, I total) {
  pdl_enter();
  I step = I(gridDim.x) * I(blockDim.x);
  for (I i = I(blockIdx.x) * I(blockDim.x) + I(threadIdx.x); i < total; i += step) {
    I r = i / inner, k = i - r * inner, o = r / m, j = r - o * m;
    int64_t v = wrap_index(int64_t(ind[j]), int64_t(n));
    y[i] = v < 0 ? W{} : x[(o * n + I(v)) * inner + k];
  }
}

void k_gather(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  int64_t axis = normalize_axis(ctx.attrs().get_int("axis", 0), x.rank(), node_label(ctx.node()));
  int64_t outer = 1, inner = 1, n = x.shape()[size_t(axis)], m = ind.numel();
  for (int64_t d = 0; d < x.rank(); ++d) {
    if (d < axis) outer *= x.shape()[size_t(d)];
    if (d > axis) inner *= x.shape()[size_t(d)];
  }
  size_t es = dtype_size(x.dtype());
  size_t w = widest_word(es, {inner * int64_t(es)}, {x.raw(), out.raw()});
  int64_t inner_w = inner * int64_t(es) / int64_t(w), total = outer * m * inner_w;
  bool i32 = total < kI32Limit && outer * n * inner_w < kI32Limit;
  visit_word(w, [&]<typename W>() {
    visit_index(ctx, ind.dtype(), [&]<typename IDX>() {
      auto run = [&]<typename I>() {
        launch_kernel(gather_kernel<W, I, IDX>, blocks_for(total), 256, 0, ctx.stream(), static_cast<const W*>(x.raw()),
                      ind.data<IDX>(), static_cast<W*>(out.raw()), I(n), I(m), I(inner_w), I(total));
      };
      if (i32)
        run.template operator()<int32_t>();
      else
        run.template operator()<int64_t>();
    });
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("Gather", k_gather);

// ---- Where an index points: the data offset for flat index i, or -1 ----

// GatherElements/ScatterElements: the position of element i of the indices,
// with its axis coordinate replaced by the index (map.strides[axis] is 0).
template <typename IDX>
struct ElementTarget {
  IndexMap map;
  int64_t n, axis_stride;
  const IDX* ind;
  __device__ int64_t operator()(int64_t i) const {
    int64_t v = wrap_index(int64_t(ind[i]), n);
    return v < 0 ? -1 : map.offset(i) + v * axis_stride;
  }
};

// GatherND/ScatterND: element e of the slice that tuple t (k indices, after
// the batch dims) selects, for i = t * run + e. Strides in the moved words.
struct TupleArgs {
  int k = 0;
  int64_t extent[kMaxDims] = {}, stride[kMaxDims] = {};
  int64_t per_batch = 0, batch_stride = 0, run = 1;
};

template <typename IDX>
struct TupleTarget {
  TupleArgs a;
  const IDX* ind;
  __device__ int64_t operator()(int64_t i) const {
    int64_t t = i / a.run, e = i - t * a.run;
    int64_t off = a.per_batch ? (t / a.per_batch) * a.batch_stride : 0;
    for (int j = 0; j < a.k; ++j) {
      int64_t v = wrap_index(int64_t(ind[t * a.k + j]), a.extent[j]);
      if (v < 0) return -1;
      off += v * a.stride[j];
    }
    return off + e;
  }
};

// `batch` leading dims shared by data and indices, k = indices.shape[-1];
// `scale` elements per moved word (it divides every stride used).
TupleArgs tuple_args(const KernelContext& ctx, const Tensor& data, const Tensor& ind, int64_t batch, int64_t scale) {
  TupleArgs a;
  int64_t k = ind.shape().back(), rank = data.rank();
  if (k > kMaxDims) ctx.error("index tuples of length ", k, " (more than ", kMaxDims, ")");
  a.k = int(k);
  Shape st = contiguous_strides(data.shape());
  for (int64_t j = 0; j < k; ++j) {
    a.extent[j] = data.shape()[size_t(batch + j)];
    a.stride[j] = st[size_t(batch + j)] / scale;
  }
  int64_t tuples = k ? ind.numel() / k : 0, batches = 1, slice = 1;
  for (int64_t d = 0; d < batch; ++d) batches *= data.shape()[size_t(d)];
  for (int64_t d = batch + k; d < rank; ++d) slice *= data.shape()[size_t(d)];
  a.per_batch = batches ? tuples / batches : 0;
  a.batch_stride = batch > 0 ? st[size_t(batch - 1)] / scale : 0;
  a.run = slice / scale;
  return a;
}

IndexMap element_map(const KernelContext& ctx, const Tensor& data, const Tensor& ind, size_t axis) {
  if (ind.rank() > kMaxDims) ctx.error("rank ", ind.rank(), " is more than ", kMaxDims);
  IndexMap m;
  m.rank = int(ind.rank());
  Shape st = contiguous_strides(data.shape());
  for (int d = 0; d < m.rank; ++d) {
    m.sizes[d] = ind.shape()[size_t(d)];
    m.strides[d] = size_t(d) == axis ? 0 : st[size_t(d)];
  }
  return m;
}

template <typename W, typename Target>
__global__ void gather_by(const W* __restrict__ x, W* __restrict__ y, Target at, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off = at(i);
    y[i] = off < 0 ? W{} : x[off];
  }
}

void k_gather_elements(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", 0), x.rank(), node_label(ctx.node())));
  IndexMap m = element_map(ctx, x, ind, axis);
  int64_t n = x.shape()[axis], axis_st = contiguous_strides(x.shape())[axis];
  visit_word(dtype_size(x.dtype()), [&]<typename W>() {
    visit_index(ctx, ind.dtype(), [&]<typename IDX>() {
      ElementTarget<IDX> at{m, n, axis_st, ind.data<IDX>()};
      launch_kernel(gather_by<W, decltype(at)>, blocks_for(out.numel()), 256, 0, ctx.stream(),
                    static_cast<const W*>(x.raw()), static_cast<W*>(out.raw()), at, out.numel());
    });
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("GatherElements", k_gather_elements);

void k_gather_nd(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  int64_t b = ctx.attrs().get_int("batch_dims", 0), k = ind.shape().back(), slice = 1;
  for (int64_t d = b + k; d < x.rank(); ++d) slice *= x.shape()[size_t(d)];
  size_t es = dtype_size(x.dtype()), w = widest_word(es, {slice * int64_t(es)}, {x.raw(), out.raw()});
  TupleArgs a = tuple_args(ctx, x, ind, b, int64_t(w / es));
  int64_t total = int64_t(out.nbytes() / w);
  visit_word(w, [&]<typename W>() {
    visit_index(ctx, ind.dtype(), [&]<typename IDX>() {
      TupleTarget<IDX> at{a, ind.data<IDX>()};
      launch_kernel(gather_by<W, decltype(at)>, blocks_for(total), 256, 0, ctx.stream(), static_cast<const W*>(x.raw()),
                    static_cast<W*>(out.raw()), at, total);
    });
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("GatherND", k_gather_nd);

// ---- Scatters ----

enum class Red { none, add, mul, max, min };

// The CPU's combine(r, current, update), in the accumulator type. Integer
// products wrap (through unsigned arithmetic, which C++ defines).
template <Red R, typename A>
__device__ __forceinline__ A combine(A a, A b) {
  if constexpr (R == Red::add) {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) + std::make_unsigned_t<A>(b));
    else return a + b;
  } else if constexpr (R == Red::mul) {
    if constexpr (std::is_integral_v<A>) return A(std::make_unsigned_t<A>(a) * std::make_unsigned_t<A>(b));
    else return a * b;
  } else if constexpr (R == Red::max) {
    return (a < b) ? b : a;  // std::max
  } else {
    return (b < a) ? b : a;  // std::min
  }
}

// *p = combine(*p, v) atomically: the hardware's atomics where they exist,
// else a compare-and-swap loop on the 4- or 8-byte word.
template <Red R, typename A>
__device__ void atomic_combine(A* p, A v) {
  if constexpr (R == Red::add && std::is_same_v<A, int64_t>) {
    atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
  } else if constexpr (R == Red::add) {
    atomicAdd(p, v);  // float, double, int
  } else if constexpr ((R == Red::max || R == Red::min) && std::is_same_v<A, int64_t>) {
    if constexpr (R == Red::max) atomicMax(reinterpret_cast<long long*>(p), static_cast<long long>(v));
    else atomicMin(reinterpret_cast<long long*>(p), static_cast<long long>(v));
  } else if constexpr ((R == Red::max || R == Red::min) && std::is_same_v<A, int32_t>) {
    if constexpr (R == Red::max) atomicMax(p, v);
    else atomicMin(p, v);
  } else {
    using B = std::conditional_t<sizeof(A) == 4, unsigned int, unsigned long long>;
    static_assert(sizeof(A) == sizeof(B));
    B* bp = reinterpret_cast<B*>(p);
    B old = *bp, assumed;
    do {
      assumed = old;
      A cur, next;
      memcpy(&cur, &assumed, sizeof(A));
      next = combine<R>(cur, v);
      B nb;
      memcpy(&nb, &next, sizeof(A));
      old = atomicCAS(bp, assumed, nb);
    } while (old != assumed);
  }
}

// The accumulator of a scatter reduction over T.
template <typename T> struct Acc { using type = compute_t<T>; };
template <> struct Acc<int8_t> { using type = int32_t; };
template <> struct Acc<uint8_t> { using type = int32_t; };
template <> struct Acc<bool> { using type = int32_t; };  // never used: bool reductions are refused
template <typename T> using acc_t = typename Acc<T>::type;

template <typename W, typename Target>
__global__ void scatter_copy(W* __restrict__ y, const W* __restrict__ upd, Target at, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off = at(i);
    if (off >= 0) y[off] = upd[i];
  }
}

template <Red R, typename A, typename T, typename Target>
__global__ void scatter_reduce(A* acc, const T* __restrict__ upd, Target at, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t off = at(i);
    if (off >= 0) atomic_combine<R>(acc + off, A(load(upd, i)));
  }
}

template <typename T, typename A>
__global__ void widen_kernel(const T* __restrict__ x, A* __restrict__ a, int64_t n) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) a[i] = A(load(x, i));
}
template <typename T, typename A>
__global__ void narrow_kernel(const A* __restrict__ a, T* __restrict__ x, int64_t n) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) store(x, i, a[i]);
}

Red reduction_of(const KernelContext& ctx) {
  std::string r = ctx.attrs().get_string("reduction", "none");
  if (r == "none") return Red::none;
  if (r == "add") return Red::add;
  if (r == "mul") return Red::mul;
  if (r == "max") return Red::max;
  if (r == "min") return Red::min;
  ctx.error("unknown reduction '", r, "'");
}

// Output = data, then every update combined in at the offset `make(scale)`
// gives it (scale: elements per moved word, 1 for reductions).
template <typename MakeTarget>
void run_scatter(KernelContext& ctx, int64_t words_divisor, MakeTarget make) {
  const Tensor &data = ctx.input(0), &upd = ctx.input(2);
  Tensor& out = ctx.output(0);
  if (out.raw() != data.raw() && out.nbytes() > 0) {
    cudaError_t e = cudaMemcpyAsync(out.raw(), data.raw(), out.nbytes(), cudaMemcpyDeviceToDevice, ctx.stream());
    if (e != cudaSuccess) ctx.error("copying the data: ", cudaGetErrorString(e));
  }
  if (upd.numel() == 0 || out.numel() == 0) return;
  Red red = reduction_of(ctx);
  size_t es = dtype_size(data.dtype());
  if (red == Red::none) {
    size_t w = widest_word(es, {words_divisor * int64_t(es)}, {out.raw(), upd.raw()});
    int64_t total = int64_t(upd.nbytes() / w);
    visit_word(w, [&]<typename W>() {
      auto at = make(int64_t(w / es));
      launch_kernel(scatter_copy<W, decltype(at)>, blocks_for(total), 256, 0, ctx.stream(), static_cast<W*>(out.raw()),
                    static_cast<const W*>(upd.raw()), at, total);
    });
    check_launch(ctx);
    return;
  }
  if (data.dtype() == DType::boolean) ctx.error("reduction '", ctx.attrs().get_string("reduction", "none"), "' on bool is not supported");
  visit_device_dtype(data.dtype(), [&]<typename T>() {
    using A = acc_t<T>;
    if constexpr (!std::is_same_v<T, bool>) {
      int64_t n = out.numel(), total = upd.numel();
      A* acc = static_cast<A*>(out.raw());
      if constexpr (!std::is_same_v<A, T>) {
        acc = static_cast<A*>(ctx.scratch(size_t(n) * sizeof(A)));
        launch_kernel(widen_kernel<T, A>, blocks_for(n), 256, 0, ctx.stream(), out.data<T>(), acc, n);
      }
      auto at = make(1);
      auto launch = [&]<Red R>() {
        launch_kernel(scatter_reduce<R, A, T, decltype(at)>, blocks_for(total), 256, 0, ctx.stream(), acc,
                      upd.data<T>(), at, total);
      };
      switch (red) {
        case Red::add: launch.template operator()<Red::add>(); break;
        case Red::mul: launch.template operator()<Red::mul>(); break;
        case Red::max: launch.template operator()<Red::max>(); break;
        default: launch.template operator()<Red::min>(); break;
      }
      if constexpr (!std::is_same_v<A, T>)
        launch_kernel(narrow_kernel<T, A>, blocks_for(n), 256, 0, ctx.stream(), acc, out.data<T>(), n);
    }
  });
  check_launch(ctx);
}

void k_scatter_nd(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  int64_t k = ind.shape().back(), run = 1;
  for (int64_t d = k; d < x.rank(); ++d) run *= x.shape()[size_t(d)];
  visit_index(ctx, ind.dtype(), [&]<typename IDX>() {
    run_scatter(ctx, run, [&](int64_t scale) { return TupleTarget<IDX>{tuple_args(ctx, x, ind, 0, scale), ind.data<IDX>()}; });
  });
}
TESSERA_CUDA_KERNEL("ScatterND", k_scatter_nd);

void k_scatter_elements(KernelContext& ctx) {
  const Tensor &x = ctx.input(0), &ind = ctx.input(1);
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", 0), x.rank(), node_label(ctx.node())));
  IndexMap m = element_map(ctx, x, ind, axis);
  int64_t n = x.shape()[axis], axis_st = contiguous_strides(x.shape())[axis];
  visit_index(ctx, ind.dtype(), [&]<typename IDX>() {
    // Single elements: the divisor 1 keeps the moved word at the element's size.
    run_scatter(ctx, 1, [&](int64_t) { return ElementTarget<IDX>{m, n, axis_st, ind.data<IDX>()}; });
  });
}
TESSERA_CUDA_KERNEL("ScatterElements", k_scatter_elements);

}  // namespace
}  // namespace tessera::cuda
