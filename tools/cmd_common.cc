#include <random>

#include "tools/cli.h"

namespace tessera::cli {

Shape parse_shape(const std::string& text, const std::string& what) {
  Shape s;
  size_t pos = 0;
  if (text.empty() || text == "scalar") return s;
  while (pos <= text.size()) {
    size_t x = text.find('x', pos);
    std::string part = text.substr(pos, x == std::string::npos ? std::string::npos : x - pos);
    char* end = nullptr;
    long long v = std::strtoll(part.c_str(), &end, 10);
    if (part.empty() || *end || v < 0) fail(ErrorKind::InvalidArgument, what, ": '", text, "' is not a shape like 2x3x224");
    s.push_back(v);
    if (x == std::string::npos) break;
    pos = x + 1;
  }
  return s;
}

DType parse_float_dtype(const std::string& text, const std::string& flag) {
  for (DType t : {DType::f32, DType::f16, DType::bf16})
    if (text == dtype_name(t)) return t;
  if (text == "f32" || text == "fp32") return DType::f32;
  if (text == "f16" || text == "fp16") return DType::f16;
  if (text == "bf16") return DType::bf16;
  fail(ErrorKind::InvalidArgument, flag, " '", text, "': expected f32, f16 or bf16");
}

std::map<std::string, Shape> parse_shape_flags(const std::vector<std::string>& flags) {
  std::map<std::string, Shape> out;
  for (const std::string& f : flags) {
    size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0) fail(ErrorKind::InvalidArgument, "--shape '", f, "': expected name=2x3x4");
    out[f.substr(0, eq)] = parse_shape(f.substr(eq + 1), "--shape " + f.substr(0, eq));
  }
  return out;
}

std::map<std::string, Tensor> random_inputs(const Graph& g, const std::map<std::string, Shape>& shapes, uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal;
  std::map<std::string, Tensor> out;
  for (Value* in : g.inputs) {
    Shape s = in->shape;
    if (auto it = shapes.find(in->name); it != shapes.end()) s = it->second;
    if (!in->rank_known || !is_static(s))
      fail(ErrorKind::InvalidArgument, "input '", in->name, "' has shape ", type_string_of(*in), ": give it one with --shape ", in->name, "=...");
    Tensor f = Tensor::empty(DType::f32, s);
    for (int64_t i = 0; i < f.numel(); ++i)
      f.data<float>()[i] = is_float(in->dtype) ? normal(gen) : float(gen() % 100);
    out[in->name] = in->dtype == DType::boolean ? f.cast(DType::i64).cast(DType::boolean) : f.cast(in->dtype);
  }
  return out;
}

}  // namespace tessera::cli
