// Logits processing and sampling matching transformers' `generate`; see
// sampling.h. The float32 arithmetic of each processor is kept (penalty and
// temperature are float ops on float logits, as torch does on float tensors),
// so processed logits agree with transformers' to the last bit or so.
#include "generate/sampling.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"

namespace tessera::gen {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

void check_logits(const float* logits, int64_t vocab) {
  TSR_CHECK(vocab > 0, ErrorKind::InvalidArgument, "[sampling] vocab must be positive, got ", vocab);
  TSR_CHECK(logits != nullptr, ErrorKind::InvalidArgument, "[sampling] logits is null");
  for (int64_t i = 0; i < vocab; ++i) {
    TSR_CHECK(!std::isnan(logits[i]), ErrorKind::InvalidArgument, "[sampling] logits[", i, "] is NaN (vocab ",
              vocab, ")");
    TSR_CHECK(logits[i] != std::numeric_limits<float>::infinity(), ErrorKind::InvalidArgument, "[sampling] logits[",
              i, "] is +inf (vocab ", vocab, ")");
  }
}

// RepetitionPenaltyLogitsProcessor: each distinct previous token once; ids past
// the vocabulary are ignored (transformers clamps them into a dropped pad slot).
void apply_repetition_penalty(std::vector<float>& scores, float penalty, const std::vector<int64_t>& previous) {
  const int64_t vocab = static_cast<int64_t>(scores.size());
  std::vector<bool> seen(scores.size(), false);
  for (const int64_t id : previous) {
    if (id >= vocab || seen[id]) continue;
    seen[id] = true;
    float& s = scores[id];
    s = s < 0 ? s * penalty : s / penalty;
  }
}

// TopKLogitsWarper: remove everything below the k-th largest value, so ties
// with it all survive.
void apply_top_k(std::vector<float>& scores, int64_t top_k) {
  const size_t k = static_cast<size_t>(std::min<int64_t>(top_k, static_cast<int64_t>(scores.size())));
  std::vector<float> sorted = scores;
  std::nth_element(sorted.begin(), sorted.begin() + (k - 1), sorted.end(), std::greater<float>());
  const float kth = sorted[k - 1];
  for (float& s : scores)
    if (s < kth) s = kNegInf;
}

// exp(v - max) for a row whose max is `max`; a +inf max (huge logits over a tiny
// temperature) puts all mass on the +inf entries, the temperature → 0 limit.
double shifted_exp(float v, float max) {
  if (std::isinf(max) && max > 0) return v == max ? 1.0 : 0.0;
  return std::exp(static_cast<double>(v - max));
}

// TopPLogitsWarper: sort ascending, remove the prefix whose cumulative
// probability is <= 1 - top_p, never the most probable token. Ties sort by
// index (torch's CPU sort is stable), so among equal logits the lower index is
// removed first. -inf tokens have probability 0 and stay removed, so only the
// finite ones are sorted.
void apply_top_p(std::vector<float>& scores, float top_p) {
  std::vector<int64_t> order;
  for (size_t i = 0; i < scores.size(); ++i)
    if (scores[i] != kNegInf) order.push_back(static_cast<int64_t>(i));
  if (order.empty()) return;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return scores[a] < scores[b]; });
  const float max = scores[order.back()];
  double total = 0;
  for (int64_t id : order) total += shifted_exp(scores[id], max);
  // torch compares the float32 cumulative sum with (1 - top_p) rounded to float32;
  // its CPU cumsum accumulates in double.
  const float threshold = static_cast<float>(1.0 - static_cast<double>(top_p));
  double cumulative = 0;
  for (size_t j = 0; j + 1 < order.size(); ++j) {
    const float p = static_cast<float>(shifted_exp(scores[order[j]], max) / total);
    cumulative += p;
    if (static_cast<float>(cumulative) > threshold) break;
    scores[order[j]] = kNegInf;
  }
}

}  // namespace

void validate(const SamplingParams& p) {
  TSR_CHECK(p.greedy || p.temperature > 0, ErrorKind::InvalidArgument,
            "[sampling] temperature must be > 0 when sampling (got ", p.temperature, "); set greedy for argmax");
  TSR_CHECK(p.top_k >= 0, ErrorKind::InvalidArgument, "[sampling] top_k must be >= 0 (0 = off), got ", p.top_k);
  TSR_CHECK(p.top_p > 0 && p.top_p <= 1, ErrorKind::InvalidArgument, "[sampling] top_p must be in (0, 1], got ",
            p.top_p);
  TSR_CHECK(p.repetition_penalty > 0 && std::isfinite(p.repetition_penalty), ErrorKind::InvalidArgument,
            "[sampling] repetition_penalty must be > 0 (1 = off), got ", p.repetition_penalty);
}

