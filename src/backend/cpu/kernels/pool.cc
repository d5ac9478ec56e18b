// CPU kernels for the pooling ops (ops/pool.cc). Each node run builds one
// gather table (kernels/window.h) that every N x C plane shares; the Global*
// forms are the same loops over a single window covering the whole plane.
// Sums are accumulated in double, so the f32 result rounds once.
#include <cmath>
#include <limits>
#include <numeric>

#include "backend/cpu/kernels/movement.h"
#include "backend/cpu/kernels/window.h"

namespace tessera::cpu {
namespace {
using rules::node_label;

struct Pool {
  rules::Window win;
  std::vector<int64_t> table;  // taps x cells, see gather_table
  int64_t planes = 0, pixels = 0, cells = 0, taps = 0;
  int64_t at(int64_t tap, int64_t cell) const { return table[size_t(tap * cells + cell)]; }
};

Pool plan(const KernelContext& c, const Tensor& x, bool global) {
  Pool p;
  Shape in = rules::spatial_dims(x.shape());
  p.planes = x.dim(0) * x.dim(1);
  p.pixels = numel(in);
  if (global) {  // one window over the whole plane
    p.win.in = in;
    p.cells = 1;
    p.taps = p.pixels;
    p.table.resize(size_t(p.pixels));
    std::iota(p.table.begin(), p.table.end(), 0);
    return p;
  }
  p.win = rules::sliding_window(in, c.attrs().get_ints("kernel_shape"), c.attrs(), c.attrs().get_int("ceil_mode", 0) != 0,
                                node_label(c.node()));
  p.cells = numel(p.win.out);
  p.taps = numel(p.win.kernel);
  p.table = gather_table(in, p.win.out, p.win);
  return p;
}

// The Indices of MaxPool count within the whole tensor; storage_order 1 walks
// each plane's spatial dims column-major (first dim fastest), as ONNX says.
std::vector<int64_t> index_table(const Pool& p, int64_t storage_order) {
  if (storage_order == 0) return p.table;
  const Shape& in = p.win.in;
  Shape row = contiguous_strides(in), col(in.size(), 1);
  for (size_t i = 1; i < in.size(); ++i) col[i] = col[i - 1] * in[i - 1];
  std::vector<int64_t> out(p.table.size(), -1);
  for (size_t t = 0; t < out.size(); ++t) {
    if (p.table[t] < 0) continue;
    int64_t rest = p.table[t], idx = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      idx += rest / row[i] * col[i];
      rest %= row[i];
    }
    out[t] = idx;
  }
  return out;
}

template <typename T>
void max_pool(const Pool& p, const T* x, T* y, int64_t* indices, const std::vector<int64_t>& idx_table) {
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    const T* img = x + plane * p.pixels;
    for (int64_t cell = 0; cell < p.cells; ++cell) {
      T best = std::numeric_limits<T>::lowest();
      int64_t arg = -1;
      for (int64_t tap = 0; tap < p.taps; ++tap) {
        int64_t off = p.at(tap, cell);
        if (off >= 0 && (arg < 0 || img[off] > best)) {  // first maximum wins, as in ONNX Runtime
          best = img[off];
          arg = tap * p.cells + cell;
        }
      }
      y[plane * p.cells + cell] = best;
      if (indices) indices[plane * p.cells + cell] = arg < 0 ? -1 : plane * p.pixels + idx_table[size_t(arg)];
    }
  }
}

