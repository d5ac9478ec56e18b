// CPU reference kernels for the elementwise family (ops/elementwise.cc).
// Float math runs in the input's own type (f32/f64); f16/bf16 in f32.
#include <cmath>
#include <functional>

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

template <typename T>
T binary_op(const std::string& op, T a, T b) {
  if (op == "Add" || op == "Sum" || op == "Mean") return a + b;
  if (op == "Sub") return a - b;
  if (op == "Mul") return a * b;
  if (op == "Div") {
    if constexpr (std::is_integral_v<T>) return b == 0 ? T(0) : T(a / b);
    else return a / b;
  }
  if (op == "Pow") return T(std::pow(double(a), double(b)));
  if constexpr (std::is_floating_point_v<T>) {  // NaN wins, as in ONNX Runtime and NumPy
    if ((op == "Max" || op == "Min") && (std::isnan(a) || std::isnan(b))) return std::numeric_limits<T>::quiet_NaN();
  }
  if (op == "Max") return std::max(a, b);
  if (op == "Min") return std::min(a, b);
  if (op == "Mod") {
    if constexpr (std::is_integral_v<T>) {  // fmod=0: sign of the divisor, like Python
      if (b == 0) return T(0);
      T r = T(a % b);
      return (r != 0 && ((r < 0) != (b < 0))) ? T(r + b) : r;
    } else {
      return T(std::fmod(a, b));
    }
  }
  throw std::logic_error(op);
}

// Pow with an integer exponent on a float base: fmod flag and float types handled above.
void k_binary(KernelContext& c) {
  const std::string& op = c.node().op;
  DType out_t = c.output_type(0).dtype;
  DType t = compute_dtype(c.input(0).dtype());
  bool fmod = c.attrs().get_int("fmod", 0) != 0;
  Tensor acc = as_compute(c.input(0));
  for (size_t k = 1; k < c.num_inputs(); ++k) {
    Tensor b = as_compute(c.input(k)).cast(t);  // Pow may have an exponent of another type
    Shape shape = broadcast_shapes(acc.shape(), b.shape(), c.node().name);
    Tensor next = Tensor::empty(t, shape);
    visit_dtype(t, [&]<typename T>() {
      if constexpr (std::is_same_v<T, bool>) {
        c.error("arithmetic on bool tensors is not supported");
      } else {
        binary_loop<T, T>(acc, b, next, [&](T x, T y) {
          if (op == "Mod" && fmod) return T(std::fmod(double(x), double(y)));
          return binary_op<T>(op, x, y);
        });
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
  visit_dtype(a.dtype(), [&]<typename T>() {
    binary_loop<T, bool>(a, b, out, [&](T x, T y) {
      if (op == "Equal") return x == y;
      if (op == "Less") return x < y;
      if (op == "Greater") return x > y;
      if (op == "LessOrEqual") return x <= y;
      if (op == "GreaterOrEqual") return x >= y;
      if (op == "And") return bool(x) && bool(y);
      if (op == "Or") return bool(x) || bool(y);
      return bool(x) != bool(y);  // Xor
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
double unary_f(const std::string& op, double x, const Attributes& a) {
  if (op == "Neg") return -x;
  if (op == "Abs") return std::fabs(x);
  if (op == "Exp") return std::exp(x);
  if (op == "Log") return std::log(x);
  if (op == "Sqrt") return std::sqrt(x);
  if (op == "Reciprocal") return 1.0 / x;
  if (op == "Tanh") return std::tanh(x);
  if (op == "Erf") return std::erf(x);
  if (op == "Sigmoid") return 1.0 / (1.0 + std::exp(-x));
  if (op == "Relu") return x > 0 ? x : 0;
  if (op == "Sin") return std::sin(x);
  if (op == "Cos") return std::cos(x);
  if (op == "Floor") return std::floor(x);
  if (op == "Ceil") return std::ceil(x);
  if (op == "Round") return std::nearbyint(x);  // half to even under the default rounding mode
  if (op == "Sign") return x > 0 ? 1 : (x < 0 ? -1 : 0);
  if (op == "Softsign") return x / (1 + std::fabs(x));
  if (op == "LeakyRelu") return x >= 0 ? x : x * a.get_float("alpha", 0.01f);
  if (op == "HardSigmoid") return std::clamp(a.get_float("alpha", 0.2f) * x + a.get_float("beta", 0.5f), 0.0, 1.0);
  if (op == "HardSwish") return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0);
  if (op == "Elu") return x >= 0 ? x : a.get_float("alpha", 1.0f) * (std::exp(x) - 1);
  if (op == "Celu") {
    double al = a.get_float("alpha", 1.0f);
    return std::max(0.0, x) + std::min(0.0, al * (std::exp(x / al) - 1));
  }
  if (op == "Selu") {
    double al = a.get_float("alpha", 1.67326319217681884765625f), g = a.get_float("gamma", 1.05070102214813232421875f);
    return x > 0 ? g * x : g * (al * std::exp(x) - al);
  }
  if (op == "Softplus") return x > 30 ? x : std::log1p(std::exp(x));
  if (op == "Mish") return x * std::tanh(x > 30 ? x : std::log1p(std::exp(x)));
  if (op == "Gelu") {
    if (a.get_string("approximate", "none") == "tanh")
      return 0.5 * x * (1 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0)));
  }
  throw std::logic_error(op);
}

void k_unary(KernelContext& c) {
  const std::string& op = c.node().op;
  Tensor x = as_compute(c.input(0));
  Tensor out = Tensor::empty(x.dtype(), x.shape());
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
        else po[i] = T(unary_f(op, double(px[i]), c.attrs()));
      } else {
        po[i] = T(unary_f(op, double(px[i]), c.attrs()));
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
