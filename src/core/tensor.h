// Tensor: a small value type (dtype, shape, shared storage). Copies share the
// storage; `clone()` copies the bytes. Storage may be owned (heap) or borrowed
// from something that outlives it (an mmap'd engine file) through `owner`.
#pragma once
#include <memory>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"

namespace tessera {

// Where a tensor's bytes live. Host code may only dereference cpu tensors.
enum class Device : uint8_t { cpu, cuda };

class Tensor {
 public:
  Tensor() = default;
  // Uninitialised contiguous host tensor.
  static Tensor empty(DType dtype, const Shape& shape);
  static Tensor zeros(DType dtype, const Shape& shape);
  // Borrow `data`, kept alive by `owner`.
  static Tensor view(DType dtype, const Shape& shape, void* data, std::shared_ptr<void> owner, Device device = Device::cpu);
  template <typename T>
  static Tensor from(DType dtype, const Shape& shape, const std::vector<T>& values);
  static Tensor scalar_i64(int64_t v);
  static Tensor vector_i64(const std::vector<int64_t>& v);

  bool defined() const { return data_ != nullptr || (storage_ && numel() == 0); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  const Shape& shape() const { return shape_; }
  int64_t rank() const { return int64_t(shape_.size()); }
  int64_t dim(int64_t i) const { return shape_.at(size_t(i < 0 ? i + rank() : i)); }
  int64_t numel() const { return tessera::numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* raw() const { return data_; }
  template <typename T>
  T* data() const { return static_cast<T*>(data_); }

  // Same bytes, new shape (numel must match).
  Tensor reshaped(const Shape& shape) const;
  Tensor clone() const;
  // Element i converted to double / int64, for small index/shape tensors.
  double item_f64(int64_t i = 0) const;
  int64_t item_i64(int64_t i = 0) const;
  std::vector<int64_t> to_i64_vector() const;
  Tensor cast(DType to) const;

 private:
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
  Shape shape_;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

template <typename T>
Tensor Tensor::from(DType dtype, const Shape& shape, const std::vector<T>& values) {
  Tensor t = empty(dtype, shape);
  if (sizeof(T) != dtype_size(dtype) || values.size() != size_t(t.numel()))
    throw std::invalid_argument("Tensor::from: element size or count mismatch");
  if (t.nbytes()) std::memcpy(t.raw(), values.data(), t.nbytes());
  return t;
}

}  // namespace tessera
