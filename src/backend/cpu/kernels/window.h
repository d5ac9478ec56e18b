// Gather tables for the CPU conv and pool kernels (kernels/conv.cc,
// kernels/pool.cc). A table lists, for every kernel tap and window position,
// the image element that tap reads; conv turns it into im2col (or col2im for
// ConvTranspose), the pools into their window loops. Built once per node run
// and shared by every channel and batch entry, so the padding and dilation
// arithmetic is done once, in one place.
#pragma once
#include <vector>

#include "backend/cpu/loops.h"
#include "ops/conv_rules.h"

namespace tessera::cpu {

// table[tap * numel(grid) + cell]: flat index into one channel of `image` read
// by kernel tap `tap` (row-major over w.kernel) of the window at `cell`
// (row-major over `grid`), or -1 where the tap falls in padding. The window
// starts at cell * stride - pad_begin and steps by dilation. For Conv and the
// pools image = w.in and grid = w.out; for ConvTranspose it is the reverse.
std::vector<int64_t> gather_table(const Shape& image, const Shape& grid, const rules::Window& w);

// Calls f.template operator()<T>() with T = float or double for the compute
// dtype `t`; other dtypes are an error naming the node.
template <typename F>
decltype(auto) visit_float(const KernelContext& c, DType t, F&& f) {
  if (t == DType::f32) return f.template operator()<float>();
  if (t == DType::f64) return f.template operator()<double>();
  c.error("dtype ", dtype_name(t), " is not supported (float types only)");
}

}  // namespace tessera::cpu