std::vector<float> processed_logits(const SamplingParams& params, const float* logits, int64_t vocab,
                                    const std::vector<int64_t>& previous_tokens) {
  validate(params);
  check_logits(logits, vocab);
  for (size_t i = 0; i < previous_tokens.size(); ++i)
    TSR_CHECK(previous_tokens[i] >= 0, ErrorKind::InvalidArgument, "[sampling] previous_tokens[", i, "] = ",
              previous_tokens[i], " is negative");
  std::vector<float> scores(logits, logits + vocab);
  if (params.repetition_penalty != 1.0f) apply_repetition_penalty(scores, params.repetition_penalty, previous_tokens);
  if (params.greedy) return scores;
  if (params.temperature != 1.0f)
    for (float& s : scores) s = s / params.temperature;
  if (params.top_k != 0) apply_top_k(scores, params.top_k);
  if (params.top_p < 1.0f) apply_top_p(scores, params.top_p);
  return scores;
}

std::vector<double> token_probabilities(const std::vector<float>& processed) {
  TSR_CHECK(!processed.empty(), ErrorKind::InvalidArgument, "[sampling] empty logits");
  const float max = *std::max_element(processed.begin(), processed.end());
  TSR_CHECK(max != kNegInf, ErrorKind::InvalidArgument, "[sampling] every logit is -inf; no token can be drawn");
  std::vector<double> probs(processed.size());
  double total = 0;
  for (size_t i = 0; i < processed.size(); ++i) total += probs[i] = shifted_exp(processed[i], max);
  for (double& p : probs) p /= total;
  return probs;
}

Sampler::Sampler(SamplingParams params) : params_(params), rng_(params.seed) { validate(params_); }

int64_t Sampler::next(const float* logits, int64_t vocab, const std::vector<int64_t>& previous_tokens) {
  const std::vector<float> scores = processed_logits(params_, logits, vocab, previous_tokens);
  if (params_.greedy)  // first maximum, like torch.argmax
    return std::max_element(scores.begin(), scores.end()) - scores.begin();
  const std::vector<double> probs = token_probabilities(scores);
  // 53 random bits → [0, 1); done by hand because std::uniform_real_distribution
  // differs between standard libraries, and a seed should mean the same tokens.
  const double u = static_cast<double>(rng_() >> 11) * 0x1p-53;
  double cumulative = 0;
  int64_t last_possible = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    cumulative += probs[i];
    last_possible = static_cast<int64_t>(i);
    if (u < cumulative) return last_possible;
  }
  return last_possible;  // u beyond a cumulative sum that rounded below 1
}

StopCriteria::StopCriteria(std::vector<int64_t> eos_ids, std::vector<std::string> stop_strings,
                           int64_t max_new_tokens)
    : eos_ids_(std::move(eos_ids)), stop_strings_(std::move(stop_strings)), max_new_tokens_(max_new_tokens) {
  TSR_CHECK(max_new_tokens_ > 0, ErrorKind::InvalidArgument, "[stop] max_new_tokens must be > 0, got ",
            max_new_tokens_);
  for (size_t i = 0; i < stop_strings_.size(); ++i) {
    TSR_CHECK(!stop_strings_[i].empty(), ErrorKind::InvalidArgument, "[stop] stop_strings[", i, "] is empty");
    longest_stop_ = std::max(longest_stop_, stop_strings_[i].size());
  }
}

StopDecision StopCriteria::update(const std::string& text, int64_t last_token) {
  ++tokens_seen_;
  // Only text that could overlap the newly added characters needs searching.
  size_t start = 0;
  if (text.size() >= searched_up_to_ && searched_up_to_ >= longest_stop_) start = searched_up_to_ - longest_stop_ + 1;
  searched_up_to_ = text.size();
  size_t earliest = std::string::npos;
  for (const std::string& s : stop_strings_) earliest = std::min(earliest, text.find(s, start));
  if (earliest != std::string::npos)
    return {true, StopReason::StopString, static_cast<int64_t>(text.size() - earliest)};
  if (std::find(eos_ids_.begin(), eos_ids_.end(), last_token) != eos_ids_.end()) return {true, StopReason::Eos, 0};
  if (tokens_seen_ >= max_new_tokens_) return {true, StopReason::MaxNewTokens, 0};
  return {};
}

}  // namespace tessera::gen
