// Shared pieces of the Hugging Face graph builders (build_gpt2.cc,
// build_llama.cc): a small graph-construction helper whose op() infers each
// output's type with the op registry as it goes (so a wrong shape fails at
// the node that made it, naming it), the per-rank weight slicing of tensor
// parallelism, and the decode-step graph interface every causal LM shares.
//
// The graphs take, per step:
//   input_ids     [B, T] int64
//   position_ids  [B, T] int64   absolute positions; row b writes its K/V at
//                                position_ids[b, 0] .. + T and attends to
//                                keys at positions <= its own
//   cache_k.L / cache_v.L  [B, Hkv_local, S, D]  (one pair per layer) the
//                                caller's KV cache, updated in place
// and return `logits` [B, V] of each row's last position (all positions,
// [B, T, V], with BuildOptions::all_logits, for parity tests), then
// `next_ids` [B] (each row's argmax) and `next_max` [B] (its value), which
// greedy decoding reads instead of the logits.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "frontend/hf/causal_lm.h"
#include "frontend/hf/checkpoint.h"
#include "frontend/hf/config.h"
#include "ir/graph.h"

namespace tessera::hf {

class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& g) : g_(g) {}
  Graph& graph() { return g_; }
  Value* input(const std::string& name, DType dtype, const Shape& shape, const std::vector<std::string>& dim_names);
  Value* constant(const std::string& name, Tensor t);
  Value* i64s(const std::vector<int64_t>& values);  // a small int64 constant
  // Add node `op` named `name`; its one output's type comes from inference.
  Value* op(const std::string& op, const std::string& name, std::vector<Value*> inputs, Attributes attrs = {});
  // x @ W^T (+ bias) (+ residual): W as stored by nn.Linear, [out, in]; the
  // residual (a tensor of the output's shape) joins the GEMM as cuBLASLt's C.
  Value* linear(const std::string& name, Value* x, Value* weight, Value* bias = nullptr, Value* residual = nullptr);
  // [B, T, H*D] → [B, H, T, D] and back.
  Value* split_heads(const std::string& name, Value* x, int64_t heads, int64_t head_dim);
  Value* merge_heads(const std::string& name, Value* x);
  Value* slice(const std::string& name, Value* x, int64_t axis, int64_t start, int64_t end);
  // `x` split along `axis` into parts of these sizes (one Split node).
  std::vector<Value*> split(const std::string& name, Value* x, int64_t axis, const std::vector<int64_t>& sizes);

 private:
  std::string fresh(const std::string& name);  // `name`, or a unique variant if taken
  Graph& g_;
};

// Which slab of a weight this rank holds.
struct Shard {
  int64_t rank = 0, degree = 1;
  std::string group;  // the TP axis's collective group ("" = world)
  bool active() const { return degree > 1; }
};

// The tensor, or this rank's 1/degree slab of it along `dim` (read from the
// checkpoint without touching the rest), cast to `dtype`.
Tensor load_weight(const Checkpoint& ckpt, const std::string& name, DType dtype, int64_t dim = -1, Shard shard = {});
// The tensors joined along `dim` (same dtype and other dims): weights of
// several projections that run as one GEMM.
Tensor concat(const std::vector<Tensor>& parts, int64_t dim);
// Rows [start, start + len) of dim 0 (or columns of dim 1) of a weight.
Tensor load_rows(const Checkpoint& ckpt, const std::string& name, DType dtype, int64_t dim, int64_t start, int64_t len);

// Attention heads this rank computes, and the KV heads it holds (replicated
// when there are fewer KV heads than ranks); errors name the config field.
struct HeadSplit {
  int64_t q_heads, kv_heads, q_start, kv_start;
};
HeadSplit split_heads_for_rank(const ModelConfig& cfg, Shard shard);

// The inputs above and the additive mask [B, 1, T, S] (0 where key j <=
// query position, -inf elsewhere) every attention layer reads.
struct StepInputs {
  Value* ids;
  Value* positions;
  Value* write_index;  // [B]: position_ids[:, 0]
  Value* mask;
};
StepInputs add_step_inputs(GraphBuilder& b, int64_t cache_len);
// The cache input pair of layer `layer` and the updated (aliased) caches.
struct LayerCache {
  Value* k;
  Value* v;
};
LayerCache add_cache_write(GraphBuilder& b, int layer, const StepInputs& in, Value* k_new, Value* v_new,
                           int64_t kv_heads, int64_t head_dim, int64_t cache_len, DType dtype);
// Sum over the TP group (rowwise layers); identity without TP.
Value* tp_all_reduce(GraphBuilder& b, const std::string& name, Value* x, Shard shard);
// Last position of each row (or all with opts.all_logits) → `logits`: this
// rank's rows of the head (vocab-parallel, then an AllGather) when the
// vocabulary divides by the TP degree, else the whole head — the embedding
// table `embed` (checkpoint name `embed_name`) itself when tied.
Value* add_lm_head(GraphBuilder& b, Value* h, const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts,
                   Shard shard, const std::string& embed_name, Value* embed);

}  // namespace tessera::hf
