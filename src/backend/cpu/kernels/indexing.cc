// CPU kernels for the indexing ops (ops/indexing.cc). Gathers and plain
// scatters move bytes and take every dtype; scatter reductions, TopK and
// ArgMax/ArgMin compare or combine values (f16/bf16 in f32). Negative indices
// count from the end; an index out of range is an error naming the node.
#include <algorithm>
#include <numeric>

#include "backend/cpu/kernels/movement.h"
#include "backend/cpu/loops.h"
#include "ops/shape_rules.h"

namespace tessera::cpu {
namespace {
using rules::node_label;

int64_t checked_index(const KernelContext& c, int64_t i, int64_t n, size_t axis) {
  if (i < -n || i >= n) c.error("index ", i, " is out of range for axis ", axis, " of extent ", n);
  return i < 0 ? i + n : i;
}

void k_gather(KernelContext& c) {
  const Tensor& x = c.input(0);
  std::vector<int64_t> idx = c.input(1).to_i64_vector();
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), x.rank(), node_label(c.node())));
  int64_t n = x.shape()[axis], m = int64_t(idx.size());
  for (int64_t& i : idx) i = checked_index(c, i, n, axis);
  AxisBlocks b = blocks_around(x.shape(), axis);
  size_t row = size_t(b.inner) * dtype_size(x.dtype());
  const char* px = static_cast<const char*>(x.raw());
  char* po = static_cast<char*>(c.output(0).raw());
  for (int64_t o = 0; o < b.outer; ++o)
    for (int64_t j = 0; j < m; ++j) std::memcpy(po + size_t(o * m + j) * row, px + size_t(o * n + idx[size_t(j)]) * row, row);
}
TESSERA_CPU_KERNEL("Gather", k_gather);

void k_gather_elements(KernelContext& c) {
  const Tensor &x = c.input(0), &ind = c.input(1);
  std::vector<int64_t> idx = ind.to_i64_vector();
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), x.rank(), node_label(c.node())));
  Tensor& out = c.output(0);
  if (out.numel() == 0) return;
  Shape st = contiguous_strides(x.shape());
  std::vector<int64_t> pos(ind.shape().size(), 0);
  int64_t i = 0;
  do {
    std::vector<int64_t> src = pos;
    src[axis] = checked_index(c, idx[size_t(i)], x.shape()[axis], axis);
    copy_element(x, offset_of(src, st), out, i);
    ++i;
  } while (next_index(pos, ind.shape()));
}
TESSERA_CPU_KERNEL("GatherElements", k_gather_elements);

// Where index tuples point: for tuple t (of `k` values, after `batch` leading
// batch dims shared by data and indices), the element offset into data.
std::vector<int64_t> tuple_offsets(const KernelContext& c, const Tensor& data, const Tensor& ind, int64_t batch) {
  std::vector<int64_t> idx = ind.to_i64_vector();
  int64_t k = ind.shape().back(), tuples = int64_t(idx.size()) / std::max<int64_t>(k, 1);
  int64_t batches = numel(Shape(data.shape().begin(), data.shape().begin() + batch));
  int64_t per_batch = batches ? tuples / batches : 0;
  Shape st = contiguous_strides(data.shape());
  int64_t batch_stride = batch > 0 ? st[size_t(batch - 1)] : 0;
  std::vector<int64_t> offs(static_cast<size_t>(tuples));
  for (int64_t t = 0; t < tuples; ++t) {
    int64_t off = per_batch ? (t / per_batch) * batch_stride : 0;
    for (int64_t j = 0; j < k; ++j) {
      size_t d = size_t(batch + j);
      off += checked_index(c, idx[size_t(t * k + j)], data.shape()[d], d) * st[d];
    }
    offs[size_t(t)] = off;
  }
  return offs;
}

void k_gather_nd(KernelContext& c) {
  const Tensor &x = c.input(0), &ind = c.input(1);
  int64_t b = c.attrs().get_int("batch_dims", 0), k = ind.shape().back();
  std::vector<int64_t> offs = tuple_offsets(c, x, ind, b);
  size_t es = dtype_size(x.dtype());
  int64_t slice = numel(Shape(x.shape().begin() + b + k, x.shape().end()));
  const char* px = static_cast<const char*>(x.raw());
  char* po = static_cast<char*>(c.output(0).raw());
  for (size_t t = 0; t < offs.size(); ++t)
    std::memcpy(po + t * size_t(slice) * es, px + size_t(offs[t]) * es, size_t(slice) * es);
}
TESSERA_CPU_KERNEL("GatherND", k_gather_nd);

// A scatter writes `run` consecutive update elements from `src` to `dst`.
struct Move {
  int64_t dst, src;
};

enum class Reduction { add, mul, max, min };

template <typename T>
T combine(Reduction r, T a, T b) {
  switch (r) {
    case Reduction::add: return T(a + b);
    case Reduction::mul: return T(a * b);
    case Reduction::max: return std::max(a, b);
    default: return std::min(a, b);
  }
}

// Output = data with the moves applied in order (later ones win for "none").
void apply_scatter(KernelContext& c, const std::vector<Move>& moves, int64_t run) {
  const Tensor &data = c.input(0), &upd = c.input(2);
  std::string red = c.attrs().get_string("reduction", "none");
  if (red == "none") {
    Tensor out = data.clone();
    size_t bytes = size_t(run) * dtype_size(data.dtype()), es = dtype_size(data.dtype());
    for (const Move& m : moves)
      std::memcpy(static_cast<char*>(out.raw()) + size_t(m.dst) * es, static_cast<const char*>(upd.raw()) + size_t(m.src) * es, bytes);
    c.set_output(0, out);
    return;
  }
  if (data.dtype() == DType::boolean) c.error("reduction '", red, "' on bool is not supported");
  Reduction r = red == "add" ? Reduction::add : red == "mul" ? Reduction::mul : red == "max" ? Reduction::max : Reduction::min;
  Tensor acc = as_compute(data).clone(), u = as_compute(upd);
  visit_dtype(acc.dtype(), [&]<typename T>() {
    T* pa = acc.data<T>();
    const T* pu = u.data<T>();
    for (const Move& m : moves)
      for (int64_t i = 0; i < run; ++i) pa[m.dst + i] = combine(r, pa[m.dst + i], pu[m.src + i]);
  });
  c.set_output(0, from_compute(acc, data.dtype()));
}

