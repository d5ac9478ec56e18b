// The Llama family (Llama 2/3, incl. llama3 rope scaling, GQA, tied
// embeddings) as a decode-step graph (build_common.h), following
// transformers' LlamaForCausalLM op for op: RMSNorm → q/k/v → rotate-half
// RoPE → cached attention → o_proj; RMSNorm → down(silu(gate) * up).
#include <array>
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

// x * cos + rotate_half(x) * sin, as one Rope node (ops/rope.cc).
Value* apply_rope(GraphBuilder& b, const std::string& name, Value* x, const Rope& r) { return b.op("Rope", name, {x, r.cos, r.sin}); }

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

  // q_proj, k_proj and v_proj (this rank's heads) as one GEMM; its
  // [B, T, Hq + 2 Hkv, D] heads move to dim 1 (a view at T = 1) and split
  // into q, k, v (views at B = 1).
  std::array<Value*, 3> qkv_heads(const std::string& p, Value* h) {
    int64_t D = cfg.head_dim;
    const char* names[3] = {"q_proj", "k_proj", "v_proj"};
    int64_t starts[3] = {heads.q_start, heads.kv_start, heads.kv_start}, counts[3] = {heads.q_heads, heads.kv_heads, heads.kv_heads};
    std::vector<Tensor> w, bias;
    for (int j = 0; j < 3; ++j) {
      std::string name = p + names[j];
      w.push_back(load_rows(ckpt, name + ".weight", opts.dtype, 0, starts[j] * D, counts[j] * D));
      if (cfg.attention_bias) bias.push_back(load_rows(ckpt, name + ".bias", opts.dtype, 0, starts[j] * D, counts[j] * D));
    }
    Value* qkv_b = cfg.attention_bias ? b.constant(p + "qkv_proj.bias", concat(bias, 0)) : nullptr;
    Value* qkv = b.linear(p + "qkv_proj", h, b.constant(p + "qkv_proj.weight", concat(w, 0)), qkv_b);
    std::vector<Value*> parts = b.split(p + "qkv", b.split_heads(p + "qkv", qkv, counts[0] + 2 * counts[1], D), 1,
                                        {counts[0], counts[1], counts[2]});
    return {parts[0], parts[1], parts[2]};
  }

  // x + attn(h)
  Value* attention(int i, Value* x, Value* h, const StepInputs& in, const Rope& rope) {
    std::string p = "model.layers." + std::to_string(i) + ".self_attn.";
    int64_t D = cfg.head_dim;
    auto [q, k, v] = qkv_heads(p, h);
    q = apply_rope(b, p + "q_rope", q, rope);
    k = apply_rope(b, p + "k_rope", k, rope);
    LayerCache c = add_cache_write(b, i, in, k, v, heads.kv_heads, D, cache_len, opts.dtype);
    Attributes a;
    a.set("scale", float(1.0 / std::sqrt(double(D))));
    Value* o = b.merge_heads(p + "heads", b.op("Attention", p + "attention", {q, c.k, c.v, in.mask}, a));
    Value* w = weight(p + "o_proj.weight", 1, heads.q_start * D, heads.q_heads * D);
    Value* bias = cfg.attention_bias ? weight(p + "o_proj.bias") : nullptr;
    if (!shard.active()) return b.linear(p + "o_proj", o, w, bias, x);  // one GEMM: bias and residual in its epilogue
    Value* out = tp_all_reduce(b, p + "o_proj", b.linear(p + "o_proj", o, w), shard);
    if (bias) out = b.op("Add", p + "o_proj.bias", {out, bias});
    return b.op("Add", p + "attn_residual", {x, out});
  }

  // x + mlp(h)
  Value* mlp(int i, Value* x, Value* h) {
    std::string p = "model.layers." + std::to_string(i) + ".mlp.";
    // gate_proj and up_proj (this rank's rows) as one GEMM, split on the last
    // axis (views at B = T = 1, a decode step of one sequence).
    Tensor gw = load_weight(ckpt, p + "gate_proj.weight", opts.dtype, 0, shard);
    Tensor uw = load_weight(ckpt, p + "up_proj.weight", opts.dtype, 0, shard);
    int64_t local = gw.dim(0);
    Value* both = b.linear(p + "gate_up_proj", h, b.constant(p + "gate_up_proj.weight", concat({gw, uw}, 0)));
    std::vector<Value*> gu = b.split(p + "gate_up", both, -1, {local, uw.dim(0)});
    Value *gate = gu[0], *up = gu[1];
    Value* act = b.op("Mul", p + "act", {gate, b.op("Sigmoid", p + "act.sigmoid", {gate})});
    Value* gated = b.op("Mul", p + "gated", {act, up});
    if (!shard.active()) return b.linear(p + "down_proj", gated, sharded(p + "down_proj.weight", 1), nullptr, x);
    Value* down = tp_all_reduce(b, p + "down_proj", b.linear(p + "down_proj", gated, sharded(p + "down_proj.weight", 1)), shard);
    return b.op("Add", p + "mlp_residual", {x, down});
  }

  Value* forward(int i, Value* x, const StepInputs& in, const Rope& rope) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    Value* h = rms_norm(b, p + "input_layernorm", x, weight(p + "input_layernorm.weight"), cfg.norm_eps);
    x = attention(i, x, h, in, rope);
    h = rms_norm(b, p + "post_attention_layernorm", x, weight(p + "post_attention_layernorm.weight"), cfg.norm_eps);
    return mlp(i, x, h);
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
