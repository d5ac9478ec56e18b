// GPT-2 as a decode-step graph (build_common.h), following transformers'
// GPT2LMHeadModel: token + learned position embeddings; per block LayerNorm
// → c_attn (Conv1D, weight [in, out], q|k|v side by side) → cached attention
// → c_proj; LayerNorm → c_fc → GELU → c_proj; final LayerNorm; the LM head
// tied to wte.
#include <cmath>

#include "frontend/hf/build_common.h"

namespace tessera::hf {
namespace {

Value* layer_norm(GraphBuilder& b, const std::string& name, Value* x, Value* w, Value* bias, double eps) {
  Attributes a;
  a.set("epsilon", float(eps));
  a.set("axis", int64_t(-1));
  return b.op("LayerNormalization", name, {x, w, bias}, a);
}

struct Block {
  GraphBuilder& b;
  const ModelConfig& cfg;
  const Checkpoint& ckpt;
  const BuildOptions& opts;
  Shard shard;
  int64_t cache_len;

  Value* full(const std::string& name) { return b.constant(name, load_weight(ckpt, name, opts.dtype)); }
  Value* part(const std::string& name, int64_t dim, int64_t start, int64_t len) {
    return b.constant(name, load_rows(ckpt, name, opts.dtype, dim, start, len));
  }
  // act(x @ W (+ bias)) (+ residual) with a Conv1D weight [in, out].
  Value* conv1d(const std::string& name, Value* x, Value* w, Value* bias = nullptr, Value* residual = nullptr,
                const std::string& activation = "") {
    std::vector<Value*> ins = {x, w, bias};
    if (residual) ins.push_back(residual);
    else if (!bias) ins.pop_back();
    Attributes a;
    if (!activation.empty()) a.set("activation", activation);
    return b.op("FusedMatMul", name, ins, a);
  }
  // The output projection of a block, added to the residual stream `x`: one
  // GEMM with bias and residual on one rank; under TP the partial sums are
  // all-reduced first, so the bias and the residual follow the collective.
  Value* project_add(const std::string& p, Value* x, Value* in, Value* w) {
    if (!shard.active()) return conv1d(p + "c_proj", in, w, full(p + "c_proj.bias"), x);
    Value* out = tp_all_reduce(b, p + "c_proj", conv1d(p + "c_proj", in, w), shard);
    return b.op("Add", p + "residual", {x, b.op("Add", p + "c_proj.bias", {out, full(p + "c_proj.bias")})});
  }

  // x + attn(h)
  Value* attention(int i, Value* x, Value* h, const StepInputs& in) {
    std::string p = "transformer.h." + std::to_string(i) + ".attn.";
    int64_t H = cfg.hidden, D = cfg.head_dim, heads = cfg.heads / shard.degree, local = heads * D;
    // One GEMM for this rank's columns of q, k and v ([B, T, 3 * local]);
    // [B, T, 3, heads, D] → [3, B, heads, T, D] (a view at B = T = 1, the
    // one copy otherwise), split on the leading axis into views.
    std::vector<Tensor> w, bias;
    for (int j = 0; j < 3; ++j) {
      int64_t start = j * H + shard.rank * local;
      w.push_back(load_rows(ckpt, p + "c_attn.weight", opts.dtype, 1, start, local));
      bias.push_back(load_rows(ckpt, p + "c_attn.bias", opts.dtype, 0, start, local));
    }
    Value* y = conv1d(p + "c_attn", h, b.constant(p + "c_attn.weight", concat(w, 1)), b.constant(p + "c_attn.bias", concat(bias, 0)));
    Value* r = b.op("Reshape", p + "c_attn.reshape", {y, b.i64s({0, 0, 3, heads, D})});
    Attributes perm;
    perm.set("perm", std::vector<int64_t>{2, 0, 3, 1, 4});
    Value* t = b.op("Transpose", p + "c_attn.transpose", {r}, perm);
    std::vector<Value*> parts = b.split(p + "c_attn.split", t, 0, {1, 1, 1});
    Value* qkv[3];
    for (int j = 0; j < 3; ++j) qkv[j] = b.op("Squeeze", p + "c_attn." + "qkv"[j], {parts[size_t(j)], b.i64s({0})});
    LayerCache c = add_cache_write(b, i, in, qkv[1], qkv[2], heads, D, cache_len, opts.dtype);
    Attributes a;
    a.set("scale", float(1.0 / std::sqrt(double(D))));
    Value* o = b.merge_heads(p + "heads", b.op("Attention", p + "attention", {qkv[0], c.k, c.v, in.mask}, a));
    return project_add(p, x, o, part(p + "c_proj.weight", 0, shard.rank * local, local));
  }

