#include "ir/attribute.h"

#include "core/error.h"

namespace tessera {

template <typename T>
const T* Attributes::find(const std::string& name) const {
  auto it = map_.find(name);
  if (it == map_.end()) return nullptr;
  const T* v = std::get_if<T>(&it->second);
  if (!v) fail(ErrorKind::InvalidArgument, "attribute '", name, "' has the wrong kind (", attribute_to_string(it->second), ")");
  return v;
}

int64_t Attributes::get_int(const std::string& name, int64_t fallback) const {
  const int64_t* v = find<int64_t>(name);
  return v ? *v : fallback;
}

int64_t Attributes::get_int(const std::string& name) const {
  const int64_t* v = find<int64_t>(name);
  if (!v) fail(ErrorKind::InvalidArgument, "required attribute '", name, "' is missing");
  return *v;
}

float Attributes::get_float(const std::string& name, float fallback) const {
  auto it = map_.find(name);
  if (it != map_.end())
    if (const int64_t* i = std::get_if<int64_t>(&it->second)) return float(*i);
  const float* v = find<float>(name);
  return v ? *v : fallback;
}

std::string Attributes::get_string(const std::string& name, const std::string& fallback) const {
  const std::string* v = find<std::string>(name);
  return v ? *v : fallback;
}

std::vector<int64_t> Attributes::get_ints(const std::string& name, const std::vector<int64_t>& fallback) const {
  const std::vector<int64_t>* v = find<std::vector<int64_t>>(name);
  return v ? *v : fallback;
}

std::vector<float> Attributes::get_floats(const std::string& name) const {
  const std::vector<float>* v = find<std::vector<float>>(name);
  return v ? *v : std::vector<float>{};
}

const Tensor& Attributes::get_tensor(const std::string& name) const {
  const Tensor* v = find<Tensor>(name);
  if (!v) fail(ErrorKind::InvalidArgument, "required tensor attribute '", name, "' is missing");
  return *v;
}

std::string attribute_to_string(const Attribute& a) {
  struct V {
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(float v) const { return str(v); }
    std::string operator()(const std::string& v) const { return "\"" + v + "\""; }
    std::string operator()(const std::vector<int64_t>& v) const { return to_string(v); }
    std::string operator()(const std::vector<float>& v) const {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + str(v[i]);
      return s + "]";
    }
    std::string operator()(const std::vector<std::string>& v) const {
      std::string s = "[";
      for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\"" : "\"") + v[i] + "\"";
      return s + "]";
    }
    std::string operator()(const Tensor& t) const { return str("tensor<", dtype_name(t.dtype()), to_string(t.shape()), ">"); }
  };
  return std::visit(V{}, a);
}

}  // namespace tessera
