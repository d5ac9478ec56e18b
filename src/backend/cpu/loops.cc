#include "backend/cpu/loops.h"

namespace tessera::cpu {

DType compute_dtype(DType t) { return (t == DType::f16 || t == DType::bf16) ? DType::f32 : t; }

Tensor as_compute(const Tensor& t) { return compute_dtype(t.dtype()) == t.dtype() ? t : t.cast(DType::f32); }

Tensor from_compute(const Tensor& t, DType dtype) { return t.dtype() == dtype ? t : t.cast(dtype); }

}  // namespace tessera::cpu
