// Token sampling for text generation: turns one row of logits into the next
// token, and decides when a sequence is finished.
//
// The processing follows Hugging Face transformers' `generate` exactly, in its
// order: RepetitionPenaltyLogitsProcessor, then (only when sampling)
// TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper, each switched on
// under the same condition as there (penalty != 1, temperature != 1,
// top_k != 0, top_p < 1). tests/fixtures/make_sampling_cases.py produces the
// reference numbers from transformers itself.
//
// Randomness is per Sampler (one per sequence, seeded seed + sequence index),
// so a sequence's tokens do not depend on what else is in the batch.
#pragma once
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace tessera::gen {

struct SamplingParams {
  float temperature = 1.0f;        // > 0 unless greedy
  int64_t top_k = 0;               // 0 = off; ties with the k-th value are kept
  float top_p = 1.0f;              // in (0, 1]; 1 = off
  float repetition_penalty = 1.0f; // > 0; 1 = off; applies to prompt tokens too
  bool greedy = false;             // argmax after the repetition penalty
  uint64_t seed = 0;
};

// Throws InvalidArgument naming the first bad parameter.
void validate(const SamplingParams& params);

// The logits after every processor `generate` would apply (filtered tokens are
// -inf). With greedy only the repetition penalty applies, as with
// do_sample=False. Token ids in previous_tokens >= vocab are ignored (as in
// transformers); negative ids and NaN logits are rejected.
std::vector<float> processed_logits(const SamplingParams& params, const float* logits, int64_t vocab,
                                    const std::vector<int64_t>& previous_tokens);

// softmax of processed logits, in double (the distribution next() draws from).
std::vector<double> token_probabilities(const std::vector<float>& processed);

class Sampler {
 public:
  explicit Sampler(SamplingParams params);  // validates

  // The next token for one sequence. previous_tokens: prompt + generated so far.
  int64_t next(const float* logits, int64_t vocab, const std::vector<int64_t>& previous_tokens);

  const SamplingParams& params() const { return params_; }

 private:
  SamplingParams params_;
  std::mt19937_64 rng_;
};

enum class StopReason { None, Eos, StopString, MaxNewTokens };

struct StopDecision {
  bool stop = false;
  StopReason reason = StopReason::None;
  // Bytes to cut from the end of the generated text: the earliest stop string
  // and everything after it (0 for EOS and max_new_tokens).
  int64_t trim = 0;
};

// One per sequence. Call update() once after each generated token with the
// text decoded so far (generated part only) and that token; it counts tokens
// for max_new_tokens. Stop strings are matched anywhere in the text, so one
// that a multi-character token completes mid-token is still found.
class StopCriteria {
 public:
  StopCriteria(std::vector<int64_t> eos_ids, std::vector<std::string> stop_strings, int64_t max_new_tokens);

  StopDecision update(const std::string& generated_text, int64_t last_token);

  int64_t tokens_seen() const { return tokens_seen_; }

 private:
  std::vector<int64_t> eos_ids_;
  std::vector<std::string> stop_strings_;
  int64_t max_new_tokens_;
  int64_t tokens_seen_ = 0;
  size_t searched_up_to_ = 0;  // text length at the previous call
  size_t longest_stop_ = 0;
};

}  // namespace tessera::gen
