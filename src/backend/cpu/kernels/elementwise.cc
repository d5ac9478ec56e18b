// CPU reference kernels for the elementwise family (ops/elementwise.cc).
// Float math runs in the input's own type (f32/f64); f16/bf16 in f32.
#include <cmath>
#include <functional>
#include <map>

#include "backend/cpu/loops.h"

namespace tessera::cpu {
namespace {

// out[i] = f(a[i'], b[i'']) under broadcasting, with T the compute type and R the result type.
template <typename T, typename R, typename F>
void binary_loop(const Tensor& a, const Tensor& b, Tensor& out, F f) {
  std::vector<int64_t> st[2] = {broadcast_strides(a.shape(), out.shape()), broadcast_strides(b.shape(), out.shape())};
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  R* po = out.data<R>();
  for_each_broadcast(out.shape(), st, [&](int64_t i, const int64_t* off) { po[i] = R(f(pa[off[0]], pb[off[1]])); });
}

// The binary op, resolved from the node once per call (not per element).
enum class Bin { add, sub, mul, div, pow, max, min, mod, fmod };

Bin bin_of(const std::string& op, bool fmod) {
  static const std::map<std::string, Bin> ops = {{"Add", Bin::add}, {"Sum", Bin::add}, {"Mean", Bin::add}, {"Sub", Bin::sub},
                                                 {"Mul", Bin::mul}, {"Div", Bin::div}, {"Pow", Bin::pow}, {"Max", Bin::max},
                                                 {"Min", Bin::min}, {"Mod", Bin::mod}};
  Bin b = ops.at(op);
  return b == Bin::mod && fmod ? Bin::fmod : b;
}

template <typename T>
T binary_op(Bin op, T a, T b) {
  switch (op) {
    case Bin::add: return a + b;
    case Bin::sub: return a - b;
    case Bin::mul: return a * b;
    case Bin::div:
      if constexpr (std::is_integral_v<T>) return b == 0 ? T(0) : T(a / b);
      else return a / b;
    case Bin::pow: return T(std::pow(double(a), double(b)));
    case Bin::max: case Bin::min:
      if constexpr (std::is_floating_point_v<T>)  // NaN wins, as in ONNX Runtime and NumPy
        if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<T>::quiet_NaN();
      return op == Bin::max ? std::max(a, b) : std::min(a, b);
    case Bin::fmod: return T(std::fmod(double(a), double(b)));
    case Bin::mod:
      if constexpr (std::is_integral_v<T>) {  // fmod=0: sign of the divisor, like Python
        if (b == 0) return T(0);
        T r = T(a % b);
        return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
      } else {
        return T(std::fmod(a, b));
      }
  }
  return T(0);
}

// Pow with an integer exponent on a float base: fmod flag and float types handled above.
void k_binary(KernelContext& c) {
  const std::string& op = c.node().op;
  DType out_t = c.output_type(0).dtype;
  DType t = compute_dtype(c.input(0).dtype());
  Bin bin = bin_of(op, c.attrs().get_int("fmod", 0) != 0);
  Tensor acc = as_compute(c.input(0));
  for (size_t k = 1; k < c.num_inputs(); ++k) {
    Tensor b = as_compute(c.input(k)).cast(t);  // Pow may have an exponent of another type
    Shape shape = broadcast_shapes(acc.shape(), b.shape(), c.node().name);
    Tensor next = Tensor::empty(t, shape);
    visit_dtype(t, [&]<typename T>() {
      if constexpr (std::is_same_v<T, bool>) {
        c.error("arithmetic on bool tensors is not supported");
      } else {
        binary_loop<T, T>(acc, b, next, [&](T x, T y) { return binary_op<T>(bin, x, y); });
      }
    });
    acc = next;
  }
  if (op == "Mean") {
    Tensor n = Tensor::empty(t, {});
    visit_dtype(t, [&]<typename T>() { *n.data<T>() = T(c.num_inputs()); });
    Tensor next = Tensor::empty(t, acc.shape());
    visit_dtype(t, [&]<typename T>() { binary_loop<T, T>(acc, n, next, [](T x, T y) { return T(x / y); }); });
    acc = next;
  }
  if (c.num_inputs() == 1) acc = acc.clone();
  c.set_output(0, from_compute(acc, out_t));
}
TESSERA_CPU_KERNEL("Add", k_binary);
TESSERA_CPU_KERNEL("Sub", k_binary);
TESSERA_CPU_KERNEL("Mul", k_binary);
TESSERA_CPU_KERNEL("Div", k_binary);
TESSERA_CPU_KERNEL("Pow", k_binary);
TESSERA_CPU_KERNEL("Mod", k_binary);
TESSERA_CPU_KERNEL("Max", k_binary);
TESSERA_CPU_KERNEL("Min", k_binary);
TESSERA_CPU_KERNEL("Sum", k_binary);
TESSERA_CPU_KERNEL("Mean", k_binary);

void k_compare(KernelContext& c) {
  const std::string& op = c.node().op;
  Tensor a = as_compute(c.input(0)), b = as_compute(c.input(1));
  Tensor& out = c.output(0);
  static const std::vector<std::string> kOps = {"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor"};
  int k = int(std::find(kOps.begin(), kOps.end(), op) - kOps.begin());  // resolved once, not per element
  visit_dtype(a.dtype(), [&]<typename T>() {
    binary_loop<T, bool>(a, b, out, [k](T x, T y) {
      switch (k) {
        case 0: return x == y;
        case 1: return x < y;
        case 2: return x > y;
        case 3: return x <= y;
        case 4: return x >= y;
        case 5: return bool(x) && bool(y);
        case 6: return bool(x) || bool(y);
        default: return bool(x) != bool(y);  // Xor
      }
    });
  });
}
TESSERA_CPU_KERNEL("Equal", k_compare);
TESSERA_CPU_KERNEL("Less", k_compare);
TESSERA_CPU_KERNEL("Greater", k_compare);
TESSERA_CPU_KERNEL("LessOrEqual", k_compare);
TESSERA_CPU_KERNEL("GreaterOrEqual", k_compare);
TESSERA_CPU_KERNEL("And", k_compare);
TESSERA_CPU_KERNEL("Or", k_compare);
TESSERA_CPU_KERNEL("Xor", k_compare);

// Unary float functions; double precision inside so f32 results round once.
// Resolved once per kernel call (op name and attributes), not per element.
using UnaryFn = std::function<double(double)>;

UnaryFn unary_fn(const std::string& op, const Attributes& a) {
  static const std::map<std::string, double (*)(double)> plain = {
      {"Neg", [](double x) { return -x; }}, {"Abs", [](double x) { return std::fabs(x); }},
      {"Exp", [](double x) { return std::exp(x); }}, {"Log", [](double x) { return std::log(x); }},
      {"Sqrt", [](double x) { return std::sqrt(x); }}, {"Reciprocal", [](double x) { return 1.0 / x; }},
      {"Tanh", [](double x) { return std::tanh(x); }}, {"Erf", [](double x) { return std::erf(x); }},
      {"Sigmoid", [](double x) { return 1.0 / (1.0 + std::exp(-x)); }}, {"Relu", [](double x) { return x > 0 ? x : 0.0; }},
      {"Sin", [](double x) { return std::sin(x); }}, {"Cos", [](double x) { return std::cos(x); }},
      {"Floor", [](double x) { return std::floor(x); }}, {"Ceil", [](double x) { return std::ceil(x); }},
      {"Round", [](double x) { return std::nearbyint(x); }},  // half to even under the default rounding mode
      {"Sign", [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }},
      {"Softsign", [](double x) { return x / (1 + std::fabs(x)); }},
      {"HardSwish", [](double x) { return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0); }},
      {"Softplus", [](double x) { return x > 30 ? x : std::log1p(std::exp(x)); }},
      {"Mish", [](double x) { return x * std::tanh(x > 30 ? x : std::log1p(std::exp(x))); }},
  };
  if (auto it = plain.find(op); it != plain.end()) return it->second;
  if (op == "LeakyRelu") {
    double al = a.get_float("alpha", 0.01f);
    return [al](double x) { return x >= 0 ? x : x * al; };
  }
  if (op == "HardSigmoid") {
    double al = a.get_float("alpha", 0.2f), be = a.get_float("beta", 0.5f);
    return [al, be](double x) { return std::clamp(al * x + be, 0.0, 1.0); };
  }
  if (op == "Elu") {
    double al = a.get_float("alpha", 1.0f);
    return [al](double x) { return x >= 0 ? x : al * (std::exp(x) - 1); };
  }
  if (op == "Celu") {
    double al = a.get_float("alpha", 1.0f);
    return [al](double x) { return std::max(0.0, x) + std::min(0.0, al * (std::exp(x / al) - 1)); };
  }
  if (op == "Selu") {
    double al = a.get_float("alpha", 1.67326319217681884765625f), g = a.get_float("gamma", 1.05070102214813232421875f);
    return [al, g](double x) { return x > 0 ? g * x : g * (al * std::exp(x) - al); };
  }
  if (op == "Gelu") {
    if (a.get_string("approximate", "none") == "tanh")
      return [](double x) { return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x))); };
    return [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); };
  }
  throw std::logic_error(op);
}

