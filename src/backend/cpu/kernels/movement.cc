#include "backend/cpu/kernels/movement.h"

#include <cstdint>

#include "core/error.h"

namespace tessera::cpu {
namespace {

// W is an unsigned integer of the element's width: values are only moved.
template <typename W>
void strided_copy_as(const W* src, W* dst, const Shape& shape, const std::vector<int64_t>& st, int64_t base) {
  int64_t total = numel(shape);
  if (total == 0) return;
  if (shape.empty()) {
    dst[0] = src[base];
    return;
  }
  // Rows of the innermost dim at a time: a memcpy when they are contiguous.
  size_t rank = shape.size();
  int64_t inner = shape.back(), inner_st = st.back(), off = base;
  std::vector<int64_t> idx(rank - 1, 0);
  for (int64_t o = 0; o < total; o += inner) {
    const W* s = src + off;
    if (inner_st == 1) std::memcpy(dst + o, s, size_t(inner) * sizeof(W));
    else
      for (int64_t k = 0; k < inner; ++k) dst[o + k] = s[k * inner_st];
    for (size_t d = rank - 1; d-- > 0;) {
      if (++idx[d] < shape[d]) {
        off += st[d];
        break;
      }
      off -= st[d] * (shape[d] - 1);
      idx[d] = 0;
    }
  }
}

}  // namespace

void strided_copy(const Tensor& in, int64_t base, const std::vector<int64_t>& strides, Tensor& out) {
  TSR_CHECK(strides.size() == out.shape().size() && in.dtype() == out.dtype(), ErrorKind::Internal,
            "strided_copy: strides or dtype do not match the output");
  switch (dtype_size(out.dtype())) {
    case 1: return strided_copy_as(in.data<uint8_t>(), out.data<uint8_t>(), out.shape(), strides, base);
    case 2: return strided_copy_as(in.data<uint16_t>(), out.data<uint16_t>(), out.shape(), strides, base);
    case 4: return strided_copy_as(in.data<uint32_t>(), out.data<uint32_t>(), out.shape(), strides, base);
    case 8: return strided_copy_as(in.data<uint64_t>(), out.data<uint64_t>(), out.shape(), strides, base);
    default: fail(ErrorKind::Internal, "strided_copy: element size ", dtype_size(out.dtype()));
  }
}

Tensor scalar_like(DType t, double value) { return Tensor::from<double>(DType::f64, {}, {value}).cast(t); }

void fill_with(Tensor& out, const Tensor& value) {
  size_t es = dtype_size(out.dtype());
  TSR_CHECK(value.dtype() == out.dtype() && value.numel() >= 1, ErrorKind::Internal, "fill_with: bad fill value");
  char* p = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < out.numel(); ++i) std::memcpy(p + size_t(i) * es, value.raw(), es);
}

}  // namespace tessera::cpu
