// Attention: the fused form of softmax(Q·Kᵀ·scale + mask)·V that
// passes/fuse_attention.cc makes from the exporters' decompositions. It is
// tessera's own op (not ONNX's opset-23 Attention, whose inputs differ).
//
//   inputs  Q [B, Hq, Tq, D], K [B, Hkv, Tk, D], V [B, Hkv, Tk, Dv],
//           optional additive float mask broadcastable to [B, Hq, Tq, Tk]
//           (-inf allowed; any float dtype; may be omitted when the tables are given),
//           optional rope tables cos, sin (inputs 4 and 5, both or neither)
//   attrs   scale (float, required), causal (0/1, default 0),
//           layout (4 ints for Q, K, V, output; default all 0):
//             0 = [B, H, T, D] as above, 1 = [B, T, H, D]
//   output  [B, Hq, Tq, Dv] (or [B, Tq, Hq, Dv] with layout[3] = 1), Q's dtype
//
//           packed ([Hq, Hkv], optional): Q, K and V are column blocks of [B, T, W]
//             inputs (W = (Hq + 2·Hkv)·D, Q first, then K, then V, each seq-major; layout
//             must start 1, 1, 1): pack_attention_qkv (passes/fuse_attention.cc) reads a
//             fused QKV projection's output so, without the Split into three copies
//           rope_interleaved (0/1, default 0; with the tables): Rope's interleaved
//
// With the tables, Q and K are first rotated as Rope (ops/rope.cc) rotates
// them, rounded to their dtype as the unfused Rope's output is: row (b, h, t)
// of Q and of K with the tables' row (b, t), the tables broadcasting to
// [B, T, 1, D] (rules::rope_table; Tq == Tk, D even). This is RoPE in the
// attention prologue: the decode kernels rotate Q and K as they load them,
// so Llama's Q and K are never written rotated (pack_attention_qkv).
//
// layout lets passes/fuse_attention.cc's attention_layout drop the exporters'
// Transpose(perm = [0, 2, 1, 3]) around the op: the kernels read and write
// through (batch, head, position) strides, D contiguous in both layouts. The
// mask is indexed [b, h, i, j] whatever the layout.
//
// causal=1 keeps key j for query i when j <= i: top-left aligned, torch's
// is_causal (and the Trilu(upper=0) mask both exporters build for it), also
// when Tq != Tk. A bottom-right mask (KV-cache decoding) stays an explicit
// mask input. GQA: Hq % Hkv == 0 and query head h reads kv head
// h / (Hq / Hkv). Head counts come from shapes only (dim 1 or 2 as layout
// says), so a graph whose heads were divided by tensor parallelism needs no
// attribute change.
#include <variant>

#include "ir/op_registry.h"
#include "ops/attention_rules.h"

