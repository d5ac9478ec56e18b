// Hugging Face causal LMs (GPT-2, the Llama family) → a tessera Graph that
// runs one prefill or decode step against a caller-owned KV cache (the
// interface is described in build_common.h). Tensor parallelism is built in:
// rank r of N reads only its shard of each weight — DTensor's Llama plan
// (q/k/v, gate/up, GPT-2's c_attn/c_fc colwise; o/down, c_proj rowwise with
// an AllReduce; the LM head vocab-parallel with an AllGather) — and its KV
// cache holds only its heads.
#pragma once
#include <cstdint>

#include "frontend/hf/checkpoint.h"
#include "frontend/hf/config.h"
#include "ir/graph.h"

namespace tessera::hf {

struct BuildOptions {
  int64_t cache_len = 0;    // KV positions per sequence; 0: the config's max_positions
  DType dtype = DType::f32; // weights, activations and cache
  int64_t tp_rank = 0, tp_degree = 1;
  std::string tp_group;     // collective group of the TP axis ("" = world)
  bool all_logits = false;  // logits of every position, [B, T, V] (parity tests)
};

Graph build_causal_lm(const ModelConfig& cfg, const Checkpoint& ckpt, const BuildOptions& opts);

}  // namespace tessera::hf
