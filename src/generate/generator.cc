#include "generate/generator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace tessera::gen {
namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

bool is_cache_input(const std::string& name) { return name.rfind("cache_k.", 0) == 0 || name.rfind("cache_v.", 0) == 0; }

// The engine's inputs for one run: the caches (whole, or one slot's rows) and this step's tokens.
std::map<std::string, Tensor> step_feed(const Tensor& ids, const Tensor& positions, std::map<std::string, Tensor> caches) {
  caches["input_ids"] = ids;
  caches["position_ids"] = positions;
  return caches;
}

}  // namespace

Generator::Generator(const Engine& engine, int64_t slots) : engine_(engine), slots_(slots) {
  if (slots < 1) fail(ErrorKind::InvalidArgument, "generation needs at least one sequence slot, got ", slots);
  const Graph& g = engine.graph();
  for (const char* name : {"input_ids", "position_ids"})
    if (!g.find_value(name)) fail(ErrorKind::InvalidArgument, "engine '", g.name, "' is not a decode-step engine: it has no input '", name, "'");
  for (Value* in : g.inputs) {
    if (!is_cache_input(in->name)) continue;
    Shape s = in->shape;
    if (s.size() != 4 || s[1] < 0 || s[2] < 0 || s[3] < 0)
      fail(ErrorKind::InvalidArgument, "KV cache input '", in->name, "' must be [batch, heads, positions, head_dim], got ", to_string(s));
    cache_len_ = s[2];
    s[0] = slots;
    caches_[in->name] = Tensor::zeros(in->dtype, s);
  }
  if (caches_.empty()) fail(ErrorKind::InvalidArgument, "engine '", g.name, "' has no KV cache inputs (cache_k.0, ...)");
  caches_ = engine.to_device(caches_);  // on a GPU the steps update it there, in place
  if (g.outputs.empty() || g.outputs[0]->name != "logits" || g.outputs[0]->shape.empty() || g.outputs[0]->shape.back() <= 0)
    fail(ErrorKind::InvalidArgument, "engine '", g.name, "' has no `logits` output of known vocabulary size");
  vocab_ = g.outputs[0]->shape.back();
  auto is_output = [&](const char* name) {
    const Value* v = g.find_value(name);
    return v && std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
  };
  device_greedy_ = is_output("next_ids") && is_output("next_max");
}

// Row `slot` of every cache, as [1, H, S, D] views of the same memory.
std::map<std::string, Tensor> Generator::slot_caches(int64_t slot) const {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : caches_) {
    Shape s = t.shape();
    size_t row = t.nbytes() / size_t(s[0]);
    s[0] = 1;
    auto owner = std::make_shared<Tensor>(t);
    out[name] = Tensor::view(t.dtype(), s, static_cast<char*>(t.raw()) + size_t(slot) * row, owner, t.device());
  }
  return out;
}

std::map<std::string, Tensor> Generator::step_inputs(int64_t position) const {
  if (position < 0 || position >= cache_len_)
    fail(ErrorKind::InvalidArgument, "decode position ", position, " is outside the KV cache [0, ", cache_len_, ")");
  return step_feed(Tensor::zeros(DType::i64, {slots_, 1}),
                   Tensor::from(DType::i64, {slots_, 1}, std::vector<int64_t>(size_t(slots_), position)), caches_);
}

// One sequence at positions 0..n-1 in `slot`'s cache rows.
Tensor Generator::run_prompt(int64_t slot, const std::vector<int64_t>& prompt) const {
  int64_t n = int64_t(prompt.size());
  std::vector<int64_t> pos(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) pos[size_t(i)] = i;
  return engine_.run(step_feed(Tensor::from(DType::i64, {1, n}, prompt), Tensor::from(DType::i64, {1, n}, pos), slot_caches(slot)))
      .at("logits");
}

const float* Generator::rows_of(const Tensor& logits, int64_t rows) const {
  if (logits.dtype() != DType::f32 || logits.numel() != rows * vocab_)
    fail(ErrorKind::Internal, "logits ", to_string(logits.shape()), " for a step of ", rows, " rows and vocabulary ", vocab_);
  return logits.data<float>();
}

Tensor Generator::forward(const std::vector<int64_t>& prompt) {
  Request r;
  r.prompt = prompt;
  check({r});
  return run_prompt(0, prompt);
}

void Generator::check(const std::vector<Request>& requests) const {
  for (size_t i = 0; i < requests.size(); ++i) {
    const Request& r = requests[i];
    int64_t n = int64_t(r.prompt.size());
    if (n == 0) fail(ErrorKind::InvalidArgument, "request ", i, ": the prompt is empty");
    if (n >= cache_len_)
      fail(ErrorKind::InvalidArgument, "request ", i, ": the prompt has ", n, " tokens but the KV cache holds ", cache_len_,
           " positions (build with a longer --max-seq-len)");
    if (r.max_new_tokens < 1) fail(ErrorKind::InvalidArgument, "request ", i, ": max_new_tokens must be at least 1, got ", r.max_new_tokens);
    for (int64_t t : r.prompt)
      if (t < 0 || t >= vocab_)
        fail(ErrorKind::InvalidArgument, "request ", i, ": token id ", t, " is outside the vocabulary [0, ", vocab_, ")");
    validate(r.sampling);  // bad sampling parameters fail before any work
  }
}