void k_unary(KernelContext& c) {
  const std::string& op = c.node().op;
  Tensor x = as_compute(c.input(0));
  Tensor out = Tensor::empty(x.dtype(), x.shape());
  UnaryFn f = unary_fn(op, c.attrs());
  visit_dtype(x.dtype(), [&]<typename T>() {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t i = 0; i < x.numel(); ++i) {
      if constexpr (std::is_same_v<T, bool>) {
        c.error("op on bool tensors is not supported");
      } else if constexpr (std::is_integral_v<T>) {  // integer Neg/Abs/Relu/Sign keep exact values
        if (op == "Neg") po[i] = T(-px[i]);
        else if (op == "Abs") po[i] = px[i] < 0 ? T(-px[i]) : px[i];
        else if (op == "Relu") po[i] = px[i] > 0 ? px[i] : T(0);
        else if (op == "Sign") po[i] = T(px[i] > 0 ? 1 : (px[i] < 0 ? -1 : 0));
        else po[i] = T(f(double(px[i])));
      } else {
        po[i] = T(f(double(px[i])));
      }
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Neg", k_unary);
TESSERA_CPU_KERNEL("Abs", k_unary);
TESSERA_CPU_KERNEL("Exp", k_unary);
TESSERA_CPU_KERNEL("Log", k_unary);
TESSERA_CPU_KERNEL("Sqrt", k_unary);
TESSERA_CPU_KERNEL("Reciprocal", k_unary);
TESSERA_CPU_KERNEL("Tanh", k_unary);
TESSERA_CPU_KERNEL("Erf", k_unary);
TESSERA_CPU_KERNEL("Sigmoid", k_unary);
TESSERA_CPU_KERNEL("Relu", k_unary);
TESSERA_CPU_KERNEL("Sin", k_unary);
TESSERA_CPU_KERNEL("Cos", k_unary);
TESSERA_CPU_KERNEL("Floor", k_unary);
TESSERA_CPU_KERNEL("Ceil", k_unary);
TESSERA_CPU_KERNEL("Round", k_unary);
TESSERA_CPU_KERNEL("Sign", k_unary);
TESSERA_CPU_KERNEL("Softsign", k_unary);
TESSERA_CPU_KERNEL("LeakyRelu", k_unary);
TESSERA_CPU_KERNEL("HardSigmoid", k_unary);
TESSERA_CPU_KERNEL("HardSwish", k_unary);
TESSERA_CPU_KERNEL("Elu", k_unary);
TESSERA_CPU_KERNEL("Celu", k_unary);
TESSERA_CPU_KERNEL("Selu", k_unary);
TESSERA_CPU_KERNEL("Softplus", k_unary);
TESSERA_CPU_KERNEL("Mish", k_unary);
TESSERA_CPU_KERNEL("Gelu", k_unary);

void k_not(KernelContext& c) {
  const Tensor& x = c.input(0);
  Tensor& out = c.output(0);
  for (int64_t i = 0; i < x.numel(); ++i) out.data<bool>()[i] = !x.data<bool>()[i];
}
TESSERA_CPU_KERNEL("Not", k_not);

void k_isnan(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  Tensor& out = c.output(0);
  for (int64_t i = 0; i < x.numel(); ++i) out.data<bool>()[i] = std::isnan(x.item_f64(i));
}
TESSERA_CPU_KERNEL("IsNaN", k_isnan);

void k_identity(KernelContext& c) { c.set_output(0, c.input(0)); }
TESSERA_CPU_KERNEL("Identity", k_identity);

// Inference-time Dropout is the identity; the mask output is all true.
void k_dropout(KernelContext& c) {
  c.set_output(0, c.input(0));
  if (c.num_outputs() > 1) {
    Tensor& m = c.output(1);
    std::fill_n(m.data<bool>(), m.numel(), true);
  }
}
TESSERA_CPU_KERNEL("Dropout", k_dropout);

void k_clip(KernelContext& c) {
  Tensor x = as_compute(c.input(0));
  Tensor out = Tensor::empty(x.dtype(), x.shape());
  visit_dtype(x.dtype(), [&]<typename T>() {
    if constexpr (std::is_same_v<T, bool>) {
      c.error("Clip on bool is not supported");
    } else {
      T lo = std::numeric_limits<T>::lowest(), hi = std::numeric_limits<T>::max();
      if (c.has_input(1)) lo = T(as_compute(c.input(1)).item_f64());
      if (c.has_input(2)) hi = T(as_compute(c.input(2)).item_f64());
      if (c.attrs().has("min")) lo = T(c.attrs().get_float("min", 0));  // opset < 11
      if (c.attrs().has("max")) hi = T(c.attrs().get_float("max", 0));
      for (int64_t i = 0; i < x.numel(); ++i) out.data<T>()[i] = std::min(std::max(x.data<T>()[i], lo), hi);
    }
  });
  c.set_output(0, from_compute(out, c.output_type(0).dtype));
}
TESSERA_CPU_KERNEL("Clip", k_clip);

void k_where(KernelContext& c) {
  const Tensor& cond = c.input(0);
  Tensor& out = c.output(0);
  const Tensor &a = c.input(1), &b = c.input(2);
  std::vector<int64_t> st[3] = {broadcast_strides(cond.shape(), out.shape()), broadcast_strides(a.shape(), out.shape()),
                                broadcast_strides(b.shape(), out.shape())};
  size_t es = dtype_size(out.dtype());
  const char* pa = static_cast<const char*>(a.raw());
  const char* pb = static_cast<const char*>(b.raw());
  char* po = static_cast<char*>(out.raw());
  for_each_broadcast(out.shape(), st, [&](int64_t i, const int64_t* off) {
    const char* src = cond.data<bool>()[off[0]] ? pa + off[1] * es : pb + off[2] * es;
    std::memcpy(po + i * es, src, es);
  });
}
TESSERA_CPU_KERNEL("Where", k_where);

void k_cast(KernelContext& c) { c.set_output(0, c.input(0).cast(c.output_type(0).dtype)); }
TESSERA_CPU_KERNEL("Cast", k_cast);
TESSERA_CPU_KERNEL("CastLike", k_cast);

}  // namespace
}  // namespace tessera::cpu
