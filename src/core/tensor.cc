#include "core/tensor.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace tessera {

Tensor Tensor::empty(DType dtype, const Shape& shape) {
  TSR_CHECK(is_static(shape), ErrorKind::Internal, "Tensor::empty: shape ", to_string(shape), " has unknown dims");
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = shape;
  size_t bytes = std::max<size_t>(t.nbytes(), 1);
  // 64-byte alignment suits SIMD loads and matches the engine file's weight alignment.
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) fail(ErrorKind::Runtime, "out of host memory: requested ", bytes, " bytes for a tensor of shape ", to_string(shape));
  t.storage_ = std::shared_ptr<void>(p, std::free);
  t.data_ = p;
  return t;
}

Tensor Tensor::zeros(DType dtype, const Shape& shape) {
  Tensor t = empty(dtype, shape);
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

Tensor Tensor::view(DType dtype, const Shape& shape, void* data, std::shared_ptr<void> owner, Device device) {
  Tensor t;
  t.device_ = device;
  t.dtype_ = dtype;
  t.shape_ = shape;
  t.storage_ = std::move(owner);
  t.data_ = data;
  return t;
}

Tensor Tensor::scalar_i64(int64_t v) { return from<int64_t>(DType::i64, {}, {v}); }
Tensor Tensor::vector_i64(const std::vector<int64_t>& v) { return from<int64_t>(DType::i64, {int64_t(v.size())}, v); }

Tensor Tensor::reshaped(const Shape& shape) const {
  TSR_CHECK(tessera::numel(shape) == numel(), ErrorKind::Shape, "cannot reshape ", to_string(shape_), " into ", to_string(shape));
  Tensor t = *this;
  t.shape_ = shape;
  return t;
}

Tensor Tensor::clone() const {
  TSR_CHECK(device_ == Device::cpu, ErrorKind::Internal, "Tensor::clone on a device tensor");
  Tensor t = empty(dtype_, shape_);
  if (nbytes()) std::memcpy(t.raw(), data_, nbytes());
  return t;
}

double Tensor::item_f64(int64_t i) const {
  TSR_CHECK(device_ == Device::cpu, ErrorKind::Internal, "reading elements of a device tensor on the host");
  switch (dtype_) {
    case DType::f32: return data<float>()[i];
    case DType::f64: return data<double>()[i];
    case DType::f16: return f16_to_f32(data<uint16_t>()[i]);
    case DType::bf16: return bf16_to_f32(data<uint16_t>()[i]);
    case DType::i64: return double(data<int64_t>()[i]);
    case DType::i32: return data<int32_t>()[i];
    case DType::i8: return data<int8_t>()[i];
    case DType::u8: return data<uint8_t>()[i];
    case DType::boolean: return data<uint8_t>()[i] ? 1 : 0;
  }
  return 0;
}

int64_t Tensor::item_i64(int64_t i) const {
  switch (dtype_) {
    case DType::i64: return data<int64_t>()[i];
    case DType::i32: return data<int32_t>()[i];
    case DType::i8: return data<int8_t>()[i];
    case DType::u8: case DType::boolean: return data<uint8_t>()[i];
    default: return int64_t(item_f64(i));
  }
}

std::vector<int64_t> Tensor::to_i64_vector() const {
  std::vector<int64_t> v(static_cast<size_t>(numel()));
  for (int64_t i = 0; i < numel(); ++i) v[size_t(i)] = item_i64(i);
  return v;
}

namespace {
// Write element i of `out` from a double (float types) or an int64 (integers),
// so that large int64 values survive casts between integer types.
void store(Tensor& out, int64_t i, double f, int64_t n, bool from_int) {
  switch (out.dtype()) {
    case DType::f32: out.data<float>()[i] = from_int ? float(n) : float(f); break;
    case DType::f64: out.data<double>()[i] = from_int ? double(n) : f; break;
    case DType::f16: out.data<uint16_t>()[i] = f32_to_f16(from_int ? float(n) : float(f)); break;
    case DType::bf16: out.data<uint16_t>()[i] = f32_to_bf16(from_int ? float(n) : float(f)); break;
    case DType::i64: out.data<int64_t>()[i] = from_int ? n : int64_t(f); break;
    case DType::i32: out.data<int32_t>()[i] = int32_t(from_int ? n : int64_t(f)); break;
    case DType::i8: out.data<int8_t>()[i] = int8_t(from_int ? n : int64_t(f)); break;
    case DType::u8: out.data<uint8_t>()[i] = uint8_t(from_int ? n : int64_t(f)); break;
    case DType::boolean: out.data<uint8_t>()[i] = from_int ? n != 0 : f != 0; break;
  }
}
}  // namespace

Tensor Tensor::cast(DType to) const {
  if (to == dtype_) return clone();
  Tensor out = empty(to, shape_);
  bool from_int = !is_float(dtype_);
  for (int64_t i = 0; i < numel(); ++i) {
    if (from_int) store(out, i, 0, item_i64(i), true);
    else store(out, i, item_f64(i), 0, false);
  }
  return out;
}

}  // namespace tessera