void k_scatter_nd(KernelContext& c) {
  const Tensor &x = c.input(0), &ind = c.input(1);
  int64_t k = ind.shape().back();
  int64_t run = numel(Shape(x.shape().begin() + k, x.shape().end()));
  std::vector<int64_t> offs = tuple_offsets(c, x, ind, 0);
  std::vector<Move> moves;
  for (size_t t = 0; t < offs.size(); ++t) moves.push_back({offs[t], int64_t(t) * run});
  apply_scatter(c, moves, run);
}
TESSERA_CPU_KERNEL("ScatterND", k_scatter_nd);

void k_scatter_elements(KernelContext& c) {
  const Tensor &x = c.input(0), &ind = c.input(1);
  std::vector<int64_t> idx = ind.to_i64_vector();
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), x.rank(), node_label(c.node())));
  Shape st = contiguous_strides(x.shape());
  std::vector<Move> moves;
  std::vector<int64_t> pos(ind.shape().size(), 0);
  for (int64_t i = 0; i < ind.numel(); ++i) {
    std::vector<int64_t> dst = pos;
    dst[axis] = checked_index(c, idx[size_t(i)], x.shape()[axis], axis);
    moves.push_back({offset_of(dst, st), i});
    next_index(pos, ind.shape());
  }
  apply_scatter(c, moves, 1);
}
TESSERA_CPU_KERNEL("ScatterElements", k_scatter_elements);

// Output [rank, count]: column j holds the coordinates of the j-th nonzero
// element in row-major order (a scalar is treated as a 1-element vector).
void k_nonzero(KernelContext& c) {
  const Tensor& x = c.input(0);
  Tensor& out = c.output(0);
  int64_t count = out.shape()[1], j = 0;
  Shape shape = x.rank() ? x.shape() : Shape{1};
  std::vector<int64_t> pos(shape.size(), 0);
  for (int64_t i = 0; i < x.numel(); ++i, next_index(pos, shape)) {
    if (x.item_f64(i) == 0) continue;
    for (size_t d = 0; d < pos.size(); ++d) out.data<int64_t>()[int64_t(d) * count + j] = pos[d];
    ++j;
  }
}
TESSERA_CPU_KERNEL("NonZero", k_nonzero);

// Sorted by value (largest or smallest first), ties by the lower index, like
// ONNX Runtime; with sorted=0 ONNX leaves the order open and we keep it sorted.
void k_topk(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", -1), x.rank(), node_label(c.node())));
  bool largest = c.attrs().get_int("largest", 1) != 0;
  int64_t n = x.shape()[axis], k = c.output_type(0).shape[axis];
  AxisBlocks b = blocks_around(x.shape(), axis);
  Shape out_shape = c.output_type(0).shape;
  Tensor vals = Tensor::empty(x.dtype(), out_shape), inds = Tensor::empty(DType::i64, out_shape);
  std::vector<int64_t> order(static_cast<size_t>(n));
  visit_dtype(x.dtype(), [&]<typename T>() {
    const T* px = x.data<T>();
    for (int64_t o = 0; o < b.outer; ++o)
      for (int64_t in = 0; in < b.inner; ++in) {
        const T* row = px + o * n * b.inner + in;
        auto at = [&](int64_t i) { return row[i * b.inner]; };
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t p, int64_t q) {
          if (at(p) != at(q)) return largest ? at(p) > at(q) : at(p) < at(q);
          return p < q;
        });
        for (int64_t j = 0; j < k; ++j) {
          int64_t dst = (o * k + j) * b.inner + in;
          vals.data<T>()[dst] = at(order[size_t(j)]);
          inds.data<int64_t>()[dst] = order[size_t(j)];
        }
      }
  });
  c.set_output(0, from_compute(vals, c.output_type(0).dtype));
  if (c.num_outputs() > 1) c.set_output(1, inds);
}
TESSERA_CPU_KERNEL("TopK", k_topk);

void k_arg_reduce(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  size_t axis = size_t(normalize_axis(c.attrs().get_int("axis", 0), x.rank(), node_label(c.node())));
  bool want_max = c.node().op == "ArgMax", last = c.attrs().get_int("select_last_index", 0) != 0;
  int64_t n = x.shape()[axis];
  AxisBlocks b = blocks_around(x.shape(), axis);
  int64_t* po = c.output(0).data<int64_t>();
  visit_dtype(x.dtype(), [&]<typename T>() {
    for (int64_t o = 0; o < b.outer; ++o)
      for (int64_t in = 0; in < b.inner; ++in) {
        const T* row = x.data<T>() + o * n * b.inner + in;
        int64_t best = 0;
        for (int64_t i = 1; i < n; ++i) {
          T v = row[i * b.inner], cur = row[best * b.inner];
          bool better = want_max ? v > cur : v < cur;
          if (better || (last && v == cur)) best = i;
        }
        po[o * b.inner + in] = best;
      }
  });
}
TESSERA_CPU_KERNEL("ArgMax", k_arg_reduce);
TESSERA_CPU_KERNEL("ArgMin", k_arg_reduce);

}  // namespace
}  // namespace tessera::cpu