void Generator::prefill(int64_t slot, Slot& s, size_t request, const Request& r) {
  int64_t n = int64_t(r.prompt.size());
  s.request = int64_t(request);
  s.tokens = r.prompt;
  SamplingParams p = r.sampling;
  p.seed += request;  // each sequence its own stream: results do not depend on batching
  s.sampler = Sampler(p);
  auto t0 = std::chrono::steady_clock::now();
  Tensor logits = run_prompt(slot, r.prompt);
  stats_.prefill_ms += ms_since(t0);
  stats_.prompt_tokens += n;
  ++stats_.prefills;
  s.pending = s.sampler.next(rows_of(logits, 1), vocab_, s.tokens);
}

// Take the sampled token; true when the sequence is finished.
bool Generator::accept(Slot& s, const Request& r, Result& out, const TokenFn& on_token) {
  int64_t token = s.pending;
  s.tokens.push_back(token);
  out.tokens.push_back(token);
  ++stats_.generated_tokens;
  bool keep = on_token ? on_token(size_t(s.request), token) : true;
  if (std::find(r.eos_ids.begin(), r.eos_ids.end(), token) != r.eos_ids.end()) out.finish_reason = "eos";
  else if (!keep) out.finish_reason = "stop";
  else if (int64_t(out.tokens.size()) >= r.max_new_tokens || int64_t(s.tokens.size()) > cache_len_) out.finish_reason = "length";
  else return false;
  s.request = -1;
  return true;
}

// Two decode steps of the full batch at position 0 before any prompt: the
// first makes the step's plan, the second (on a GPU) captures its CUDA graph,
// so the timed steps replay it. Every slot's rows are rewritten by its prefill.
void Generator::warm_up() {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 2; ++i) engine_.run(step_inputs(0));
  stats_.warmup_ms += ms_since(t0);
  warm_ = true;
}

std::vector<Result> Generator::generate(const std::vector<Request>& requests, const TokenFn& on_token) {
  check(requests);
  if (!warm_) warm_up();
  std::vector<Result> results(requests.size());
  std::vector<Slot> slots(static_cast<size_t>(slots_));
  size_t next = 0;
  for (;;) {
    // Continuous batching: every free slot takes the next waiting prompt.
    for (int64_t i = 0; i < slots_; ++i) {
      Slot& s = slots[size_t(i)];
      while (s.request < 0 && next < requests.size()) {
        size_t r = next++;
        prefill(i, s, r, requests[r]);
        accept(s, requests[r], results[r], on_token);
      }
    }
    int64_t active = 0;
    std::vector<int64_t> ids(static_cast<size_t>(slots_), 0), pos(static_cast<size_t>(slots_), 0);
    for (int64_t i = 0; i < slots_; ++i) {
      const Slot& s = slots[size_t(i)];
      if (s.request < 0) continue;  // a free slot decodes a dummy token at position 0 of its own rows
      ++active;
      ids[size_t(i)] = s.tokens.back();
      pos[size_t(i)] = int64_t(s.tokens.size()) - 1;
    }
    if (active == 0) break;
    decode_step(slots, requests, ids, pos);
    for (int64_t i = 0; i < slots_; ++i) {
      Slot& s = slots[size_t(i)];
      if (s.request >= 0) accept(s, requests[size_t(s.request)], results[size_t(s.request)], on_token);
    }
  }
  return results;
}

// Every active sequence decodes greedily with no repetition penalty: the
// engine's next_ids are its tokens, and the logits need not leave the device.
bool Generator::greedy_on_device(const std::vector<Slot>& slots, const std::vector<Request>& requests) const {
  if (!device_greedy_) return false;
  for (const Slot& s : slots) {
    if (s.request < 0) continue;
    const SamplingParams& p = requests[size_t(s.request)].sampling;
    if (!p.greedy || p.repetition_penalty != 1.0f) return false;
  }
  return true;
}

// One step of every slot; each active slot's sampled token goes to `pending`.
void Generator::decode_step(std::vector<Slot>& slots, const std::vector<Request>& requests, const std::vector<int64_t>& ids,
                            const std::vector<int64_t>& pos) {
  std::map<std::string, Tensor> in = step_feed(Tensor::from(DType::i64, {slots_, 1}, ids), Tensor::from(DType::i64, {slots_, 1}, pos), caches_);
  auto t0 = std::chrono::steady_clock::now();
  if (greedy_on_device(slots, requests)) {
    std::map<std::string, Tensor> out = engine_.run_outputs(in, {"next_ids", "next_max"});
    stats_.decode_ms += ms_since(t0);
    ++stats_.decode_steps;
    const int64_t* next = out.at("next_ids").data<int64_t>();
    const float* best = out.at("next_max").data<float>();
    for (int64_t i = 0; i < slots_; ++i) {
      if (slots[size_t(i)].request < 0) continue;
      if (std::isnan(best[i]) || best[i] == std::numeric_limits<float>::infinity())
        fail(ErrorKind::InvalidArgument, "[sampling] the logits of sequence ", slots[size_t(i)].request, " hold ",
             std::isnan(best[i]) ? "NaN" : "+inf", " (vocab ", vocab_, ")");
      slots[size_t(i)].pending = next[i];
    }
    return;
  }
  Tensor logits = engine_.run(in).at("logits");
  const float* rows = rows_of(logits, slots_);
  stats_.decode_ms += ms_since(t0);
  ++stats_.decode_steps;
  for (int64_t i = 0; i < slots_; ++i) {
    Slot& s = slots[size_t(i)];
    if (s.request >= 0) s.pending = s.sampler.next(rows + i * vocab_, vocab_, s.tokens);
  }
}

}  // namespace tessera::gen
