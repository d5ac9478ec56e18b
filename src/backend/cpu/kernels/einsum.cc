// CPU kernel for Einsum (ops/einsum.cc): a direct sum of products over the
// parsed labels. Each output element sums over every combination of the
// reduced labels; accumulation is in double (floats) or int64 (integers), so
// the oracle is at least as accurate as any backend it checks.
#include "backend/cpu/kernels/movement.h"
#include "backend/cpu/loops.h"
#include "ops/einsum.h"
#include "ops/shape_rules.h"

namespace tessera::cpu {
namespace {

// Per operand, the element stride that each label steps by: the sum over the
// operand's dims with that label (a repeated label walks the diagonal), and 0
// where the dim has extent 1 (an ellipsis dim being broadcast).
std::vector<std::vector<int64_t>> label_strides(const rules::EinsumSpec& spec, const std::vector<Tensor>& ins) {
  std::vector<std::vector<int64_t>> st(ins.size(), std::vector<int64_t>(spec.extent.size(), 0));
  for (size_t i = 0; i < ins.size(); ++i) {
    Shape cs = contiguous_strides(ins[i].shape());
    for (size_t d = 0; d < cs.size(); ++d)
      if (ins[i].shape()[d] != 1) st[i][size_t(spec.operand_labels[i][d])] += cs[d];
  }
  return st;
}

// Offsets of every combination of `labels` into each operand, row-major.
std::vector<std::vector<int64_t>> label_offsets(const rules::EinsumSpec& spec, const std::vector<int>& labels,
                                                const std::vector<std::vector<int64_t>>& st) {
  Shape shape;
  for (int l : labels) shape.push_back(spec.extent[size_t(l)]);
  std::vector<std::vector<int64_t>> offs(st.size());
  if (numel(shape) == 0) return offs;
  std::vector<int64_t> pos(shape.size(), 0);
  do {
    for (size_t i = 0; i < st.size(); ++i) {
      int64_t off = 0;
      for (size_t d = 0; d < pos.size(); ++d) off += pos[d] * st[i][size_t(labels[d])];
      offs[i].push_back(off);
    }
  } while (next_index(pos, shape));
  return offs;
}

void k_einsum(KernelContext& c) {
  std::vector<Tensor> ins;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    ins.push_back(as_compute(c.input(i)));
    shapes.push_back(ins.back().shape());
  }
  rules::EinsumSpec spec = rules::parse_einsum(c.attrs().get_string("equation", ""), shapes, rules::node_label(c.node()));
  auto st = label_strides(spec, ins);
  auto out_offs = label_offsets(spec, spec.output_labels, st), red_offs = label_offsets(spec, spec.reduced_labels, st);
  Tensor out = Tensor::empty(ins[0].dtype(), c.output_type(0).shape);
  visit_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      c.error("Einsum on bool is not supported");
    } else {
      using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
      size_t n_red = red_offs.empty() ? 0 : red_offs[0].size();
      for (int64_t o = 0; o < out.numel(); ++o) {
        Acc sum = 0;
        for (size_t r = 0; r < n_red; ++r) {
          Acc prod = 1;
          for (size_t i = 0; i < ins.size(); ++i) prod *= Acc(ins[i].data<T>()[out_offs[i][size_t(o)] + red_offs[i][r]]);
          sum += prod;
        }
        out.data<T>()[o] = T(sum);
      }
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Einsum", k_einsum);

}  // namespace
}  // namespace tessera::cpu