// AveragePool's divisor per window: the taps inside the input, or with
// count_include_pad those inside the padded input (never past the end padding,
// which a ceil_mode window may reach).
std::vector<double> divisors(const Pool& p, bool include_pad) {
  std::vector<double> d(size_t(p.cells), 0.0);
  if (!include_pad) {
    for (int64_t tap = 0; tap < p.taps; ++tap)
      for (int64_t cell = 0; cell < p.cells; ++cell) d[size_t(cell)] += p.at(tap, cell) >= 0;
    return d;
  }
  const rules::Window& w = p.win;
  std::vector<int64_t> pos(w.out.size(), 0);
  size_t at = 0;
  do {  // a window is a box, so its count is the product of per-dim counts
    double n = 1;
    for (size_t i = 0; i < pos.size(); ++i) {
      int64_t count = 0;
      for (int64_t k = 0; k < w.kernel[i]; ++k) {
        int64_t x = pos[i] * w.stride[i] - w.pad_begin[i] + k * w.dilation[i];
        count += x >= -w.pad_begin[i] && x < w.in[i] + w.pad_end[i];
      }
      n *= double(count);
    }
    d[at++] = n;
  } while (next_index(pos, w.out));
  return d;
}

// AveragePool (power 1, then divide) and LpPool (|x|^p summed, then the p-th root).
template <typename T>
void sum_pool(const Pool& p, const T* x, T* y, double power, const std::vector<double>* divisor) {
  for (int64_t plane = 0; plane < p.planes; ++plane) {
    const T* img = x + plane * p.pixels;
    for (int64_t cell = 0; cell < p.cells; ++cell) {
      double acc = 0;
      for (int64_t tap = 0; tap < p.taps; ++tap) {
        int64_t off = p.at(tap, cell);
        if (off < 0) continue;
        acc += divisor ? double(img[off]) : std::pow(std::fabs(double(img[off])), power);
      }
      y[plane * p.cells + cell] = T(divisor ? acc / (*divisor)[size_t(cell)] : std::pow(acc, 1.0 / power));
    }
  }
}

bool is_global(const KernelContext& c) { return c.node().op.starts_with("Global"); }

void k_max_pool(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  Pool p = plan(c, x, is_global(c));
  Tensor y = Tensor::empty(x.dtype(), c.output_type(0).shape);
  bool want_indices = c.num_outputs() > 1 && c.node().outputs[1] != nullptr;
  int64_t* indices = want_indices ? c.output(1).data<int64_t>() : nullptr;
  std::vector<int64_t> idx_table = want_indices ? index_table(p, c.attrs().get_int("storage_order", 0)) : std::vector<int64_t>{};
  DType t = x.dtype();
  if (t == DType::i8) max_pool<int8_t>(p, x.data<int8_t>(), y.data<int8_t>(), indices, idx_table);
  else if (t == DType::u8) max_pool<uint8_t>(p, x.data<uint8_t>(), y.data<uint8_t>(), indices, idx_table);
  else visit_float(c, t, [&]<typename T>() { max_pool<T>(p, x.data<T>(), y.data<T>(), indices, idx_table); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("MaxPool", k_max_pool);
TESSERA_CPU_KERNEL("GlobalMaxPool", k_max_pool);

void k_average_pool(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  Pool p = plan(c, x, is_global(c));
  std::vector<double> div = is_global(c) ? std::vector<double>{double(p.pixels)}
                                         : divisors(p, c.attrs().get_int("count_include_pad", 0) != 0);
  Tensor y = Tensor::empty(x.dtype(), c.output_type(0).shape);
  visit_float(c, x.dtype(), [&]<typename T>() { sum_pool<T>(p, x.data<T>(), y.data<T>(), 1.0, &div); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("AveragePool", k_average_pool);
TESSERA_CPU_KERNEL("GlobalAveragePool", k_average_pool);

void k_lp_pool(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  Pool p = plan(c, x, is_global(c));
  double power = double(c.attrs().get_int("p", 2));
  Tensor y = Tensor::empty(x.dtype(), c.output_type(0).shape);
  visit_float(c, x.dtype(), [&]<typename T>() { sum_pool<T>(p, x.data<T>(), y.data<T>(), power, nullptr); });
  c.set_output(0, from_compute(y, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("LpPool", k_lp_pool);
TESSERA_CPU_KERNEL("GlobalLpPool", k_lp_pool);

}  // namespace
}  // namespace tessera::cpu
