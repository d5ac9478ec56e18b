// The safetensors format (Hugging Face): an 8-byte little-endian header
// length, a JSON header {name: {dtype, shape, data_offsets}, "__metadata__":
// {str: str}}, then the raw little-endian tensor bytes. A file is mmap'd once
// and every header entry is checked before any tensor is handed out, so a
// truncated or corrupt file fails at open naming the file and the tensor.
// `tensor()` is a zero-copy view that keeps the mapping alive; `slice()`
// copies one slab (a tensor-parallel rank's shard) touching only its bytes.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace tessera::hf {

struct TensorInfo {
  DType dtype = DType::f32;
  Shape shape;
  size_t offset = 0;  // absolute byte offset of the data in the file
  size_t nbytes = 0;
};

// "F32" → f32, ..., "BOOL" → boolean; throws Unsupported naming `what` otherwise.
DType dtype_from_safetensors(const std::string& code, const std::string& what);
const char* safetensors_dtype_code(DType dtype);  // f32 → "F32"

class SafetensorsFile {
 public:
  // Maps `path` read-only (copy-on-write pages) and validates the header.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // Tensor names in file (data offset) order.
  const std::vector<std::string>& names() const { return names_; }
  bool has(const std::string& name) const { return index_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // Zero-copy view (a copy only when the bytes are not aligned for the dtype).
  Tensor tensor(const std::string& name) const;
  // [start, start + length) along `dim`, copied; the other dims whole.
  Tensor slice(const std::string& name, int64_t dim, int64_t start, int64_t length) const;

 private:
  std::string path_;
  std::shared_ptr<void> mapping_;  // the mmap'd bytes; owner of every view
  const uint8_t* base_ = nullptr;
  size_t size_ = 0;
  std::map<std::string, TensorInfo> index_;
  std::vector<std::string> names_;
  std::map<std::string, std::string> metadata_;
};

// Writes `tensors` (host tensors, names unique) to `path` through a temporary
// file renamed into place. Data is laid out largest element size first, so
// every tensor is aligned for its dtype; the header is space-padded to 8 bytes.
void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Streaming form for checkpoints larger than memory: `produce(i)` returns the
// tensor for specs[i] (its dtype and shape) when its bytes are due, so only
// one tensor is alive at a time.
struct TensorSpec {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
};
void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const std::function<Tensor(size_t)>& produce,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace tessera::hf
