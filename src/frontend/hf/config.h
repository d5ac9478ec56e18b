// A Hugging Face causal LM's config.json, normalised: GPT-2 (`n_embd`,
// `n_layer`, ...) and Llama (`hidden_size`, `num_hidden_layers`, ...) map onto
// one ModelConfig the graph builders read. Also the list of weights each
// architecture's checkpoint holds, named exactly as transformers'
// `save_pretrained` writes them, and the check of a checkpoint against it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/shape.h"

namespace tessera::hf {

class Checkpoint;

// Llama 3's frequency-dependent RoPE rescaling (rope_type "llama3").
struct RopeScaling {
  std::string type = "llama3";
  double factor = 8.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_positions = 8192;
};

struct ModelConfig {
  std::string model_type;  // "gpt2" | "llama"
  int64_t vocab_size = 0;
  int64_t hidden = 0;
  int64_t layers = 0;
  int64_t heads = 0;
  int64_t kv_heads = 0;      // = heads for GPT-2 and when num_key_value_heads is absent
  int64_t head_dim = 0;      // hidden / heads unless given
  int64_t intermediate = 0;  // GPT-2: n_inner, default 4 * n_embd
  int64_t max_positions = 0;
  double norm_eps = 1e-5;
  double rope_theta = 10000.0;  // Llama only
  std::optional<RopeScaling> rope_scaling;  // none for rope_type "default"
  bool tie_embeddings = false;
  std::string activation;  // HF names: "gelu_new", "gelu", "silu", ...
  bool attention_bias = false;  // Llama; GPT-2 always has biases
  bool mlp_bias = false;
  DType dtype = DType::f32;  // torch_dtype / dtype (f32 when absent)
  std::optional<int64_t> bos_id;
  std::vector<int64_t> eos_ids;
};

std::vector<std::string> supported_model_types();  // {"gpt2", "llama"}

// Parses a config.json object (as text); `source` names it in errors.
ModelConfig parse_model_config(const std::string& json_text, const std::string& source);
// Reads DIR/config.json (or a path to a .json file).
ModelConfig load_model_config(const std::string& path);
// The config.json transformers itself writes for `cfg` (so that
// AutoModelForCausalLM.from_pretrained loads it).
std::string model_config_json(const ModelConfig& cfg);

// Named defaults for make-checkpoint: "tiny", "gpt2-124m", "llama3-8b".
ModelConfig preset_config(const std::string& model_type, const std::string& preset);
// Overrides one field from "key=value" using config.json's key names for that
// model type (n_embd, hidden_size, rope_theta, ...); derived fields follow.
void set_config_field(ModelConfig& cfg, const std::string& key, const std::string& value);

struct ExpectedTensor {
  std::string name;
  Shape shape;
  bool optional = false;
};
// Every weight a save_pretrained checkpoint of `cfg` holds, in module order.
// GPT-2's Conv1D weights are [in, out]; Llama's nn.Linear weights [out, in].
std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg);

// Every expected tensor present, shaped as expected, one float dtype for all;
// extra tensors (buffers such as attn.bias) are ignored. Errors name the
// tensor, the expected and found shape or dtype, and the file.
void validate(const ModelConfig& cfg, const Checkpoint& ckpt);

}  // namespace tessera::hf
