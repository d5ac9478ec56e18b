// CUDA kernels for ops/generate.cc: tensors made from attributes and small
// inputs (ConstantOfShape, Range, EyeLike, OneHot) and position-based
// rewrites (Trilu, CumSum). Constant's value is an attribute, so the executor
// makes it on the host when the plan is made, like Shape's.
#include <cstring>
#include <type_traits>

#include "backend/cuda/kernels/copy.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/shape_rules.h"

namespace tessera::cuda {
namespace {
using rules::node_label;

TESSERA_CUDA_HOST_ONLY("Constant");

template <typename W>
__global__ void fill_kernel(W* __restrict__ y, W v, int64_t n) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) y[i] = v;
}

void memset_zero(const KernelContext& ctx, Tensor& out) {
  if (out.nbytes() == 0) return;
  cudaError_t e = cudaMemsetAsync(out.raw(), 0, out.nbytes(), ctx.stream());
  if (e != cudaSuccess) ctx.error("clearing the output: ", cudaGetErrorString(e));
}

void k_constant_of_shape(KernelContext& ctx) {
  Tensor& out = ctx.output(0);
  unsigned long long bits = ctx.attrs().has("value") ? element_bits(ctx.attrs().get_tensor("value"), out.dtype()) : 0;
  if (bits == 0 || out.numel() == 0) return memset_zero(ctx, out);  // zero bits are zero in every dtype
  visit_word(dtype_size(out.dtype()), [&]<typename W>() {
    if constexpr (sizeof(W) <= 8) {
      W v;
      std::memcpy(&v, &bits, sizeof(W));
      launch_kernel(fill_kernel<W>, blocks_for(out.numel()), 256, 0, ctx.stream(), static_cast<W*>(out.raw()), v,
                    out.numel());
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("ConstantOfShape", k_constant_of_shape);

// Integers: start + i*delta wraps exactly as repeated addition does, so every
// element is computed at once (in unsigned 64-bit, then narrowed).
template <typename T>
__global__ void range_int(T* __restrict__ y, int64_t start, int64_t delta, int64_t n) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = T(uint64_t(start) + uint64_t(i) * uint64_t(delta));
}

// Floats: repeated addition in the compute type, as ONNX's reference and ONNX
// Runtime do (start + i*delta rounds differently), so one thread walks it.
template <typename T>
__global__ void range_float(T* __restrict__ y, compute_t<T> start, compute_t<T> delta, int64_t n) {
  pdl_enter();
  compute_t<T> v = start;
  for (int64_t i = 0; i < n; ++i, v = compute_t<T>(v + delta)) store(y, i, v);
}

void k_range(KernelContext& ctx) {
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  const Tensor &start = ctx.require_host(0, "start"), &delta = ctx.require_host(2, "delta");
  int64_t n = out.numel();
  visit_device_dtype(out.dtype(), [&]<typename T>() {
    using C = compute_t<T>;
    if constexpr (std::is_same_v<T, bool>) {
      ctx.error("bool is not a numeric type");
    } else if constexpr (std::is_floating_point_v<C>) {
      launch_kernel(range_float<T>, 1, 1, 0, ctx.stream(), out.data<T>(), C(start.item_f64()), C(delta.item_f64()), n);
    } else {
      launch_kernel(range_int<T>, blocks_for(n), 256, 0, ctx.stream(), out.data<T>(), start.item_i64(),
                    delta.item_i64(), n);
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("Range", k_range);

template <typename W>
__global__ void diagonal_kernel(W* __restrict__ y, W one, int64_t rows, int64_t cols, int64_t k) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < rows; i += int64_t(gridDim.x) * blockDim.x)
    if (i + k >= 0 && i + k < cols) y[i * cols + i + k] = one;
}

void k_eye_like(KernelContext& ctx) {
  Tensor& out = ctx.output(0);
  memset_zero(ctx, out);
  if (out.numel() == 0) return;
  int64_t k = ctx.attrs().get_int("k", 0), rows = out.dim(0), cols = out.dim(1);
  unsigned long long bits = element_bits(Tensor::from<double>(DType::f64, {}, {1.0}), out.dtype());
  visit_word(dtype_size(out.dtype()), [&]<typename W>() {
    if constexpr (sizeof(W) <= 8) {
      W one;
      std::memcpy(&one, &bits, sizeof(W));
      launch_kernel(diagonal_kernel<W>, blocks_for(rows), 256, 0, ctx.stream(), static_cast<W*>(out.raw()), one, rows,
                    cols, k);
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("EyeLike", k_eye_like);

// out[o, d, i] = values[1] if indices[o, i] (negatives wrap once) == d, else
// values[0]. Indices of any numeric dtype are read as int64 (floats truncate).
template <typename W, typename IDX>
__global__ void one_hot_kernel(const IDX* __restrict__ ind, const W* __restrict__ values, W* __restrict__ y, int64_t depth,
                               int64_t inner, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t r = i / inner, in = i - r * inner, o = r / depth, d = r - o * depth;
    int64_t v = int64_t(load(ind, o * inner + in));
    if (v < 0) v += depth;
    y[i] = values[v == d ? 1 : 0];
  }
}

void k_one_hot(KernelContext& ctx) {
  const Tensor &ind = ctx.input(0), &values = ctx.input(2);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  if (values.numel() != 2 || values.dtype() != out.dtype()) ctx.error("values must hold two elements of the output dtype");
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", -1), out.rank(), node_label(ctx.node())));
  int64_t depth = out.shape()[axis], inner = 1;
  for (size_t d = axis + 1; d < out.shape().size(); ++d) inner *= out.shape()[d];
  visit_word(dtype_size(out.dtype()), [&]<typename W>() {
    if constexpr (sizeof(W) <= 8) {
      visit_device_dtype(ind.dtype(), [&]<typename IDX>() {
        launch_kernel(one_hot_kernel<W, IDX>, blocks_for(out.numel()), 256, 0, ctx.stream(), ind.data<IDX>(),
                      static_cast<const W*>(values.raw()), static_cast<W*>(out.raw()), depth, inner, out.numel());
      });
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("OneHot", k_one_hot);

// Keep j - i >= k (upper) or j - i <= k (lower) in every trailing matrix;
// all-zero bytes are zero in every dtype.
template <typename W>
__global__ void trilu_kernel(const W* __restrict__ x, W* __restrict__ y, int64_t rows, int64_t cols, int64_t k, bool upper,
                             int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t q = i / cols, j = i - q * cols, r = q % rows;
    bool zero = upper ? j - r < k : j - r > k;
    y[i] = zero ? W{} : x[i];
  }
}

void k_trilu(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  bool upper = ctx.attrs().get_int("upper", 1) != 0;
  int64_t k = ctx.has_input(1) ? ctx.require_host(1, "k").item_i64(0) : 0;
  int64_t rows = x.dim(-2), cols = x.dim(-1);
  visit_word(dtype_size(x.dtype()), [&]<typename W>() {
    if constexpr (sizeof(W) <= 8)
      launch_kernel(trilu_kernel<W>, blocks_for(x.numel()), 256, 0, ctx.stream(), static_cast<const W*>(x.raw()),
                    static_cast<W*>(out.raw()), rows, cols, k, upper, x.numel());
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("Trilu", k_trilu);

// One thread per line along the axis, summing in order in the compute type
// (f16/bf16 in f32), so each element rounds as on the CPU.
template <typename T>
__global__ void cumsum_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t n, int64_t inner, int64_t lines, bool exclusive,
                              bool reverse) {
  pdl_enter();
  using C = compute_t<T>;
  for (int64_t line = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; line < lines; line += int64_t(gridDim.x) * blockDim.x) {
    int64_t o = line / inner, in = line - o * inner, base = o * n * inner + in;
    C acc = C(0);
    for (int64_t s = 0; s < n; ++s) {
      int64_t at = base + (reverse ? n - 1 - s : s) * inner;
      C v = load(x, at);
      if (!exclusive) acc = C(acc + v);
      store(y, at, acc);
      if (exclusive) acc = C(acc + v);
    }
  }
}

void k_cumsum(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  size_t axis = size_t(normalize_axis(ctx.require_host(1, "axis").item_i64(0), x.rank(), node_label(ctx.node())));
  bool exclusive = ctx.attrs().get_int("exclusive", 0) != 0, reverse = ctx.attrs().get_int("reverse", 0) != 0;
  int64_t n = x.shape()[axis], inner = 1;
  for (size_t d = axis + 1; d < x.shape().size(); ++d) inner *= x.shape()[d];
  int64_t lines = x.numel() / n;
  visit_device_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) ctx.error("CumSum on bool is not supported");
    else
      launch_kernel(cumsum_kernel<T>, blocks_for(lines), 256, 0, ctx.stream(), x.data<T>(), out.data<T>(), n, inner,
                    lines, exclusive, reverse);
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("CumSum", k_cumsum);

}  // namespace
}  // namespace tessera::cuda
