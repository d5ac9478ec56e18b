// The Llama family (Llama 2/3, incl. llama3 rope scaling, GQA, tied
// embeddings) as a decode-step graph (build_common.h), following
// transformers' LlamaForCausalLM op for op: RMSNorm → q/k/v → rotate-half
// RoPE → cached attention → o_proj; RMSNorm → down(silu(gate) * up).
#include <cmath>

#include "frontend/hf/build_common.h"

namespace tessera::hf {
namespace {

// inv_freq as transformers computes it (float32), with the llama3 rescaling
// of low- and medium-frequency bands when the config asks for it.
std::vector<float> rope_inv_freq(const ModelConfig& cfg) {
  int64_t half = cfg.head_dim / 2;
  std::vector<float> inv(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv[size_t(i)] = 1.0f / std::pow(float(cfg.rope_theta), float(2 * i) / float(cfg.head_dim));
  if (!cfg.rope_scaling || cfg.rope_scaling->type != "llama3") return inv;
  const RopeScaling& s = *cfg.rope_scaling;
  double old_len = double(s.original_max_positions);
  double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
  for (float& f : inv) {
    double wavelen = 2 * M_PI / f;
    if (wavelen > low_wavelen) {
      f = float(f / s.factor);
    } else if (wavelen >= high_wavelen) {
      double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
      f = float((1 - smooth) * f / s.factor + smooth * f);
    }
  }
  return inv;
}

// cos/sin tables [S, D] (the two halves repeated, as rotate-half reads them).
std::pair<Tensor, Tensor> rope_tables(const ModelConfig& cfg, int64_t positions, DType dtype) {
  std::vector<float> inv = rope_inv_freq(cfg);
  int64_t D = cfg.head_dim, half = D / 2;
  Tensor c = Tensor::empty(DType::f32, {positions, D}), s = Tensor::empty(DType::f32, {positions, D});
  for (int64_t p = 0; p < positions; ++p)
    for (int64_t i = 0; i < half; ++i) {
      float angle = float(p) * inv[size_t(i)];
      for (int64_t k : {i, i + half}) {
        c.data<float>()[p * D + k] = std::cos(angle);
        s.data<float>()[p * D + k] = std::sin(angle);
      }
    }
  return {c.cast(dtype), s.cast(dtype)};
}

struct Rope {
  Value* cos;  // [B, 1, T, D]
  Value* sin;
};

Value* apply_rope(GraphBuilder& b, const std::string& name, Value* x, const Rope& r, int64_t head_dim) {
  int64_t half = head_dim / 2;
  Value* x1 = b.slice(name + ".x1", x, 3, 0, half);
  Value* x2 = b.slice(name + ".x2", x, 3, half, head_dim);
  Attributes cat;
  cat.set("axis", int64_t(3));
  Value* rot = b.op("Concat", name + ".rotate_half", {b.op("Neg", name + ".neg", {x2}), x1}, cat);
  return b.op("Add", name, {b.op("Mul", name + ".cos", {x, r.cos}), b.op("Mul", name + ".sin", {rot, r.sin})});
}

Value* rms_norm(GraphBuilder& b, const std::string& name, Value* x, Value* w, double eps) {
  Attributes a;
  a.set("epsilon", float(eps));
  a.set("axis", int64_t(-1));
  return b.op("RMSNormalization", name, {x, w}, a);
}

struct Layer {
  GraphBuilder& b;
  const ModelConfig& cfg;
  const Checkpoint& ckpt;
  const BuildOptions& opts;
  Shard shard;
  HeadSplit heads;
  int64_t cache_len;

  Value* weight(const std::string& name, int64_t dim = -1, int64_t start = 0, int64_t len = 0) {
    Tensor t = len ? load_rows(ckpt, name, opts.dtype, dim, start, len) : load_weight(ckpt, name, opts.dtype);
    return b.constant(name, std::move(t));
  }
  Value* sharded(const std::string& name, int64_t dim) {
    return b.constant(name, load_weight(ckpt, name, opts.dtype, dim, shard));
  }

  Value* attention(int i, Value* h, const StepInputs& in, const Rope& rope) {
    std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
    int64_t D = cfg.head_dim;
    auto proj = [&](const char* w, int64_t start, int64_t n) {
      std::string name = p + w;
      Value* bias = cfg.attention_bias ? weight(name + ".bias", 0, start * D, n * D) : nullptr;
      return b.linear(name, h, weight(name + ".weight", 0, start * D, n * D), bias);
    };
    Value* q = b.split_heads(p + "q", proj("q_proj", heads.q_start, heads.q_heads), heads.q_heads, D);
    Value* k = b.split_heads(p + "k", proj("k_proj", heads.kv_start, heads.kv_heads), heads.kv_heads, D);
    Value* v = b.split_heads(p + "v", proj("v_proj", heads.kv_start, heads.kv_heads), heads.kv_heads, D);
    q = apply_rope(b, p + "q_rope", q, rope, D);
    k = apply_rope(b, p + "k_rope", k, rope, D);
    LayerCache c = add_cache_write(b, i, in, k, v, heads.kv_heads, D, cache_len, opts.dtype);
    Attributes a;
    a.set("scale", float(1.0 / std::sqrt(double(D))));
    Value* o = b.merge_heads(p + "heads", b.op("Attention", p + "attention", {q, c.k, c.v, in.mask}, a));
    Value* out = b.linear(p + "o_proj", o, weight(p + "o_proj.weight", 1, heads.q_start * D, heads.q_heads * D));
    out = tp_all_reduce(b, p + "o_proj", out, shard);
    if (cfg.attention_bias) out = b.op("Add", p + "o_proj.bias", {out, weight(p + "o_proj.bias")});
    return out;
  }

  Value* mlp(int i, Value* h) {
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    Value* gate = b.linear(p + "gate_proj", h, sharded(p + "gate_proj.weight", 0));
    Value* up = b.linear(p + "up_proj", h, sharded(p + "up_proj.weight", 0));
    Value* act = b.op("Mul", p + "act", {gate, b.op("Sigmoid", p + "act.sigmoid", {gate})});
    Value* down = b.linear(p + "down_proj", b.op("Mul", p + "gated", {act, up}), sharded(p + "down_proj.weight", 1));
    return tp_all_reduce(b, p + "down_proj", down, shard);
  }

  Value* forward(int i, Value* x, const StepInputs& in, const Rope& rope) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    Value* h = rms_norm(b, p + "input_layernorm", x, weight(p + "input_layernorm.weight"), cfg.norm_eps);
    x = b.op("Add", p + "attn_residual", {x, attention(i, h, in, rope)});
    h = rms_norm(b, p + "post_attention_layernorm", x, weight(p + "post_attention_layernorm.weight"), cfg.norm_eps);
    return b.op("Add", p + "mlp_residual", {x, mlp(i, h)});
  }
};

}  // namespace

Graph build_llama(const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts, int64_t cache_len) {
  Graph g;
  g.name = "llama";
  GraphBuilder b(g);
  Shard shard{opts.tp_rank, opts.tp_degree, opts.tp_group};
  StepInputs in = add_step_inputs(b, cache_len);
  // Embeddings are replicated on every rank (a gather, no collective).
  Tensor embed = load_weight(ckpt, "model.embed_tokens.weight", opts.dtype);
  Value* table = b.constant("model.embed_tokens.weight", embed);
  Value* x = b.op("Gather", "model.embed_tokens", {table, in.ids});
  auto [cos, sin] = rope_tables(cfg, cache_len, opts.dtype);
  Value* cos_p = b.op("Gather", "rope.cos.gather", {b.constant("rope.cos", cos), in.positions});
  Value* sin_p = b.op("Gather", "rope.sin.gather", {b.constant("rope.sin", sin), in.positions});
  Rope rope{b.op("Unsqueeze", "rope.cos", {cos_p, b.i64s({1})}), b.op("Unsqueeze", "rope.sin", {sin_p, b.i64s({1})})};
  Layer layer{b, cfg, ckpt, opts, shard, split_heads_for_rank(cfg, shard), cache_len};
  for (int i = 0; i < int(cfg.layers); ++i) x = layer.forward(i, x, in, rope);
  Value* h = rms_norm(b, "model.norm", x, layer.weight("model.norm.weight"), cfg.norm_eps);
  add_lm_head(b, h, cfg, ckpt, opts, shard, "model.embed_tokens.weight", table);
  return g;
}

}  // namespace tessera::hf