  // x + mlp(h)
  Value* mlp(int i, Value* x, Value* h) {
    std::string p = "transformer.h." + std::to_string(i) + ".mlp.";
    int64_t inner = cfg.intermediate, local = inner / shard.degree;
    if (inner % shard.degree)
      fail(ErrorKind::InvalidArgument, "GPT-2 MLP width ", inner, " does not divide by the TP degree ", shard.degree);
    std::string gelu;  // in c_fc's epilogue
    if (cfg.activation == "gelu_new" || cfg.activation == "gelu_pytorch_tanh" || cfg.activation == "gelu_fast") gelu = "gelu_tanh";
    else if (cfg.activation == "gelu") gelu = "gelu";
    else fail(ErrorKind::Unsupported, "GPT-2 activation_function '", cfg.activation, "' (supported: gelu_new, gelu, gelu_pytorch_tanh)");
    Value* act = conv1d(p + "c_fc", h, part(p + "c_fc.weight", 1, shard.rank * local, local),
                        part(p + "c_fc.bias", 0, shard.rank * local, local), nullptr, gelu);
    return project_add(p, x, act, part(p + "c_proj.weight", 0, shard.rank * local, local));
  }

  Value* forward(int i, Value* x, const StepInputs& in) {
    std::string p = "transformer.h." + std::to_string(i) + ".";
    Value* h = layer_norm(b, p + "ln_1", x, full(p + "ln_1.weight"), full(p + "ln_1.bias"), cfg.norm_eps);
    x = attention(i, x, h, in);
    h = layer_norm(b, p + "ln_2", x, full(p + "ln_2.weight"), full(p + "ln_2.bias"), cfg.norm_eps);
    return mlp(i, x, h);
  }
};

}  // namespace

Graph build_gpt2(const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts, int64_t cache_len) {
  Graph g;
  g.name = "gpt2";
  GraphBuilder b(g);
  Shard shard{opts.tp_rank, opts.tp_degree, opts.tp_group};
  if (cfg.heads % shard.degree)
    fail(ErrorKind::InvalidArgument, "GPT-2 n_head ", cfg.heads, " does not divide by the TP degree ", shard.degree);
  StepInputs in = add_step_inputs(b, cache_len);
  Block block{b, cfg, ckpt, opts, shard, cache_len};
  Value* wte = block.full("transformer.wte.weight");
  Value* tok = b.op("Gather", "transformer.wte", {wte, in.ids});
  Value* pos = b.op("Gather", "transformer.wpe", {block.full("transformer.wpe.weight"), in.positions});
  Value* x = b.op("Add", "transformer.embeddings", {tok, pos});
  for (int i = 0; i < int(cfg.layers); ++i) x = block.forward(i, x, in);
  Value* h = layer_norm(b, "transformer.ln_f", x, block.full("transformer.ln_f.weight"), block.full("transformer.ln_f.bias"),
                        cfg.norm_eps);
  add_lm_head(b, h, cfg, ckpt, opts, shard, "transformer.wte.weight", wte);
  return g;
}

Graph build_llama(const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts, int64_t cache_len);

Graph build_causal_lm(const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts) {
  int64_t cache_len = opts.cache_len > 0 ? opts.cache_len : cfg.max_positions;
  if (cache_len > cfg.max_positions)
    fail(ErrorKind::InvalidArgument, "cache length ", cache_len, " exceeds the model's max_position_embeddings ", cfg.max_positions);
  if (opts.tp_degree < 1 || opts.tp_rank < 0 || opts.tp_rank >= opts.tp_degree)
    fail(ErrorKind::InvalidArgument, "TP rank ", opts.tp_rank, " of degree ", opts.tp_degree, " is not a valid shard");
  if (cfg.model_type == "gpt2") return build_gpt2(cfg, ckpt, opts, cache_len);
  if (cfg.model_type == "llama") return build_llama(cfg, ckpt, opts, cache_len);
  fail(ErrorKind::Unsupported, "model_type '", cfg.model_type, "' (supported: gpt2, llama)");
}

}  // namespace tessera::hf
