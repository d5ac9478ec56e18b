#include "backend/cpu/loops.h"

namespace tessera::cpu {

DType compute_dtype(DType t) { return (t == DType::f16 || t == DType::bf16) ? DType::f32 : t; }

Tensor as_compute(const Tensor& t) { return compute_dtype(t.dtype()) == t.dtype() ? t : t.cast(DType::f32); }

Tensor from_compute(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : t.cast(dtype); }

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  Shape cs = contiguous_strides(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[lead + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

}  // namespace tessera::cpu
