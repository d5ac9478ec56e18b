// CPU kernels for the shape ops (ops/shape.cc). All are data movement: they
// move bytes by element width and work for every dtype. Output shapes come
// from inference (run_node infers them from the actual inputs first), so the
// kernels only decide which input element lands where.
#include <algorithm>

#include "backend/cpu/kernels/movement.h"
#include "backend/cpu/loops.h"
#include "ops/shape_rules.h"

namespace tessera::cpu {
namespace {
using rules::node_label;

// Reshape, Squeeze, Unsqueeze, Flatten: same bytes, new shape, no copy.
void k_view(KernelContext& c) { c.set_output(0, c.input(0).reshaped(c.output_type(0).shape)); }
TESSERA_CPU_KERNEL("Reshape", k_view);
TESSERA_CPU_KERNEL("Squeeze", k_view);
TESSERA_CPU_KERNEL("Unsqueeze", k_view);
TESSERA_CPU_KERNEL("Flatten", k_view);

void k_transpose(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> perm = c.attrs().get_ints("perm");
  if (perm.empty())
    for (int64_t i = x.rank() - 1; i >= 0; --i) perm.push_back(i);
  Shape in_st = contiguous_strides(x.shape());
  std::vector<int64_t> st;
  for (int64_t p : perm) st.push_back(in_st[size_t(p)]);
  strided_copy(x, 0, st, c.output(0));
}
TESSERA_CPU_KERNEL("Transpose", k_transpose);

// Concat and Split see each tensor as `outer` rows of (axis extent x inner) bytes.
void k_concat(KernelContext& c) {
  Tensor& out = c.output(0);
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis"), out.rank(), node_label(c.node())));
  AxisBlocks r = blocks_around(out.shape(), axis);
  int64_t inner_bytes = r.inner * int64_t(dtype_size(out.dtype()));
  int64_t out_row = out.shape()[axis] * inner_bytes, at = 0;
  char* po = static_cast<char*>(out.raw());
  for (size_t k = 0; k < c.num_inputs(); ++k) {
    const Tensor& x = c.input(k);
    int64_t row = x.shape()[axis] * inner_bytes;
    const char* px = static_cast<const char*>(x.raw());
    for (int64_t o = 0; o < r.outer && row > 0; ++o) std::memcpy(po + o * out_row + at, px + o * row, size_t(row));
    at += row;
  }
}
TESSERA_CPU_KERNEL("Concat", k_concat);

void k_split(KernelContext& c) {
  const Tensor& x = c.input(0);
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), x.rank(), node_label(c.node())));
  AxisBlocks r = blocks_around(x.shape(), axis);
  int64_t inner_bytes = r.inner * int64_t(dtype_size(x.dtype()));
  int64_t in_row = x.shape()[axis] * inner_bytes, at = 0;
  const char* px = static_cast<const char*>(x.raw());
  for (size_t k = 0; k < c.num_outputs(); ++k) {
    Tensor& out = c.output(k);
    int64_t row = out.shape()[axis] * inner_bytes;
    char* po = static_cast<char*>(out.raw());
    for (int64_t o = 0; o < r.outer && row > 0; ++o) std::memcpy(po + o * row, px + o * in_row + at, size_t(row));
    at += row;
  }
}
TESSERA_CPU_KERNEL("Split", k_split);

std::vector<int64_t> optional_ints(KernelContext& c, size_t i) {
  return c.has_input(i) ? c.input(i).to_i64_vector() : std::vector<int64_t>{};
}

void k_slice(KernelContext& c) {
  const Tensor& x = c.input(0);
  rules::SliceWindow w = rules::slice_window(x.shape(), c.input(1).to_i64_vector(), c.input(2).to_i64_vector(),
                                             optional_ints(c, 3), optional_ints(c, 4), node_label(c.node()));
  Shape st = contiguous_strides(x.shape());
  int64_t base = 0;
  for (size_t d = 0; d < st.size(); ++d) {
    base += w.start[d] * st[d];
    st[d] *= w.step[d];
  }
  strided_copy(x, base, st, c.output(0));
}
TESSERA_CPU_KERNEL("Slice", k_slice);

void k_expand(KernelContext& c) {
  Tensor& out = c.output(0);
  strided_copy(c.input(0), 0, broadcast_strides(c.input(0).shape(), out.shape()), out);
}
TESSERA_CPU_KERNEL("Expand", k_expand);

