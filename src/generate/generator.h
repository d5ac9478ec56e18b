// Text generation over a decode-step engine (frontend/hf/causal_lm.h's graph
// interface): a preallocated KV cache of `slots` sequences, one prefill per
// prompt (written into its slot's rows in place), then decode steps of all
// slots at once — a fixed [slots, 1] shape, so a cuda engine replays one
// captured graph per step. Continuous batching: when a sequence finishes,
// the next waiting prompt is prefilled into its slot while the others keep
// decoding.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "generate/sampling.h"

namespace tessera::gen {

struct Request {
  std::vector<int64_t> prompt;  // token ids, at least one
  int64_t max_new_tokens = 32;
  SamplingParams sampling;
  std::vector<int64_t> eos_ids;  // stop after emitting one of these (kept in the output)
};

struct Result {
  std::vector<int64_t> tokens;  // generated ids, prompt excluded
  std::string finish_reason;    // "eos", "length" (max_new_tokens or the cache is full), or "stop" (the caller's on_token)
};

struct Stats {
  int64_t prompt_tokens = 0, generated_tokens = 0, decode_steps = 0, prefills = 0;
  double prefill_ms = 0, decode_ms = 0;
  // The untimed decode steps run before the first request (the step's plan
  // and, on a GPU, its CUDA graph capture), as the peers' warm-up calls.
  double warmup_ms = 0;
  // Tokens per second of the decode steps: each sequence's first token comes
  // from its prefill, so it is not counted (0 before any decode step).
  double decode_tokens_per_s() const {
    return decode_ms > 0 ? double(generated_tokens - prefills) / (decode_ms / 1000) : 0.0;
  }
};

// Called for every generated token; return false to stop that sequence.
using TokenFn = std::function<bool(size_t request, int64_t token)>;

class Generator {
 public:
  // `slots` sequences decode together; the cache length and per-layer shapes
  // come from the engine's cache inputs.
  Generator(const Engine& engine, int64_t slots);
  std::vector<Result> generate(const std::vector<Request>& requests, const TokenFn& on_token = {});
  // One forward pass over `prompt` in slot 0, returning the engine's logits
  // as they are (every position with an all_logits build) — parity checks.
  Tensor forward(const std::vector<int64_t>& prompt);
  const Stats& stats() const { return stats_; }
  int64_t cache_len() const { return cache_len_; }
  int64_t slots() const { return slots_; }
  // The inputs of one decode step ([slots, 1] ids at `position` in every
  // slot, the caches where the engine runs): profiling and benchmarks.
  std::map<std::string, Tensor> step_inputs(int64_t position) const;

 private:
  struct Slot {
    int64_t request = -1;         // -1: free
    std::vector<int64_t> tokens;  // prompt + generated; the last one not yet in the cache
    int64_t pending = 0;          // sampled, not yet accepted
    Sampler sampler{SamplingParams{}};
  };
  void check(const std::vector<Request>& requests) const;
  std::map<std::string, Tensor> slot_caches(int64_t slot) const;
  Tensor run_prompt(int64_t slot, const std::vector<int64_t>& prompt) const;
  const float* rows_of(const Tensor& logits, int64_t rows) const;  // checked: f32, rows x vocab
  void prefill(int64_t slot, Slot& s, size_t request, const Request& r);
  bool accept(Slot& s, const Request& r, Result& out, const TokenFn& on_token);
  void warm_up();
  bool greedy_on_device(const std::vector<Slot>& slots, const std::vector<Request>& requests) const;
  void decode_step(std::vector<Slot>& slots, const std::vector<Request>& requests, const std::vector<int64_t>& ids,
                   const std::vector<int64_t>& pos);

  const Engine& engine_;
  int64_t slots_, cache_len_ = 0, vocab_ = 0;
  std::map<std::string, Tensor> caches_;  // cache_k.L / cache_v.L: [slots, Hkv, S, D]
  Stats stats_;
  bool warm_ = false;
  bool device_greedy_ = false;  // the engine has next_ids / next_max outputs
};

}  // namespace tessera::gen
