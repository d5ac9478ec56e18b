// `tessera generate`: text generation from a Hugging Face checkpoint
// directory (GPT-2, Llama). The graph is built in-process from the
// checkpoint (each TP rank reading only its shard), compiled, and driven by
// gen::Generator: prefill per prompt, batched decode steps over a KV cache,
// continuous batching. Under `tessera launch`, --tp N shards every layer over
// N ranks and --dp M splits the prompts between M groups (a dp x tp mesh);
// rank 0 streams its tokens and writes the results of every rank, in order.
#include <algorithm>
#include <chrono>
#include <climits>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/npy.h"
#include "dist/device_mesh.h"
#include "dist/process_group.h"
#include "engine/target.h"
#include "frontend/hf/causal_lm.h"
#include "generate/generator.h"
#include "parallel/dp_split.h"
#include "text/tokenizer.h"
#include "tools/cli.h"
#include "tools/decode_profile.h"

namespace tessera::cli {
namespace {

struct GenOpts {
  std::string model, tokenizer, prompts_file, output, dtype = "f32", target = "cpu", prompt_logits, stats_json, comm;
  std::vector<std::string> prompts, stops, prompt_ids;
  int64_t max_new_tokens = 32, batch = 0, max_seq_len = 0, tp = 1, dp = 1, top_k = 0;
  float temperature = 1.0f, top_p = 1.0f, repetition_penalty = 1.0f;
  bool do_sample = false, quiet = false, no_cuda_graph = false, ignore_eos = false;
  uint64_t seed = 0;
  int timeout_s = 60, profile_step = 0;
};

std::vector<int64_t> parse_ids(const std::string& text) {
  std::vector<int64_t> ids;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = text.find(',', i);
    std::string tok = text.substr(i, j == std::string::npos ? std::string::npos : j - i);
    char* end = nullptr;
    long long v = std::strtoll(tok.c_str(), &end, 10);
    if (tok.empty() || *end) fail(ErrorKind::InvalidArgument, "--prompt-ids '", text, "': '", tok, "' is not a token id");
    ids.push_back(v);
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return ids;
}

// Every prompt of the job, as text (empty when given as ids) and ids.
struct Prompts {
  std::vector<std::string> text;
  std::vector<std::vector<int64_t>> ids;
};

Prompts read_prompts(const GenOpts& o, const text::Tokenizer* tok) {
  Prompts p;
  std::vector<std::string> texts = o.prompts;
  if (!o.prompts_file.empty())
    for (auto& line : parallel::read_lines(o.prompts_file)) texts.push_back(line);
  if (!texts.empty() && !tok)
    fail(ErrorKind::InvalidArgument, "no tokenizer in '", o.model, "' (tokenizer.json, vocab.json + merges.txt or tokenizer.model): "
         "pass --tokenizer PATH, or give prompts as --prompt-ids 1,2,3");
  for (auto& t : texts) {
    p.text.push_back(t);
    p.ids.push_back(tok->encode(t));
  }
  for (auto& s : o.prompt_ids) {
    p.text.emplace_back();
    p.ids.push_back(parse_ids(s));
  }
  if (p.ids.empty()) fail(ErrorKind::InvalidArgument, "no prompts: give --prompt, --prompts FILE or --prompt-ids");
  return p;
}

std::unique_ptr<text::Tokenizer> find_tokenizer(const GenOpts& o) {
  if (!o.tokenizer.empty()) return text::Tokenizer::load(o.tokenizer);
  try {
    return text::Tokenizer::load(o.model);
  } catch (const Error&) {
    return nullptr;  // prompt ids still work
  }
}

struct Job {
  dist::RankInfo info;
  std::unique_ptr<dist::ProcessGroup> pg;
  std::shared_ptr<dist::Communicator> tp_comm;
  int tp_rank = 0, dp_rank = 0;
};

Job join_job(const GenOpts& o) {
  Job j;
  j.info = dist::detect_rank_info();
  if (int64_t(j.info.world_size) != o.tp * o.dp)
    fail(ErrorKind::InvalidArgument, "--tp ", o.tp, " x --dp ", o.dp, " needs ", o.tp * o.dp, " ranks, but the job has ", j.info.world_size,
         " (run under `tessera launch --nproc-per-node ", o.tp * o.dp, "`)");
  if (j.info.world_size == 1) return j;
  j.pg = dist::init_process_group(j.info, "gloo", std::chrono::seconds(o.timeout_s));
  dist::DeviceMesh mesh(j.info.world_size, {int(o.dp), int(o.tp)}, {"dp", "tp"});
  std::vector<int> c = mesh.coords(j.info.rank);
  j.dp_rank = c[0];
  j.tp_rank = c[1];
  // A cuda engine's TP collectives run on NCCL, on the engine's stream (or
  // host-staged over gloo: --comm); the results are gathered through the store.
  std::shared_ptr<dist::Communicator> world = j.pg->world;
  if (o.tp > 1) world = engine_communicator(*j.pg, o.target, o.comm);
  j.tp_comm = o.dp > 1 ? mesh.split(*world).at("tp") : world;
  return j;
}

Engine build_engine(const GenOpts& o, const Job& j, const hf::ModelConfig& cfg, bool all_logits) {
  hf::Checkpoint ckpt = hf::Checkpoint::open(o.model);
  hf::validate(cfg, ckpt);
  hf::BuildOptions b;
  b.dtype = parse_float_dtype(o.dtype, "--dtype");
  b.cache_len = o.max_seq_len > 0 ? o.max_seq_len : std::min<int64_t>(cfg.max_positions, 2048);
  b.tp_rank = j.tp_rank;
  b.tp_degree = o.tp;
  b.tp_group = o.dp > 1 ? "tp" : "";
  b.all_logits = all_logits;
  Settings s;
  s.target = o.target;
  s.tp_degree = o.tp;
  s.tp_rank = j.tp_rank;
  s.tp_group = b.tp_group;
  Engine e = Engine::build(hf::build_causal_lm(cfg, ckpt, b), s);
  RuntimeOptions rt;
  rt.cuda_graph = !o.no_cuda_graph;
  e.set_runtime(rt);
  if (o.tp > 1) {
    if (o.dp > 1) e.set_group("tp", j.tp_comm);
    else e.set_communicator(j.tp_comm);
  }
  return e;
}

gen::Request make_request(const GenOpts& o, std::vector<int64_t> ids, const hf::ModelConfig& cfg, const text::Tokenizer* tok) {
  gen::Request r;
  r.prompt = std::move(ids);
  r.max_new_tokens = o.max_new_tokens;
  r.sampling.greedy = !o.do_sample;
  r.sampling.temperature = o.temperature;
  r.sampling.top_k = o.top_k;
  r.sampling.top_p = o.top_p;
  r.sampling.repetition_penalty = o.repetition_penalty;
  r.sampling.seed = o.seed;
  r.eos_ids = cfg.eos_ids;
  if (r.eos_ids.empty() && tok && tok->eos_id()) r.eos_ids.push_back(*tok->eos_id());
  if (o.ignore_eos) r.eos_ids.clear();  // benchmarks: random weights may emit EOS early
  return r;
}

// --prompt-logits: one forward over the first prompt, logits of every position.
void write_prompt_logits(const GenOpts& o, const Job& j, const hf::ModelConfig& cfg, const Prompts& p) {
  Engine e = build_engine(o, j, cfg, true);
  gen::Generator g(e, 1);
  Tensor logits = g.forward(p.ids.at(0));
  if (j.info.rank == 0) write_npz(o.prompt_logits, {{"logits", logits}});
}


// Stop strings: the generated text so far, checked after every token.
struct TextState {
  std::unique_ptr<text::StreamDecoder> decoder;
  std::unique_ptr<gen::StopCriteria> stop;  // stop strings only: EOS and length are the Generator's
  std::string text;
  bool stopped = false;
};

nlohmann::json result_json(size_t index, const Prompts& p, const gen::Result& r, const TextState& t, bool has_text) {
  nlohmann::json j = {{"index", index}, {"prompt_ids", p.ids[index]}, {"tokens", r.tokens}, {"finish_reason", r.finish_reason}};
  if (!p.text[index].empty()) j["prompt"] = p.text[index];
  if (has_text) j["text"] = t.text;
  return j;
}

// Each DP group's first TP rank posts its results; rank 0 collects them in order.
nlohmann::json gather_results(const GenOpts& o, Job& j, nlohmann::json mine) {
  if (o.dp == 1) return mine;
  dist::Store& store = *j.pg->rendezvous.store;
  if (j.tp_rank == 0) store.set("generate/results/" + std::to_string(j.dp_rank), mine.dump());
  if (j.info.rank != 0) return {};
  nlohmann::json all = nlohmann::json::array();
  for (int64_t d = 0; d < o.dp; ++d)
    for (auto& r : nlohmann::json::parse(store.get("generate/results/" + std::to_string(d)))) all.push_back(r);
  return all;
}

// --stats-json: checked before the model is loaded, so a typo costs no
// engine build; written atomically at the end (no partial file).
void check_stats_path(const std::string& path) {
  if (path.empty()) return;
  std::filesystem::path p(path), dir = p.parent_path().empty() ? "." : p.parent_path();
  if (std::filesystem::is_directory(p)) fail(ErrorKind::InvalidArgument, "--stats-json '", path, "' is a directory");
  if (!std::filesystem::is_directory(dir))
    fail(ErrorKind::InvalidArgument, "--stats-json '", path, "': directory '", dir.string(), "' does not exist");
}

// The Generator's counters on rank 0 (under --dp, its own prompts only).
nlohmann::json stats_json(const GenOpts& o, const gen::Stats& st, int64_t requests, int64_t slots, double wall_s) {
  return {{"target", o.target}, {"dtype", o.dtype}, {"tp", o.tp}, {"dp", o.dp}, {"cuda_graph", !o.no_cuda_graph},
          {"ignore_eos", o.ignore_eos}, {"requests", requests}, {"slots", slots}, {"max_new_tokens", o.max_new_tokens},
          {"prompt_tokens", st.prompt_tokens}, {"generated_tokens", st.generated_tokens}, {"decode_steps", st.decode_steps},
          {"prefill_ms", st.prefill_ms}, {"decode_ms", st.decode_ms}, {"warmup_ms", st.warmup_ms}, {"decode_tokens_per_s", st.decode_tokens_per_s()},
          {"wall_s", wall_s},
          {"note", "rank 0's requests; the first token of each request comes from its prefill, so "
                   "decode_tokens_per_s = (generated_tokens - requests) / decode_ms; warmup_ms (two untimed decode steps before the first prompt: the step's plan and CUDA graph) and wall_s (loading and compiling) are not in decode_ms"}};
}

void run_generate(const GenOpts& o) {
  auto t0 = std::chrono::steady_clock::now();
  check_stats_path(o.stats_json);
  Job job = join_job(o);
  hf::ModelConfig cfg = hf::load_model_config(o.model);
  std::unique_ptr<text::Tokenizer> tok = find_tokenizer(o);
  Prompts prompts = read_prompts(o, tok.get());
  if (!o.stops.empty() && !tok) fail(ErrorKind::InvalidArgument, "--stop needs a tokenizer to read the generated text");
  if (!o.prompt_logits.empty()) {
    write_prompt_logits(o, job, cfg, prompts);
    if (job.pg) job.pg->finish();
    return;
  }
  Engine engine = build_engine(o, job, cfg, false);
  parallel::Part part = parallel::split_range(int64_t(prompts.ids.size()), job.dp_rank, int(o.dp), false);
  std::vector<gen::Request> reqs;
  for (int64_t i = part.begin; i < part.end; ++i) reqs.push_back(make_request(o, prompts.ids[size_t(i)], cfg, tok.get()));
  int64_t slots = o.batch > 0 ? o.batch : std::clamp<int64_t>(int64_t(reqs.size()), 1, 8);
  gen::Generator g(engine, slots);
  bool lead = job.info.rank == 0, stream = lead && !o.quiet && slots == 1 && tok;
  std::vector<TextState> texts(reqs.size());
  for (auto& t : texts) {
    if (!tok) continue;
    t.decoder = std::make_unique<text::StreamDecoder>(*tok, true);
    if (!o.stops.empty()) t.stop = std::make_unique<gen::StopCriteria>(std::vector<int64_t>{}, o.stops, INT64_MAX);
  }
  auto on_token = [&](size_t r, int64_t id) {
    TextState& t = texts[r];
    if (!t.decoder) return true;
    std::string piece = t.decoder->step(id);
    t.text += piece;
    gen::StopDecision d = t.stop ? t.stop->update(t.text, id) : gen::StopDecision{};
    if (d.stop) {
      piece.resize(piece.size() - std::min(piece.size(), size_t(d.trim)));
      t.text.resize(t.text.size() - size_t(d.trim));
      t.stopped = true;
    }
    if (stream) std::cout << piece << std::flush;
    return !t.stopped;
  };
  if (stream) std::cout << prompts.text[size_t(part.begin)] << std::flush;
  std::vector<gen::Result> results = reqs.empty() ? std::vector<gen::Result>{} : g.generate(reqs, on_token);
  nlohmann::json mine = nlohmann::json::array();
  for (size_t i = 0; i < results.size(); ++i) {
    if (texts[i].decoder && !texts[i].stopped) texts[i].text += texts[i].decoder->finish();
    mine.push_back(result_json(size_t(part.begin) + i, prompts, results[i], texts[i], bool(tok)));
  }
  if (stream) std::cout << "\n";
  nlohmann::json all = gather_results(o, job, mine);
  if (lead) {
    if (!stream && !o.quiet)
      for (auto& r : all) std::cout << "[" << r["index"] << "] " << (r.contains("text") ? r["text"].get<std::string>() : r["tokens"].dump()) << "\n";
    if (!o.output.empty()) write_file_atomic(o.output, all.dump(1) + "\n");
    const gen::Stats& st = g.stats();
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::cerr << "generated " << st.generated_tokens << " tokens for " << reqs.size() << " prompts on rank 0 ("
              << st.decode_tokens_per_s()
              << " tokens/s decoding, " << st.decode_steps << " steps of " << slots << "; prefill " << st.prefill_ms << " ms; "
              << secs << " s in all)\n";
    if (!o.stats_json.empty())
      write_file_atomic(o.stats_json, stats_json(o, st, int64_t(reqs.size()), slots, secs).dump(1) + "\n");
  }
  if (o.profile_step > 0) profile_decode_step(engine, g, g.cache_len() / 2, o.profile_step, lead, std::cerr);
  if (job.pg) job.pg->finish();
}

}  // namespace

void add_generate(CLI::App& app) {
  auto* cmd = app.add_subcommand("generate", "Generate text from a Hugging Face checkpoint directory (GPT-2, Llama)");
  auto o = std::make_shared<GenOpts>();
  cmd->add_option("--model", o->model, "model directory: config.json, model.safetensors (or an index), tokenizer files")->required();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file or directory (default: the model directory)");
  cmd->add_option("--prompt", o->prompts, "a prompt (repeatable)");
  cmd->add_option("--prompts", o->prompts_file, "a file of prompts, one per line");
  cmd->add_option("--prompt-ids", o->prompt_ids, "a prompt as token ids, e.g. 1,15,27 (repeatable)");
  cmd->add_option("--max-new-tokens", o->max_new_tokens, "tokens to generate per prompt")->capture_default_str();
  cmd->add_flag("--do-sample", o->do_sample, "sample (temperature, top-k, top-p) instead of greedy decoding");
  cmd->add_option("--temperature", o->temperature, "with --do-sample")->capture_default_str();
  cmd->add_option("--top-k", o->top_k, "with --do-sample: keep the k most likely tokens (0 = all)")->capture_default_str();
  cmd->add_option("--top-p", o->top_p, "with --do-sample: nucleus sampling mass")->capture_default_str();
  cmd->add_option("--repetition-penalty", o->repetition_penalty, "transformers' repetition_penalty")->capture_default_str();
  cmd->add_option("--seed", o->seed, "sampling seed (sequence i uses seed + i)")->capture_default_str();
  cmd->add_option("--stop", o->stops, "stop when the generated text contains this string (removed from the output; repeatable)");
  cmd->add_option("--batch", o->batch, "sequences decoded together (default: the prompts, at most 8)");
  cmd->add_option("--max-seq-len", o->max_seq_len, "KV cache positions per sequence (default: the model's, at most 2048)");
  cmd->add_option("--dtype", o->dtype, "weights, activations and KV cache: f32, f16, bf16")->capture_default_str();
  cmd->add_option("--target", o->target, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--tp", o->tp, "tensor-parallel degree (ranks of `tessera launch`)")->check(CLI::PositiveNumber);
  cmd->add_option("--dp", o->dp, "data-parallel groups: the prompts are split between them")->check(CLI::PositiveNumber);
  cmd->add_option("--comm", o->comm, "TP collectives of a cuda engine: nccl, gloo (host-staged, slower) or auto (nccl unless "
                  "ranks share a GPU; default, or $TESSERA_COMM)")->check(CLI::IsMember({"auto", "nccl", "gloo"}));
  cmd->add_option("-o,--output", o->output, "write every prompt's tokens and text as JSON (rank 0)");
  cmd->add_option("--prompt-logits", o->prompt_logits, "write the first prompt's logits at every position to this .npz, then stop");
  cmd->add_flag("-q,--quiet", o->quiet, "do not stream tokens to the terminal");
  cmd->add_flag("--no-cuda-graph", o->no_cuda_graph, "cuda: run op by op instead of replaying captured graphs");
  cmd->add_flag("--ignore-eos", o->ignore_eos, "generate --max-new-tokens for every prompt, past any EOS (benchmarks)");
  cmd->add_option("--stats-json", o->stats_json, "write rank 0's prefill/decode timings and token counts as JSON");
  cmd->add_option("--profile-step", o->profile_step, "after generating: time one decode step (device, host round trip, per node) and print the N costliest ops and nodes")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--timeout", o->timeout_s, "seconds before a silent rank is declared failed")->capture_default_str();
  cmd->callback([o] { run_generate(*o); });
}

}  // namespace tessera::cli
