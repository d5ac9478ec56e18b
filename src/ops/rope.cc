// Rope: rotary position embedding applied to X[..., D] with cos/sin tables
// that broadcast to X (the tables as transformers builds them: [.., T, D],
// each frequency's cos (sin) written at both elements it rotates):
//   Y = X * cos + rotate(X) * sin
// rotate: interleaved = 0 (default, rotate-half, Llama): [-x[D/2:], x[:D/2]];
//         interleaved = 1 (the complex form): pairs (x0, x1) → (-x1, x0).
// Made by the Hugging Face builders (one kernel where the unfused graph has
// Slice, Slice, Neg, Concat, Mul, Mul, Add); computed in f32 (f64 for f64),
// rounded once. X, cos and sin share a float dtype; D is even.
//
// block = [begin, heads, D] (optional): X is [..., W] and Y rotates its
// columns [begin, begin + heads·D) viewed as [..., heads, D], so a fused
// projection's Q or K block needs no Split copy first (rope_blocks in
// passes/fuse_rope.cc). The shape rule is ops/rope_rules.h.
// Y is [..., heads, D]; the tables broadcast to Y.
//
// full = 1 (with block): Y is all of X [..., W], the block's columns rotated
// and the others copied; the tables broadcast to the block [..., heads, D].
// One pass over a fused projection then rotates Q and K together and passes
// V through, and Attention reads Y packed (pack_attention_qkv in
// passes/fuse_attention.cc) instead of two Ropes and a Slice.
#include <variant>

#include "ir/op_registry.h"
#include "ops/rope_rules.h"

namespace tessera {
namespace {

std::vector<TensorType> rope(const InferContext& c) {
  const TensorType &x = c.input(0), &cs = c.input(1), &sn = c.input(2);
  if (!is_float(x.dtype)) c.error("input X is ", dtype_name(x.dtype), ", expected a float type");
  if (cs.dtype != x.dtype || sn.dtype != x.dtype)
    c.error("cos (", dtype_name(cs.dtype), ") and sin (", dtype_name(sn.dtype), ") must have X's dtype ", dtype_name(x.dtype));
  int64_t il = c.attrs().get_int("interleaved", 0);
  if (il != 0 && il != 1) c.error("interleaved must be 0 or 1, got ", il);
  if (!x.rank_known) return {x};
  if (x.shape.empty()) c.error("X must have a last (head) dim");
  int64_t full = c.attrs().get_int("full", 0);
  if (full != 0 && full != 1) c.error("full must be 0 or 1, got ", full);
  if (full && !c.attrs().has("block")) c.error("full = 1 needs a block attribute (the columns to rotate)");
  TensorType y = x;
  if (c.attrs().has("block")) {
    if (!std::holds_alternative<std::vector<int64_t>>(c.attrs().all().at("block")))
      c.error("block must be [begin, heads, head dim], got ", attribute_to_string(c.attrs().all().at("block")));
    std::string bad = rules::rope_block_shape(x.shape, c.attrs().get_ints("block"), y.shape);
    if (!bad.empty()) c.error(bad);
  }
  int64_t d = y.shape.back();
  if (d >= 0 && d % 2) c.error("head dim ", d, " is odd: rotary pairs need an even one");
  for (const TensorType* t : {&cs, &sn}) {
    if (!t->rank_known) continue;
    Shape b = broadcast_shapes(y.shape, t->shape, c.node().name);
    if (t->shape.size() > y.shape.size() || b != y.shape)
      c.error("table ", to_string(t->shape), " does not broadcast to ",
              full ? "the block " : c.attrs().has("block") ? "Y " : "X ", to_string(y.shape));
  }
  if (full) return {x};
  return {y};
}

TESSERA_REGISTER_OP({"Rope", 3, 3, 1, 1, rope});

}  // namespace
}  // namespace tessera
