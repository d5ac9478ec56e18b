#include "frontend/onnx/tensor_proto.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace tessera::onnx {

using ::onnx::TensorProto;

DType dtype_from_onnx(int32_t t, const std::string& what) {
  switch (t) {
    case TensorProto::FLOAT: return DType::f32;
    case TensorProto::FLOAT16: return DType::f16;
    case TensorProto::BFLOAT16: return DType::bf16;
    case TensorProto::DOUBLE: return DType::f64;
    case TensorProto::INT64: return DType::i64;
    case TensorProto::INT32: return DType::i32;
    case TensorProto::INT8: return DType::i8;
    case TensorProto::UINT8: return DType::u8;
    case TensorProto::BOOL: return DType::boolean;
    default: break;
  }
  std::string name = TensorProto::DataType_IsValid(t) ? TensorProto::DataType_Name(TensorProto::DataType(t)) : std::to_string(t);
  fail(ErrorKind::Unsupported, what, ": element type ", name, " is not supported (float32/16, bfloat16, float64, int64/32/8, uint8, bool)");
}

int32_t dtype_to_onnx(DType t) {
  switch (t) {
    case DType::f32: return TensorProto::FLOAT;
    case DType::f16: return TensorProto::FLOAT16;
    case DType::bf16: return TensorProto::BFLOAT16;
    case DType::f64: return TensorProto::DOUBLE;
    case DType::i64: return TensorProto::INT64;
    case DType::i32: return TensorProto::INT32;
    case DType::i8: return TensorProto::INT8;
    case DType::u8: return TensorProto::UINT8;
    case DType::boolean: return TensorProto::BOOL;
  }
  return TensorProto::UNDEFINED;
}

namespace {

std::string read_external(const TensorProto& p, const std::string& base_dir, size_t nbytes) {
  std::string location;
  int64_t offset = 0, length = -1;
  for (const auto& kv : p.external_data()) {
    if (kv.key() == "location") location = kv.value();
    else if (kv.key() == "offset") offset = std::stoll(kv.value());
    else if (kv.key() == "length") length = std::stoll(kv.value());
  }
  if (location.empty()) fail(ErrorKind::Parse, "initializer '", p.name(), "': external data without a location");
  std::filesystem::path file = std::filesystem::path(base_dir) / location;
  std::ifstream f(file, std::ios::binary);
  if (!f) fail(ErrorKind::Io, "initializer '", p.name(), "': external data file '", file.string(), "' cannot be opened (missing? it must sit next to the model)");
  if (length < 0) length = int64_t(nbytes);
  if (size_t(length) != nbytes)
    fail(ErrorKind::Parse, "initializer '", p.name(), "': external data length ", length, " does not match its shape (", nbytes, " bytes)");
  std::string bytes(nbytes, '\0');
  f.seekg(offset);
  f.read(bytes.data(), std::streamsize(nbytes));
  if (size_t(f.gcount()) != nbytes)
    fail(ErrorKind::Parse, "initializer '", p.name(), "': external data file '", file.string(), "' is truncated (need ", nbytes,
         " bytes at offset ", offset, ")");
  return bytes;
}

// Typed repeated fields: float_data, int32_data (also f16/bf16/bool/i8/u8 bit patterns), int64_data, double_data.
void copy_typed(const TensorProto& p, Tensor& t) {
  int64_t n = t.numel();
  auto need = [&](int64_t have) {
    if (have != n) fail(ErrorKind::Parse, "initializer '", p.name(), "': has ", have, " values, its shape needs ", n);
  };
  switch (t.dtype()) {
    case DType::f32: need(p.float_data_size()); std::copy(p.float_data().begin(), p.float_data().end(), t.data<float>()); break;
    case DType::f64: need(p.double_data_size()); std::copy(p.double_data().begin(), p.double_data().end(), t.data<double>()); break;
    case DType::i64: need(p.int64_data_size()); std::copy(p.int64_data().begin(), p.int64_data().end(), t.data<int64_t>()); break;
    case DType::i32: need(p.int32_data_size()); std::copy(p.int32_data().begin(), p.int32_data().end(), t.data<int32_t>()); break;
    case DType::f16: case DType::bf16:
      need(p.int32_data_size());
      for (int64_t i = 0; i < n; ++i) t.data<uint16_t>()[i] = uint16_t(p.int32_data(int(i)));
      break;
    case DType::i8: case DType::u8: case DType::boolean:
      need(p.int32_data_size());
      for (int64_t i = 0; i < n; ++i) t.data<uint8_t>()[i] = uint8_t(p.int32_data(int(i)));
      break;
  }
}

}  // namespace

Tensor tensor_from_proto(const TensorProto& p, const std::string& base_dir) {
  DType dtype = dtype_from_onnx(p.data_type(), "initializer '" + p.name() + "'");
  Shape shape(p.dims().begin(), p.dims().end());
  for (int64_t d : shape)
    if (d < 0) fail(ErrorKind::Parse, "initializer '", p.name(), "': negative dimension in ", to_string(shape));
  Tensor t = Tensor::empty(dtype, shape);
  if (p.data_location() == TensorProto::EXTERNAL) {
    std::string bytes = read_external(p, base_dir, t.nbytes());
    std::memcpy(t.raw(), bytes.data(), t.nbytes());
  } else if (p.has_raw_data()) {
    if (p.raw_data().size() != t.nbytes())
      fail(ErrorKind::Parse, "initializer '", p.name(), "': raw data is ", p.raw_data().size(), " bytes, its shape needs ", t.nbytes());
    std::memcpy(t.raw(), p.raw_data().data(), t.nbytes());
  } else {
    copy_typed(p, t);
  }
  return t;
}

}  // namespace tessera::onnx
