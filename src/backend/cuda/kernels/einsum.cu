// CUDA kernel for Einsum (ops/einsum.cc): the CPU reference's direct sum of
// products (backend/cpu/kernels/einsum.cc), one thread per output element,
// walking every combination of the reduced labels. Accumulation is in double
// (float types; f16/bf16 round once at the end) or int64 (integers), as on the
// CPU. This covers every equation the parser accepts; it is a correctness
// baseline, not a tuned contraction: a large contraction (attention-sized
// matmuls written as Einsum) would want a permute + batched cuBLASLt GEMM.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/pdl.cuh"
#include "ops/einsum.h"
#include "ops/shape_rules.h"

namespace tessera::cuda {
namespace {

constexpr int kMaxOperands = 8;
constexpr int kMaxLabels = 16;

// Per operand, the element stride each output / reduced label steps by.
struct Plan {
  int operands = 0, out_rank = 0, red_rank = 0;
  int64_t out_extent[kMaxLabels] = {}, red_extent[kMaxLabels] = {};
  int64_t out_stride[kMaxOperands][kMaxLabels] = {}, red_stride[kMaxOperands][kMaxLabels] = {};
  const void* data[kMaxOperands] = {};
};

template <typename T>
__global__ void einsum_kernel(T* out, Plan p, int64_t total, int64_t reductions) {
  pdl_enter();
  using Acc = std::conditional_t<std::is_floating_point_v<compute_t<T>>, double, int64_t>;
  for (int64_t o = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; o < total; o += int64_t(gridDim.x) * blockDim.x) {
    int64_t off[kMaxOperands] = {}, pos[kMaxLabels] = {};
    int64_t rest = o;
    for (int d = p.out_rank - 1; d >= 0; --d) {
      int64_t idx = rest % p.out_extent[d];
      rest /= p.out_extent[d];
      for (int i = 0; i < p.operands; ++i) off[i] += idx * p.out_stride[i][d];
    }
    Acc sum = 0;
    for (int64_t r = 0; r < reductions; ++r) {
      Acc prod = 1;
      for (int i = 0; i < p.operands; ++i) prod *= Acc(load(static_cast<const T*>(p.data[i]), off[i]));
      sum += prod;
      for (int d = p.red_rank - 1; d >= 0; --d) {  // next reduced combination, row-major
        for (int i = 0; i < p.operands; ++i) off[i] += p.red_stride[i][d];
        if (++pos[d] < p.red_extent[d]) break;
        for (int i = 0; i < p.operands; ++i) off[i] -= p.red_stride[i][d] * p.red_extent[d];
        pos[d] = 0;
      }
    }
    store(out, o, sum);
  }
}

// The CPU's label strides: per operand, the sum of the contiguous strides of
// the dims carrying a label (a repeated label walks the diagonal), 0 for an
// extent-1 dim (an ellipsis dim being broadcast).
std::vector<std::vector<int64_t>> label_strides(const rules::EinsumSpec& spec, const KernelContext& ctx) {
  std::vector<std::vector<int64_t>> st(ctx.num_inputs(), std::vector<int64_t>(spec.extent.size(), 0));
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Shape& s = ctx.input(i).shape();
    int64_t stride = 1;
    for (size_t d = s.size(); d-- > 0;) {
      if (s[d] != 1) st[i][size_t(spec.operand_labels[i][d])] += stride;
      stride *= s[d];
    }
  }
  return st;
}

Plan plan_of(const KernelContext& ctx, const rules::EinsumSpec& spec) {
  Plan p;
  if (ctx.num_inputs() > size_t(kMaxOperands)) ctx.error(ctx.num_inputs(), " operands (at most ", kMaxOperands, " on cuda)");
  if (spec.output_labels.size() > size_t(kMaxLabels) || spec.reduced_labels.size() > size_t(kMaxLabels))
    ctx.error("more than ", kMaxLabels, " output or reduced labels");
  auto st = label_strides(spec, ctx);
  p.operands = int(ctx.num_inputs());
  p.out_rank = int(spec.output_labels.size());
  p.red_rank = int(spec.reduced_labels.size());
  for (int i = 0; i < p.operands; ++i) p.data[i] = ctx.input(size_t(i)).raw();
  for (int d = 0; d < p.out_rank; ++d) {
    size_t l = size_t(spec.output_labels[size_t(d)]);
    p.out_extent[d] = spec.extent[l];
    for (int i = 0; i < p.operands; ++i) p.out_stride[i][d] = st[size_t(i)][l];
  }
  for (int d = 0; d < p.red_rank; ++d) {
    size_t l = size_t(spec.reduced_labels[size_t(d)]);
    p.red_extent[d] = spec.extent[l];
    for (int i = 0; i < p.operands; ++i) p.red_stride[i][d] = st[size_t(i)][l];
  }
  return p;
}

void k_einsum(KernelContext& ctx) {
  Tensor& out = ctx.output(0);
  if (out.numel() == 0) return;
  std::vector<Shape> shapes;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) shapes.push_back(ctx.input(i).shape());
  rules::EinsumSpec spec = rules::parse_einsum(ctx.attrs().get_string("equation", ""), shapes, rules::node_label(ctx.node()));
  Plan p = plan_of(ctx, spec);
  int64_t reductions = 1;
  for (int d = 0; d < p.red_rank; ++d) reductions *= p.red_extent[d];
  visit_device_dtype(out.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      ctx.error("Einsum on bool is not supported");
    } else {
      launch_kernel(einsum_kernel<T>, blocks_for(out.numel()), 256, 0, ctx.stream(), out.data<T>(), p, out.numel(),
                    reductions);
    }
  });
  check_launch(ctx);
}
TESSERA_CUDA_KERNEL("Einsum", k_einsum);

}  // namespace
}  // namespace tessera::cuda