namespace tessera {
namespace {


// a and b agree unless one is unknown at build time.
bool same_dim(int64_t a, int64_t b) { return a == kUnknownDim || b == kUnknownDim || a == b; }

// The layout attribute: 4 entries of 0 or 1 (absent: all 0).
std::vector<int64_t> layout_of(const InferContext& c) {
  if (!c.attrs().has("layout")) return {0, 0, 0, 0};
  if (!std::holds_alternative<std::vector<int64_t>>(c.attrs().all().at("layout")))
    c.error("layout must be 4 ints (Q, K, V, output), got ", attribute_to_string(c.attrs().all().at("layout")));
  std::vector<int64_t> l = c.attrs().get_ints("layout");
  if (l.size() != 4) c.error("layout must have 4 entries (Q, K, V, output), got ", l.size());
  static const char* names[4] = {"Q", "K", "V", "output"};
  for (size_t i = 0; i < 4; ++i)
    if (l[i] != 0 && l[i] != 1)
      c.error("layout[", i, "] (", names[i], ") must be 0 ([B, H, T, D]) or 1 ([B, T, H, D]), got ", l[i]);
  return l;
}

void check_mask(const InferContext& c, const Shape& scores) {
  if (!c.has_input(3) || !c.input(3).rank_known) return;
  const Shape& m = c.input(3).shape;
  if (m.size() > 4) c.error("mask ", to_string(m), " has rank above 4");
  for (size_t i = 0; i < m.size(); ++i) {
    int64_t md = m[m.size() - 1 - i], sd = scores[3 - i];
    if (md != 1 && !same_dim(md, sd)) c.error("mask ", to_string(m), " does not broadcast to scores ", to_string(scores));
  }
}

// The rope tables (inputs 4 and 5), checked against Q's batch, positions and head dim.
void check_rope(const InferContext& c, int64_t B, int64_t Tq, int64_t Tk, int64_t D) {
  if (!c.has_input(4) && !c.has_input(5)) return;
  if (Tq != kUnknownDim && Tk != kUnknownDim && Tq != Tk)
    c.error("rope tables rotate Q and K at the same positions: query length ", Tq, " must equal key length ", Tk);
  if (D != kUnknownDim && D % 2) c.error("head dim ", D, " is odd: rotary pairs need an even one");
  for (size_t i : {size_t(4), size_t(5)}) {
    if (!c.input(i).rank_known) continue;
    rules::TableStrides st;
    std::string bad = rules::rope_table(c.input(i).shape, B, Tq, D, st);
    if (!bad.empty()) c.error(i == 4 ? "cos: " : "sin: ", bad);
  }
}

// packed = [Hq, Hkv]: Q, K, V are column blocks of [B, T, (Hq + 2 Hkv)·D] inputs (attention_rules.h).
Shape packed_output(const InferContext& c, const Shape& q, const Shape& k, const Shape& v, const std::vector<int64_t>& layout) {
  if (!std::holds_alternative<std::vector<int64_t>>(c.attrs().all().at("packed")) ||
      !rules::valid_packed(c.attrs().get_ints("packed")))
    c.error("packed must be [query heads, key/value heads], both positive, the first a multiple of the second, got ",
            attribute_to_string(c.attrs().all().at("packed")));
  const std::vector<int64_t> p = c.attrs().get_ints("packed");
  if (layout[0] != 1 || layout[1] != 1 || layout[2] != 1) c.error("packed Q, K, V are seq-major: layout must start 1, 1, 1");
  if (q.size() != 3 || k.size() != 3 || v.size() != 3)
    c.error("packed Q, K, V must be rank 3 ([B, T, W]), got ", to_string(q), ", ", to_string(k), ", ", to_string(v));
  for (size_t i = 0; i < 3; ++i)
    if (!same_dim(k[i], q[i]) || !same_dim(v[i], q[i]))
      c.error("packed Q, K, V must share a shape, got ", to_string(q), ", ", to_string(k), ", ", to_string(v));
  const int64_t cols = p[0] + 2 * p[1], B = q[0], T = q[1];
  if (q[2] != kUnknownDim && q[2] % cols)
    c.error("packed width ", q[2], " is not a whole number of heads: Hq + 2 Hkv = ", cols);
  const int64_t D = q[2] == kUnknownDim ? kUnknownDim : q[2] / cols;
  check_mask(c, {B, p[0], T, T});
  check_rope(c, B, T, T, D);
  return layout[3] ? Shape{B, T, p[0], D} : Shape{B, p[0], T, D};
}

std::vector<TensorType> attention(const InferContext& c) {
  const TensorType &q = c.input(0), &k = c.input(1), &v = c.input(2);
  if (!c.attrs().has("scale")) c.error("attribute 'scale' is required");
  int64_t causal = c.attrs().get_int("causal", 0);
  if (causal != 0 && causal != 1) c.error("causal must be 0 or 1, got ", causal);
  const std::vector<int64_t> layout = layout_of(c);
  for (const TensorType* t : {&q, &k, &v})
    if (!is_float(t->dtype)) c.error("Q, K and V must be floating point, got ", dtype_name(t->dtype));
  if (k.dtype != q.dtype || v.dtype != q.dtype)
    c.error("Q, K and V must share a dtype, got ", dtype_name(q.dtype), ", ", dtype_name(k.dtype), ", ", dtype_name(v.dtype));
  if (c.has_input(3) && !is_float(c.input(3).dtype)) c.error("mask must be floating point (additive), got ", dtype_name(c.input(3).dtype));
  if (c.has_input(4) != c.has_input(5)) c.error("rope tables come in pairs: give both cos (input 4) and sin (input 5)");
  for (size_t i : {size_t(4), size_t(5)})
    if (c.has_input(i) && c.input(i).dtype != q.dtype)
      c.error(i == 4 ? "cos" : "sin", " is ", dtype_name(c.input(i).dtype), ", expected Q's dtype ", dtype_name(q.dtype));
  const int64_t il = c.attrs().get_int("rope_interleaved", 0);
  if (il != 0 && il != 1) c.error("rope_interleaved must be 0 or 1, got ", il);
  if (c.attrs().has("rope_interleaved") && !c.has_input(4)) c.error("rope_interleaved needs the rope tables (inputs 4 and 5)");
  if (!q.rank_known || !k.rank_known || !v.rank_known) return {{q.dtype, {}, false}};
  if (c.attrs().has("packed")) return {{q.dtype, packed_output(c, q.shape, k.shape, v.shape, layout), true}};
  if (q.shape.size() != 4 || k.shape.size() != 4 || v.shape.size() != 4)
    c.error("Q, K, V must be rank 4 ([B, H, T, D] or [B, T, H, D] as layout says), got ", to_string(q.shape), ", ",
            to_string(k.shape), ", ", to_string(v.shape));
  auto heads = [&](const Shape& s, size_t i) { return s[rules::heads_dim(layout[i])]; };
  auto len = [&](const Shape& s, size_t i) { return s[rules::length_dim(layout[i])]; };
  int64_t B = q.shape[0], Hq = heads(q.shape, 0), Tq = len(q.shape, 0), D = q.shape[3];
  int64_t Hkv = heads(k.shape, 1), Tk = len(k.shape, 1), Dv = v.shape[3];
  if (!same_dim(k.shape[0], B) || !same_dim(v.shape[0], B)) c.error("batch dims differ: Q ", to_string(q.shape), ", K ", to_string(k.shape), ", V ", to_string(v.shape));
  if (!same_dim(k.shape[3], D)) c.error("K head dim ", k.shape[3], " differs from Q's ", D);
  if (!same_dim(heads(v.shape, 2), Hkv) || !same_dim(len(v.shape, 2), Tk))
    c.error("V ", to_string(v.shape), " must match K ", to_string(k.shape), " in heads and length");
  if (Hq != kUnknownDim && Hkv != kUnknownDim && (Hkv == 0 || Hq % Hkv != 0))
    c.error("query heads ", Hq, " are not a multiple of key/value heads ", Hkv);
  check_mask(c, {B, Hq, Tq, Tk});
  check_rope(c, B, Tq, Tk, D);
  return {{q.dtype, layout[3] ? Shape{B, Tq, Hq, Dv} : Shape{B, Hq, Tq, Dv}, true}};
}

struct Registrar {
  Registrar() { OpRegistry::add({"Attention", 3, 6, 1, 1, attention}); }
} registrar;

}  // namespace
}  // namespace tessera
