// Element types. Names follow NumPy/PyTorch (f32 is "float32"), codes follow
// nothing external: the ONNX importer and the .npy reader translate.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace tessera {

enum class DType : uint8_t { f32, f16, bf16, f64, i64, i32, i8, u8, boolean };

size_t dtype_size(DType t);
const char* dtype_name(DType t);      // "float32", "bfloat16", "bool", ...
DType dtype_from_name(const std::string& name);  // throws on unknown names
bool is_float(DType t);

// Half-precision conversions (round to nearest even), used by the CPU backend,
// which computes f16/bf16 in f32.
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
inline float bf16_to_f32(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace tessera
