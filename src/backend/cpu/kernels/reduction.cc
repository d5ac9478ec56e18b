// Reduce* kernels: every output element folds the input elements that map to
// it, accumulating in double (floats) or in the type itself (integers, which
// must stay exact for ReduceSum/Max/Min/Prod).
#include <cmath>

#include "backend/cpu/loops.h"

namespace tessera {
std::vector<int64_t> reduction_axes(const Node& n, const Tensor* axes_input, int64_t rank, bool& known);
}

namespace tessera::cpu {
namespace {

template <typename T>
void reduce_loop(const std::string& op, const Tensor& x, Tensor& out, const std::vector<bool>& reduced) {
  // Output strides of the kept dims (reduced dims contribute 0).
  Shape kept;
  for (int64_t i = 0; i < x.rank(); ++i) kept.push_back(reduced[size_t(i)] ? 1 : x.dim(i));
  Shape ks = contiguous_strides(kept);
  std::vector<int64_t> st(size_t(x.rank()));
  for (int64_t i = 0; i < x.rank(); ++i) st[size_t(i)] = reduced[size_t(i)] ? 0 : ks[size_t(i)];
  int64_t n_out = numel(kept), count = std::max<int64_t>(x.numel() / std::max<int64_t>(n_out, 1), 1);
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
  bool is_max = op == "ReduceMax", is_min = op == "ReduceMin", is_prod = op == "ReduceProd", is_lse = op == "ReduceLogSumExp";
  std::vector<Acc> acc(size_t(n_out), is_prod ? Acc(1) : Acc(0));
  std::vector<Acc> mx(is_lse ? size_t(n_out) : 0, Acc(-INFINITY));
  std::vector<bool> first(size_t(n_out), true);
  const T* px = x.data<T>();
  std::vector<int64_t> strides[1] = {st};
  // Two passes for LogSumExp (max first, for stability); one for the rest.
  for (int pass = is_lse ? 0 : 1; pass < 2; ++pass)
    for_each_broadcast(x.shape(), strides, [&](int64_t i, const int64_t* off) {
      Acc v = Acc(px[i]);
      Acc& a = acc[size_t(off[0])];
      if (pass == 0) { mx[size_t(off[0])] = std::max(mx[size_t(off[0])], v); return; }
      if (is_max) a = first[size_t(off[0])] ? v : std::max(a, v);
      else if (is_min) a = first[size_t(off[0])] ? v : std::min(a, v);
      else if (is_prod) a *= v;
      else if (op == "ReduceL1") a += v < 0 ? Acc(-v) : v;
      else if (op == "ReduceL2" || op == "ReduceSumSquare") a += v * v;
      else if (is_lse) a += Acc(std::exp(double(v - mx[size_t(off[0])])));
      else a += v;  // Sum, Mean, LogSum
      first[size_t(off[0])] = false;
    });
  T* po = out.data<T>();
  for (int64_t i = 0; i < n_out; ++i) {
    Acc a = acc[size_t(i)];
    if (op == "ReduceMean") a = Acc(double(a) / double(count));
    else if (op == "ReduceL2") a = Acc(std::sqrt(double(a)));
    else if (op == "ReduceLogSum") a = Acc(std::log(double(a)));
    else if (is_lse) a = Acc(double(mx[size_t(i)]) + std::log(double(a)));
    if ((is_max || is_min) && first[size_t(i)])  // empty reduction: the identity of max/min
      a = is_max ? Acc(std::numeric_limits<T>::lowest()) : Acc(std::numeric_limits<T>::max());
    po[i] = T(a);
  }
}

void k_reduce(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  bool known = true;
  std::vector<int64_t> axes = reduction_axes(c.node(), c.has_input(1) ? &c.input(1) : nullptr, x.rank(), known);
  // noop_with_empty_axes: nothing is reduced, but the per-element part still
  // applies (|x| for L1, x^2 for SumSquare, ...), as ONNX Runtime does.
  std::vector<bool> reduced(size_t(x.rank()), false);
  for (int64_t a : axes) reduced[size_t(a)] = true;
  Tensor out = Tensor::empty(x.dtype(), c.output_type(0).shape);
  visit_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) c.error("reductions on bool are not supported");
    else reduce_loop<T>(c.node().op, x, out, reduced);
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}

}  // namespace

TESSERA_CPU_KERNEL("ReduceSum", k_reduce);
TESSERA_CPU_KERNEL("ReduceMean", k_reduce);
TESSERA_CPU_KERNEL("ReduceMax", k_reduce);
TESSERA_CPU_KERNEL("ReduceMin", k_reduce);
TESSERA_CPU_KERNEL("ReduceProd", k_reduce);
TESSERA_CPU_KERNEL("ReduceL1", k_reduce);
TESSERA_CPU_KERNEL("ReduceL2", k_reduce);
TESSERA_CPU_KERNEL("ReduceSumSquare", k_reduce);
TESSERA_CPU_KERNEL("ReduceLogSum", k_reduce);
TESSERA_CPU_KERNEL("ReduceLogSumExp", k_reduce);

}  // namespace tessera::cpu
