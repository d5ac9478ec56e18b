// CUDA kernels for the shape ops (ops/shape.cc) that move bytes: Transpose,
// Concat, Split, Slice, Expand, Tile, DepthToSpace/SpaceToDepth (all one
// strided copy, copy.cuh, with the strides the CPU kernels use) and Pad.
// Values are never looked at, so every dtype is served by element width.
// Parameters given as inputs (Slice's starts, Tile's repeats, Pad's pads)
// must be known on the host when the plan is made, like the output shapes
// they decide.
#include <cstring>

#include "backend/cuda/kernels/copy.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/shape_rules.h"

namespace tessera::cuda {
namespace {
using rules::node_label;

size_t elem_bytes(const Tensor& t) { return dtype_size(t.dtype()); }

std::vector<int64_t> host_ints(const KernelContext& ctx, size_t i, const char* what) {
  return ctx.require_host(i, what).to_i64_vector();
}
std::vector<int64_t> optional_host_ints(const KernelContext& ctx, size_t i, const char* what) {
  return ctx.has_input(i) ? host_ints(ctx, i, what) : std::vector<int64_t>{};
}

std::vector<int64_t> transpose_perm(const Attributes& a, int64_t rank) {
  std::vector<int64_t> perm = a.get_ints("perm");
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  for (int64_t& p : perm) p = p < 0 ? p + rank : p;
  return perm;
}

// The dims longer than 1 keep their order (e.g. [B, 1, H, D] -> [B, H, 1, D],
// splitting heads at one position): the bytes are already in the output's
// order, so the planner makes the output a view.
bool transpose_is_view(const Node& n, const Shape& in, const std::vector<TensorType>&, size_t, std::vector<size_t>& offsets) {
  int64_t last = -1;
  for (int64_t p : transpose_perm(n.attrs, int64_t(in.size()))) {
    if (p < 0 || p >= int64_t(in.size())) return false;
    if (in[size_t(p)] == 1) continue;
    if (p < last) return false;
    last = p;
  }
  offsets = {0};
  return true;
}

void k_transpose(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  std::vector<int64_t> perm = transpose_perm(ctx.attrs(), x.rank());
  Shape in_st = contiguous_strides(x.shape());
  std::vector<int64_t> st;
  for (int64_t p : perm) st.push_back(in_st[size_t(p)]);
  strided_copy(ctx, x.raw(), out.raw(), elem_bytes(x), gather_plan(out.shape(), st));
}
TESSERA_CUDA_KERNEL_VIEW_WHEN("Transpose", k_transpose, transpose_is_view);

// Concat and Split see each tensor as `outer` rows along the axis: the part
// of input (output) k is a 2-D block at column `at` of the joined rows.
struct Rows {
  int64_t outer = 1, inner = 1;
};
Rows rows_around(const Shape& s, size_t axis) {
  Rows r;
  for (size_t i = 0; i < s.size(); ++i) {
    if (i < axis) r.outer *= s[i];
    if (i > axis) r.inner *= s[i];
  }
  return r;
}

void k_concat(KernelContext& ctx) {
  Tensor& out = ctx.output(0);
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis"), out.rank(), node_label(ctx.node())));
  Rows r = rows_around(out.shape(), axis);
  int64_t out_row = out.shape()[axis] * r.inner, at = 0;
  for (size_t k = 0; k < ctx.num_inputs(); ++k) {
    const Tensor& x = ctx.input(k);
    int64_t row = x.shape()[axis] * r.inner;
    if (row > 0) strided_copy(ctx, x.raw(), out.raw(), elem_bytes(out), CopyPlan{{r.outer, row}, {row, 1}, {out_row, 1}, 0, at});
    at += row;
  }
}
TESSERA_CUDA_KERNEL("Concat", k_concat);

void k_split(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  size_t axis = size_t(normalize_axis(ctx.attrs().get_int("axis", 0), x.rank(), node_label(ctx.node())));
  Rows r = rows_around(x.shape(), axis);
  int64_t in_row = x.shape()[axis] * r.inner, at = 0;
  for (size_t k = 0; k < ctx.num_outputs(); ++k) {
    if (!ctx.has_output(k)) continue;  // an unused output
    Tensor& out = ctx.output(k);
    int64_t row = out.shape()[axis] * r.inner;
    if (row > 0) strided_copy(ctx, x.raw(), out.raw(), elem_bytes(x), CopyPlan{{r.outer, row}, {in_row, 1}, {row, 1}, at, 0});
    at += row;
  }
}
// Every dim before the axis 1 (e.g. q|k|v split off a leading axis): each
// output is one contiguous block of the input, so the planner makes it a view.
bool split_is_view(const Node& n, const Shape& in, const std::vector<TensorType>& outs, size_t elem,
                   std::vector<size_t>& offsets) {
  int64_t rank = int64_t(in.size()), axis = n.attrs.get_int("axis", 0);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return false;
  for (int64_t d = 0; d < axis; ++d)
    if (in[size_t(d)] != 1) return false;
  size_t at = 0;
  offsets.clear();
  for (const TensorType& t : outs) {
    offsets.push_back(at);
    at += size_t(numel(t.shape)) * elem;
  }
  return true;
}
TESSERA_CUDA_KERNEL_VIEW_WHEN("Split", k_split, split_is_view);

void k_slice(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  rules::SliceWindow w = rules::slice_window(x.shape(), host_ints(ctx, 1, "starts"), host_ints(ctx, 2, "ends"),
                                             optional_host_ints(ctx, 3, "axes"), optional_host_ints(ctx, 4, "steps"),
                                             node_label(ctx.node()));
  Shape st = contiguous_strides(x.shape());
  int64_t base = 0;
  for (size_t d = 0; d < st.size(); ++d) {
    base += w.start[d] * st[d];
    st[d] *= w.step[d];
  }
  Tensor& out = ctx.output(0);
  strided_copy(ctx, x.raw(), out.raw(), elem_bytes(x), gather_plan(out.shape(), std::vector<int64_t>(st.begin(), st.end()), base));
}
TESSERA_CUDA_KERNEL("Slice", k_slice);

void k_expand(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  IndexMap m = broadcast_map(x.shape(), out.shape());
  strided_copy(ctx, x.raw(), out.raw(), elem_bytes(x), gather_plan(out.shape(), std::vector<int64_t>(m.strides, m.strides + m.rank)));
}
TESSERA_CUDA_KERNEL("Expand", k_expand);

// Tile reads the input as [1,d0,1,d1,...] broadcast to [r0,d0,r1,d1,...],
// whose contiguous bytes are the [r0*d0, r1*d1, ...] tiling.
void k_tile(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> reps = host_ints(ctx, 1, "repeats");
  if (reps.size() != size_t(x.rank())) ctx.error("repeats has ", reps.size(), " values for input rank ", x.rank());
  Shape in_st = contiguous_strides(x.shape());
  CopyPlan p;
  for (size_t d = 0; d < reps.size(); ++d) {
    p.sizes.insert(p.sizes.end(), {reps[d], x.shape()[d]});
    p.src.insert(p.src.end(), {0, in_st[d]});
  }
  Shape wide_st = contiguous_strides(Shape(p.sizes.begin(), p.sizes.end()));
  p.dst.assign(wide_st.begin(), wide_st.end());
  strided_copy(ctx, x.raw(), ctx.output(0).raw(), elem_bytes(x), p);
}
TESSERA_CUDA_KERNEL("Tile", k_tile);

// Both ops are a 6-D transpose of the 4-D tensor; out is read as
// [N, C', H, b, W, b] (DepthToSpace) or [N, b, b, C, H', W'] (SpaceToDepth).
void k_depth_space(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  int64_t b = ctx.attrs().get_int("blocksize"), n = x.dim(0), ch = x.dim(1), h = x.dim(2), w = x.dim(3);
  Shape view, out6;
  std::vector<size_t> order;  // for each out6 dim, the view dim it walks
  if (ctx.node().op == "SpaceToDepth") {
    view = {n, ch, h / b, b, w / b, b};
    out6 = {n, b, b, ch, h / b, w / b};
    order = {0, 3, 5, 1, 2, 4};
  } else if (ctx.attrs().get_string("mode", "DCR") == "DCR") {
    view = {n, b, b, ch / (b * b), h, w};
    out6 = {n, ch / (b * b), h, b, w, b};
    order = {0, 3, 4, 1, 5, 2};
  } else {  // CRD
    view = {n, ch / (b * b), b, b, h, w};
    out6 = {n, ch / (b * b), h, b, w, b};
    order = {0, 1, 4, 2, 5, 3};
  }
  Shape vst = contiguous_strides(view);
  std::vector<int64_t> st;
  for (size_t d : order) st.push_back(vst[d]);
  strided_copy(ctx, x.raw(), ctx.output(0).raw(), elem_bytes(x), gather_plan(out6, st));
}
TESSERA_CUDA_KERNEL("DepthToSpace", k_depth_space);
TESSERA_CUDA_KERNEL("SpaceToDepth", k_depth_space);

// ---- Pad ----

enum class PadMode { constant, edge, reflect, wrap };

struct PadArgs {
  int rank;
  int64_t out[kMaxDims], in[kMaxDims], begin[kMaxDims], in_st[kMaxDims];
};

// Source index along one dim for position s (already shifted by the leading
// pad), or -1 for "the fill value"; the same rules as the CPU's pad_source.
template <PadMode M>
__device__ __forceinline__ int64_t pad_source(int64_t s, int64_t n) {
  if (s >= 0 && s < n) return s;
  if constexpr (M == PadMode::constant) return -1;
  else if constexpr (M == PadMode::edge) return s < 0 ? 0 : n - 1;
  else if constexpr (M == PadMode::wrap) return ((s % n) + n) % n;
  else {
    if (n == 1) return 0;  // reflect: mirror about the edges without repeating them
    int64_t period = 2 * (n - 1);
    s = ((s % period) + period) % period;
    return s < n ? s : period - s;
  }
}

// `fill` (device, may be null) overrides `fill_bits` for a value known only on the device.
template <typename W, PadMode M>
__global__ void pad_kernel(const W* __restrict__ x, W* __restrict__ y, PadArgs a, W fill_bits, const W* fill, int64_t total) {
  pdl_enter();
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, off = 0;
    bool padded = false;
    for (int k = a.rank - 1; k >= 0; --k) {
      int64_t q = rem / a.out[k], r = rem - q * a.out[k];
      rem = q;
      int64_t s = pad_source<M>(r - a.begin[k], a.in[k]);
      if (s < 0) padded = true;
      else off += s * a.in_st[k];
    }
    y[i] = padded ? (fill ? *fill : fill_bits) : x[off];
  }
}

void k_pad(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.output(0);
  std::string mode = ctx.attrs().get_string("mode", "constant");
  rules::PadAmounts p = rules::pad_amounts(x.rank(), host_ints(ctx, 1, "pads"), optional_host_ints(ctx, 3, "axes"), node_label(ctx.node()));
  if (out.numel() == 0) return;
  if (x.rank() > kMaxDims) ctx.error("rank ", x.rank(), " is more than ", kMaxDims);
  PadArgs a{};
  a.rank = int(x.rank());
  Shape st = contiguous_strides(x.shape());
  for (int d = 0; d < a.rank; ++d) {
    a.out[d] = out.shape()[size_t(d)];
    a.in[d] = x.shape()[size_t(d)];
    a.begin[d] = p.begin[size_t(d)];
    a.in_st[d] = st[size_t(d)];
  }
  // The fill value: zero when absent, from the host when known there, else read on the device.
  unsigned long long bits = 0;
  const void* fill = nullptr;
  if (ctx.has_input(2) && ctx.input(2).numel() > 0) {
    if (const Tensor* v = ctx.host_value(2)) bits = element_bits(*v, x.dtype());
    else if (ctx.input(2).dtype() == x.dtype()) fill = ctx.input(2).raw();
    else ctx.error("constant_value is ", dtype_name(ctx.input(2).dtype()), " on the device, the data is ", dtype_name(x.dtype()));
  }
  visit_word(elem_bytes(x), [&]<typename W>() {
    if constexpr (sizeof(W) <= 8) {
      W fb;
      std::memcpy(&fb, &bits, sizeof(W));
      auto run = [&]<PadMode M>() {
        launch_kernel(pad_kernel<W, M>, blocks_for(out.numel()), 256, 0, ctx.stream(), static_cast<const W*>(x.raw()),
                      static_cast<W*>(out.raw()), a, fb, static_cast<const W*>(fill), out.numel());
      };
      if (mode == "constant") run.template operator()<PadMode::constant>();
      else if (mode == "edge") run.template operator()<PadMode::edge>();
      else if (mode == "reflect") run.template operator()<PadMode::reflect>();
      else if (mode == "wrap") run.template operator()<PadMode::wrap>();
      else ctx.error("unknown mode '", mode, "'");
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("Pad", k_pad);

}  // namespace
}  // namespace tessera::cuda
