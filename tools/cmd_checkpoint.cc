// `tessera make-checkpoint`: a random Hugging Face checkpoint (config.json +
// safetensors, sharded on request) that transformers loads, for tests and
// benchmarks without downloads. `tessera inspect-checkpoint`: the tensors of a
// checkpoint directory (or one .safetensors file) as JSON, checked against
// its config.json when there is one.
#include <iostream>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include "core/error.h"
#include "frontend/hf/checkpoint.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {

// "2GB" → 2e9, "500MiB" → 500 * 2^20, "1234" → 1234 (save_pretrained's units).
int64_t parse_size(const std::string& text) {
  size_t pos = 0;
  double v = 0;
  try {
    v = std::stod(text, &pos);
  } catch (const std::exception&) {
    fail(ErrorKind::InvalidArgument, "--shard-size '", text, "': expected a size such as 2GB or 500MiB");
  }
  const std::string unit = text.substr(pos);
  const std::pair<const char*, double> units[] = {{"", 1},         {"B", 1},          {"KB", 1e3},
                                                  {"MB", 1e6},     {"GB", 1e9},       {"KiB", 1024.0},
                                                  {"MiB", 1 << 20}, {"GiB", 1 << 30}};
  for (auto& [u, scale] : units)
    if (unit == u && v >= 0) return int64_t(v * scale);
  fail(ErrorKind::InvalidArgument, "--shard-size '", text, "': expected a size such as 2GB or 500MiB");
}

nlohmann::json config_json(const hf::ModelConfig& c) {
  nlohmann::json j = {{"model_type", c.model_type},   {"vocab_size", c.vocab_size},   {"hidden", c.hidden},
                      {"layers", c.layers},           {"heads", c.heads},             {"kv_heads", c.kv_heads},
                      {"head_dim", c.head_dim},       {"intermediate", c.intermediate},
                      {"max_positions", c.max_positions}, {"norm_eps", c.norm_eps}, {"rope_theta", c.rope_theta},
                      {"tie_embeddings", c.tie_embeddings}, {"activation", c.activation},
                      {"attention_bias", c.attention_bias}, {"mlp_bias", c.mlp_bias},
                      {"dtype", dtype_name(c.dtype)}, {"eos_ids", c.eos_ids}};
  j["bos_id"] = c.bos_id ? nlohmann::json(*c.bos_id) : nlohmann::json(nullptr);
  j["rope_scaling"] = nullptr;
  if (c.rope_scaling)
    j["rope_scaling"] = {{"rope_type", c.rope_scaling->type}, {"factor", c.rope_scaling->factor},
                         {"low_freq_factor", c.rope_scaling->low_freq_factor},
                         {"high_freq_factor", c.rope_scaling->high_freq_factor},
                         {"original_max_position_embeddings", c.rope_scaling->original_max_positions}};
  return j;
}

void add_make(CLI::App& app) {
  auto* cmd = app.add_subcommand("make-checkpoint", "Write a random Hugging Face checkpoint (config.json + safetensors)");
  struct Opts {
    std::string type, preset = "tiny", dtype = "f32", shard_size, out;
    std::vector<std::string> sets;
    uint64_t seed = 0;
  };
  auto o = std::make_shared<Opts>();
  cmd->add_option("--model-type", o->type, "gpt2 or llama")->required();
  cmd->add_option("--preset", o->preset, "tiny, gpt2-124m (gpt2), llama3-8b (llama)");
  cmd->add_option("--set", o->sets, "override a config.json field: key=value (repeatable)");
  cmd->add_option("--dtype", o->dtype, "f32, f16 or bf16");
  cmd->add_option("--seed", o->seed, "random seed");
  cmd->add_option("--shard-size", o->shard_size, "split into shards of at most this size (e.g. 2GB)");
  cmd->add_option("-o,--output", o->out, "output directory")->required();
  cmd->callback([o] {
    hf::ModelConfig cfg = hf::preset_config(o->type, o->preset);
    for (const std::string& kv : o->sets) {
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) fail(ErrorKind::InvalidArgument, "--set '", kv, "': expected key=value");
      hf::set_config_field(cfg, kv.substr(0, eq), kv.substr(eq + 1));
    }
    int64_t shard = o->shard_size.empty() ? 0 : parse_size(o->shard_size);
    hf::write_random_checkpoint(cfg, parse_float_dtype(o->dtype, "--dtype"), o->seed, o->out, shard);
    std::cout << "wrote " << o->type << " checkpoint to " << o->out << "\n";
  });
}

void add_inspect_checkpoint(CLI::App& app) {
  auto* cmd = app.add_subcommand("inspect-checkpoint",
                                 "Print a checkpoint's tensors (name, dtype, shape, file) and config as JSON");
  auto path = std::make_shared<std::string>();
  auto no_validate = std::make_shared<bool>(false);
  cmd->add_option("checkpoint", *path, "model directory, index.json or .safetensors file")->required();
  cmd->add_flag("--no-validate", *no_validate, "do not check the tensors against config.json");
  cmd->callback([path, no_validate] {
    hf::Checkpoint ckpt = hf::Checkpoint::open(*path);
    nlohmann::json out = {{"dir", ckpt.dir()}};
    struct stat st {};
    const std::string config = ckpt.dir() + "/config.json";
    if (::stat(config.c_str(), &st) == 0) {
      hf::ModelConfig cfg = hf::load_model_config(config);
      if (!*no_validate) hf::validate(cfg, ckpt);
      out["config"] = config_json(cfg);
      out["validated"] = !*no_validate;
    }
    nlohmann::json tensors = nlohmann::json::array();
    for (const std::string& name : ckpt.names()) {
      const hf::TensorInfo& ti = ckpt.info(name);
      tensors.push_back({{"name", name}, {"dtype", hf::safetensors_dtype_code(ti.dtype)}, {"shape", ti.shape},
                         {"file", ckpt.file_of(name)}});
    }
    out["tensors"] = tensors;
    std::cout << out.dump(1) << "\n";
  });
}

}  // namespace

void add_make_checkpoint(CLI::App& app) {
  add_make(app);
  add_inspect_checkpoint(app);
}

}  // namespace tessera::cli
