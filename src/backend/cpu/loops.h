// Loop helpers shared by the CPU reference kernels: dtype dispatch and
// broadcast iteration. f16/bf16 are computed in f32 (convert in, convert out),
// which is also the accumulation rule DESIGN.md asks of every backend.
#pragma once
#include <cstdint>
#include <vector>

#include "backend/cpu/kernel_registry.h"

namespace tessera::cpu {

// Call f.template operator()<T>() with T the C++ type of `t`; f16/bf16 are not
// handled here (see as_compute / from_compute).
template <typename F>
decltype(auto) visit_dtype(DType t, F&& f) {
  switch (t) {
    case DType::f32: return f.template operator()<float>();
    case DType::f64: return f.template operator()<double>();
    case DType::i64: return f.template operator()<int64_t>();
    case DType::i32: return f.template operator()<int32_t>();
    case DType::i8: return f.template operator()<int8_t>();
    case DType::u8: return f.template operator()<uint8_t>();
    case DType::boolean: return f.template operator()<bool>();
    default: break;
  }
  fail(ErrorKind::Unsupported, "CPU kernel: dtype ", dtype_name(t), " is not handled here");
}

// f16/bf16 → f32 copy; other dtypes pass through unchanged (shared storage).
Tensor as_compute(const Tensor& t);
// Convert a computed f32 tensor back to `dtype` (f16/bf16), or pass through.
Tensor from_compute(const Tensor& t, DType dtype);
DType compute_dtype(DType t);  // f16/bf16 → f32, otherwise t


// Call f(out_index, in_offsets...) for every element of `out`, with each
// input's element offset under broadcasting.
template <size_t N, typename F>
void for_each_broadcast(const Shape& out, const std::vector<int64_t> (&strides)[N], F&& f) {
  int64_t total = numel(out), rank = int64_t(out.size());
  std::vector<int64_t> idx(size_t(rank), 0);
  int64_t off[N] = {};
  for (int64_t i = 0; i < total; ++i) {
    f(i, off);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < out[size_t(d)]) {
        for (size_t k = 0; k < N; ++k) off[k] += strides[k][size_t(d)];
        break;
      }
      for (size_t k = 0; k < N; ++k) off[k] -= strides[k][size_t(d)] * (out[size_t(d)] - 1);
      idx[size_t(d)] = 0;
    }
  }
}

}  // namespace tessera::cpu