// Tile is an Expand in disguise: read the input as [1,d0,1,d1,...] broadcast
// to [r0,d0,r1,d1,...], whose contiguous bytes are the [r0*d0, r1*d1, ...] tiling.
void k_tile(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> reps = c.input(1).to_i64_vector();
  Shape in_st = contiguous_strides(x.shape()), wide;
  std::vector<int64_t> st;
  for (size_t d = 0; d < reps.size(); ++d) {
    wide.insert(wide.end(), {reps[d], x.shape()[d]});
    st.insert(st.end(), {0, in_st[d]});
  }
  Tensor out = Tensor::empty(x.dtype(), wide);
  strided_copy(x, 0, st, out);
  c.set_output(0, out.reshaped(c.output_type(0).shape));
}
TESSERA_CPU_KERNEL("Tile", k_tile);

// Source index along one dim for output position `i` (already shifted by the
// leading pad); -1 means "padding value" (constant mode).
int64_t pad_source(int64_t i, int64_t n, const std::string& mode) {
  if (i >= 0 && i < n) return i;
  if (mode == "constant") return -1;
  if (mode == "edge") return std::clamp<int64_t>(i, 0, n - 1);
  if (mode == "wrap") return ((i % n) + n) % n;
  if (n == 1) return 0;  // reflect: mirror about the edges without repeating them
  int64_t period = 2 * (n - 1);
  i = ((i % period) + period) % period;
  return i < n ? i : period - i;
}

void k_pad(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::string mode = c.attrs().get_string("mode", "constant");
  rules::PadAmounts p = rules::pad_amounts(x.rank(), c.input(1).to_i64_vector(), optional_ints(c, 3), node_label(c.node()));
  Tensor& out = c.output(0);
  Tensor fill = Tensor::zeros(x.dtype(), {});
  if (c.has_input(2) && c.input(2).numel() > 0) fill = c.input(2).cast(x.dtype());
  if (out.numel() == 0) return;
  Shape st = contiguous_strides(x.shape());
  std::vector<int64_t> idx(size_t(out.rank()), 0);
  int64_t o = 0;
  do {
    int64_t off = 0;
    for (size_t d = 0; d < idx.size() && off >= 0; ++d) {
      int64_t s = pad_source(idx[d] - p.begin[d], x.shape()[d], mode);
      off = s < 0 ? -1 : off + s * st[d];
    }
    if (off < 0) copy_element(fill, 0, out, o);
    else copy_element(x, off, out, o);
    ++o;
  } while (next_index(idx, out.shape()));
}
TESSERA_CPU_KERNEL("Pad", k_pad);

void k_shape(KernelContext& c) {
  const Tensor& x = c.input(0);
  int64_t rank = x.rank(), start = c.attrs().get_int("start", 0);
  start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
  Tensor& out = c.output(0);
  for (int64_t i = 0; i < out.numel(); ++i) out.data<int64_t>()[i] = x.shape()[size_t(start + i)];
}
TESSERA_CPU_KERNEL("Shape", k_shape);

void k_size(KernelContext& c) { *c.output(0).data<int64_t>() = c.input(0).numel(); }
TESSERA_CPU_KERNEL("Size", k_size);

// Both ops are a 6-D transpose of the 4-D tensor; out is read as
// [N, C', H, b, W, b] (DepthToSpace) or [N, b, b, C, H', W'] (SpaceToDepth).
void k_depth_space(KernelContext& c) {
  const Tensor& x = c.input(0);
  int64_t b = c.attrs().get_int("blocksize"), n = x.dim(0), ch = x.dim(1), h = x.dim(2), w = x.dim(3);
  Shape view, out6;
  std::vector<size_t> order;  // for each out6 dim, the view dim it walks
  if (c.node().op == "SpaceToDepth") {
    view = {n, ch, h / b, b, w / b, b};
    out6 = {n, b, b, ch, h / b, w / b};
    order = {0, 3, 5, 1, 2, 4};
  } else if (c.attrs().get_string("mode", "DCR") == "DCR") {
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
  Tensor out = Tensor::empty(x.dtype(), out6);
  strided_copy(x, 0, st, out);
  c.set_output(0, out.reshaped(c.output_type(0).shape));
}
TESSERA_CPU_KERNEL("DepthToSpace", k_depth_space);
TESSERA_CPU_KERNEL("SpaceToDepth", k_depth_space);

}  // namespace
}  // namespace tessera::cpu
