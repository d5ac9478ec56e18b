#include "frontend/hf/build_common.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "ir/op_registry.h"

namespace tessera::hf {

Value* GraphBuilder::input(const std::string& name, DType dtype, const Shape& shape, const std::vector<std::string>& dim_names) {
  Value* v = g_.add_value(name, dtype, shape);
  v->dim_names = dim_names;
  g_.inputs.push_back(v);
  return v;
}

std::string GraphBuilder::fresh(const std::string& name) { return g_.find_value(name) ? g_.unique_name(name) : name; }

Value* GraphBuilder::constant(const std::string& name, Tensor t) { return g_.add_constant(fresh(name), std::move(t)); }

Value* GraphBuilder::i64s(const std::vector<int64_t>& values) {
  return constant("const", Tensor::from<int64_t>(DType::i64, {int64_t(values.size())}, values));
}

Value* GraphBuilder::op(const std::string& op, const std::string& name, std::vector<Value*> inputs, Attributes attrs) {
  Value* out = g_.add_value(fresh(name), DType::f32, {});
  Node* n = g_.add_node(op, out->name, std::move(inputs), {out}, std::move(attrs));
  TensorType t = infer_node(*n).at(0);
  out->dtype = t.dtype;
  out->shape = t.shape;
  out->rank_known = t.rank_known;
  out->dim_names.assign(t.shape.size(), "");
  return out;
}

Value* GraphBuilder::linear(const std::string& name, Value* x, Value* weight, Value* bias, Value* residual) {
  Attributes a;
  a.set("trans_b", int64_t(1));
  std::vector<Value*> ins = {x, weight, bias};
  if (residual) ins.push_back(residual);
  else if (!bias) ins.pop_back();
  return op("FusedMatMul", name, ins, a);
}

Value* GraphBuilder::split_heads(const std::string& name, Value* x, int64_t heads, int64_t head_dim) {
  Value* r = op("Reshape", name + ".reshape", {x, i64s({0, 0, heads, head_dim})});
  Attributes a;
  a.set("perm", std::vector<int64_t>{0, 2, 1, 3});
  return op("Transpose", name + ".transpose", {r}, a);
}

Value* GraphBuilder::merge_heads(const std::string& name, Value* x) {
  Attributes a;
  a.set("perm", std::vector<int64_t>{0, 2, 1, 3});
  Value* t = op("Transpose", name + ".transpose", {x}, a);
  return op("Reshape", name + ".reshape", {t, i64s({0, 0, -1})});
}

Value* GraphBuilder::slice(const std::string& name, Value* x, int64_t axis, int64_t start, int64_t end) {
  return op("Slice", name, {x, i64s({start}), i64s({end}), i64s({axis})});
}

std::vector<Value*> GraphBuilder::split(const std::string& name, Value* x, int64_t axis, const std::vector<int64_t>& sizes) {
  std::vector<Value*> outs;
  for (size_t i = 0; i < sizes.size(); ++i) outs.push_back(g_.add_value(fresh(name + "." + std::to_string(i)), DType::f32, {}));
  Attributes a;
  a.set("axis", axis);
  Node* n = g_.add_node("Split", fresh(name), {x, i64s(sizes)}, outs, std::move(a));
  std::vector<TensorType> types = infer_node(*n);
  for (size_t i = 0; i < outs.size(); ++i) {
    outs[i]->dtype = types[i].dtype;
    outs[i]->shape = types[i].shape;
    outs[i]->rank_known = types[i].rank_known;
    outs[i]->dim_names.assign(types[i].shape.size(), "");
  }
  return outs;
}

namespace {
Tensor in_dtype(Tensor t, DType dtype) { return t.dtype() == dtype ? t : t.cast(dtype); }
}  // namespace

Tensor concat(const std::vector<Tensor>& parts, int64_t dim) {
  if (parts.empty()) fail(ErrorKind::Internal, "concat of no tensors");
  Shape shape = parts[0].shape();
  if (dim < 0 || dim >= int64_t(shape.size())) fail(ErrorKind::Internal, "concat along dim ", dim, " of ", to_string(shape));
  int64_t outer = 1, total = 0;
  for (int64_t d = 0; d < dim; ++d) outer *= shape[size_t(d)];
  for (const Tensor& t : parts) {
    Shape want = shape;
    want[size_t(dim)] = t.shape().size() == shape.size() ? t.shape()[size_t(dim)] : -1;
    if (t.dtype() != parts[0].dtype() || t.shape() != want)
      fail(ErrorKind::Internal, "concat: ", to_string(t.shape()), " does not join ", to_string(shape), " along dim ", dim);
    total += t.shape()[size_t(dim)];
  }
  shape[size_t(dim)] = total;
  Tensor out = Tensor::empty(parts[0].dtype(), shape);
  char* dst = static_cast<char*>(out.raw());
  for (int64_t o = 0; o < outer; ++o)
    for (const Tensor& t : parts) {
      size_t row = t.nbytes() / size_t(outer);
      std::memcpy(dst, static_cast<const char*>(t.raw()) + size_t(o) * row, row);
      dst += row;
    }
  return out;
}

Tensor load_rows(const Checkpoint& ckpt, const std::string& name, DType dtype, int64_t dim, int64_t start, int64_t len) {
  const Shape& full = ckpt.info(name).shape;
  bool whole = start == 0 && dim >= 0 && size_t(dim) < full.size() && len == full[size_t(dim)];
  return in_dtype(whole ? ckpt.tensor(name) : ckpt.slice(name, dim, start, len), dtype);  // the whole tensor: no slab copy
}

Tensor load_weight(const Checkpoint& ckpt, const std::string& name, DType dtype, int64_t dim, Shard shard) {
  if (dim < 0 || !shard.active()) return in_dtype(ckpt.tensor(name), dtype);
  int64_t full = ckpt.info(name).shape.at(size_t(dim));
  if (full % shard.degree)
    fail(ErrorKind::InvalidArgument, "tensor '", name, "': dim ", dim, " of length ", full, " does not divide by the TP degree ",
         shard.degree);
  int64_t len = full / shard.degree;
  return load_rows(ckpt, name, dtype, dim, shard.rank * len, len);
}

HeadSplit split_heads_for_rank(const ModelConfig& cfg, Shard s) {
  if (cfg.heads % s.degree)
    fail(ErrorKind::InvalidArgument, "attention heads (", cfg.heads, ") do not divide by the TP degree ", s.degree);
  HeadSplit h;
  h.q_heads = cfg.heads / s.degree;
  h.q_start = s.rank * h.q_heads;
  if (cfg.kv_heads >= s.degree) {
    if (cfg.kv_heads % s.degree)
      fail(ErrorKind::InvalidArgument, "key/value heads (", cfg.kv_heads, ") do not divide by the TP degree ", s.degree);
    h.kv_heads = cfg.kv_heads / s.degree;
    h.kv_start = s.rank * h.kv_heads;
  } else {
    // Fewer KV heads than ranks: each rank keeps (a replica of) the one KV
    // head its query heads read.
    if (s.degree % cfg.kv_heads)
      fail(ErrorKind::InvalidArgument, "TP degree ", s.degree, " is not a multiple of the key/value heads (", cfg.kv_heads, ")");
    h.kv_heads = 1;
    h.kv_start = h.q_start / (cfg.heads / cfg.kv_heads);
  }
  return h;
}

StepInputs add_step_inputs(GraphBuilder& b, int64_t cache_len) {
  StepInputs in;
  in.ids = b.input("input_ids", DType::i64, {kUnknownDim, kUnknownDim}, {"batch", "seq"});
  in.positions = b.input("position_ids", DType::i64, {kUnknownDim, kUnknownDim}, {"batch", "seq"});
  Value* first = b.slice("write_index.slice", in.positions, 1, 0, 1);
  in.write_index = b.op("Squeeze", "write_index", {first, b.i64s({1})});
  // mask[b, 0, i, j] = 0 if j <= position_ids[b, i] else -inf
  std::vector<int64_t> keys(static_cast<size_t>(cache_len));
  for (int64_t j = 0; j < cache_len; ++j) keys[size_t(j)] = j;
  Value* key_pos = b.constant("mask.key_positions", Tensor::from<int64_t>(DType::i64, {1, 1, 1, cache_len}, keys));
  Value* q_pos = b.op("Unsqueeze", "mask.query_positions", {in.positions, b.i64s({1, 3})});
  Value* visible = b.op("LessOrEqual", "mask.visible", {key_pos, q_pos});
  Value* zero = b.constant("mask.zero", Tensor::from<float>(DType::f32, {}, {0.0f}));
  Value* ninf = b.constant("mask.ninf", Tensor::from<float>(DType::f32, {}, {-std::numeric_limits<float>::infinity()}));
  in.mask = b.op("Where", "mask", {visible, zero, ninf});
  return in;
}

LayerCache add_cache_write(GraphBuilder& b, int layer, const StepInputs& in, Value* k_new, Value* v_new, int64_t kv_heads,
                           int64_t head_dim, int64_t cache_len, DType dtype) {
  Shape shape = {kUnknownDim, kv_heads, cache_len, head_dim};
  std::vector<std::string> dims = {"batch", "", "", ""};
  Value* ck = b.input("cache_k." + std::to_string(layer), dtype, shape, dims);
  Value* cv = b.input("cache_v." + std::to_string(layer), dtype, shape, dims);
  Attributes a;
  a.set("axis", int64_t(2));
  a.set("inplace", int64_t(1));
  std::string p = "layers." + std::to_string(layer) + ".kv_cache";
  return {b.op("TensorScatter", p + ".k", {ck, k_new, in.write_index}, a),
          b.op("TensorScatter", p + ".v", {cv, v_new, in.write_index}, a)};
}

Value* tp_all_reduce(GraphBuilder& b, const std::string& name, Value* x, Shard shard) {
  if (!shard.active()) return x;
  Attributes a;
  a.set("reduce", std::string("sum"));
  a.set("group", shard.group);
  return b.op("AllReduce", name + ".all_reduce", {x}, a);
}

Value* add_lm_head(GraphBuilder& b, Value* h, const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts,
                   Shard shard, const std::string& embed_name, Value* embed) {
  bool all_logits = opts.all_logits;
  std::string head_name = cfg.tie_embeddings ? embed_name : "lm_head.weight";
  bool vocab_sharded = shard.active() && cfg.vocab_size % shard.degree == 0;
  Value* head = vocab_sharded      ? b.constant(head_name, load_weight(ckpt, head_name, opts.dtype, 0, shard))
                : cfg.tie_embeddings ? embed
                                     : b.constant(head_name, load_weight(ckpt, head_name, opts.dtype));
  if (!all_logits) {
    Value* last = b.slice("last_position", h, 1, -1, std::numeric_limits<int64_t>::max());
    h = b.op("Squeeze", "last_position.squeeze", {last, b.i64s({1})});
  }
  Value* logits = b.linear("lm_head", h, head);
  if (vocab_sharded) {
    Attributes a;
    a.set("axis", int64_t(all_logits ? 2 : 1));
    a.set("group_size", shard.degree);
    a.set("group", shard.group);
    logits = b.op("AllGather", "lm_head.all_gather", {logits}, a);
  }
  if (logits->dtype != DType::f32) logits = b.op("Cast", "logits.cast", {logits}, [] {
      Attributes a;
      a.set("to", int64_t(DType::f32));
      return a;
    }());
  Value* out = b.op("Identity", "logits", {logits});
  b.graph().outputs.push_back(out);
  if (all_logits) return out;
  // Greedy decoding on the device: each row's first maximum (torch.argmax)
  // and the maximum itself (NaN/inf propagate, so the host can still refuse
  // them), read instead of [B, V] logits when no logits processor applies.
  Attributes am;
  am.set("axis", int64_t(-1));
  am.set("keepdims", int64_t(0));
  b.graph().outputs.push_back(b.op("ArgMax", "next_ids", {out}, am));
  Attributes rm;
  rm.set("keepdims", int64_t(0));
  b.graph().outputs.push_back(b.op("ReduceMax", "next_max", {out, b.i64s({-1})}, rm));
  return out;
}

}  // namespace tessera::hf
