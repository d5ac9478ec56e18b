// config.json → ModelConfig for GPT-2 and Llama, the reverse (the JSON
// transformers writes), presets and overrides for make-checkpoint. The
// expected-tensor list and checkpoint validation are at the end.
#include "frontend/hf/config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/stat.h>

#include "core/error.h"
#include "frontend/hf/checkpoint.h"

namespace tessera::hf {

using json = nlohmann::json;

namespace {

// Field access with errors naming the field and the file; JSON null counts as absent.
struct Fields {
  const json& j;
  const std::string& source;

  const json* get(const char* key) const {
    auto it = j.find(key);
    return it == j.end() || it->is_null() ? nullptr : &*it;
  }
  int64_t int_req(const char* key) const {
    const json* v = get(key);
    if (!v) fail(ErrorKind::Parse, source, ": missing required field '", key, "'");
    return as_int(*v, key);
  }
  int64_t int_or(const char* key, int64_t def) const { return get(key) ? as_int(*get(key), key) : def; }
  double num_or(const char* key, double def) const {
    const json* v = get(key);
    if (v && !v->is_number()) fail(ErrorKind::Parse, source, ": field '", key, "' is not a number: ", v->dump());
    return v ? v->get<double>() : def;
  }
  bool bool_or(const char* key, bool def) const {
    const json* v = get(key);
    if (v && !v->is_boolean()) fail(ErrorKind::Parse, source, ": field '", key, "' is not a boolean: ", v->dump());
    return v ? v->get<bool>() : def;
  }
  std::string str_or(const char* key, const std::string& def) const {
    const json* v = get(key);
    if (v && !v->is_string()) fail(ErrorKind::Parse, source, ": field '", key, "' is not a string: ", v->dump());
    return v ? v->get<std::string>() : def;
  }
  int64_t as_int(const json& v, const char* key) const {
    if (!v.is_number_integer()) fail(ErrorKind::Parse, source, ": field '", key, "' is not an integer: ", v.dump());
    return v.get<int64_t>();
  }
};

DType parse_dtype(const Fields& f) {
  std::string name = f.str_or("dtype", f.str_or("torch_dtype", "float32"));
  if (name == "float32" || name == "float16" || name == "bfloat16") return dtype_from_name(name);
  fail(ErrorKind::Unsupported, f.source, ": dtype '", name, "' (expected float32, float16 or bfloat16)");
}

void parse_token_ids(const Fields& f, ModelConfig& cfg) {
  if (f.get("bos_token_id")) cfg.bos_id = f.int_req("bos_token_id");
  if (const json* e = f.get("eos_token_id")) {
    if (e->is_array())
      for (const json& id : *e) cfg.eos_ids.push_back(f.as_int(id, "eos_token_id"));
    else
      cfg.eos_ids.push_back(f.as_int(*e, "eos_token_id"));
  }
}

ModelConfig parse_gpt2(const Fields& f) {
  ModelConfig c;
  c.model_type = "gpt2";
  c.vocab_size = f.int_req("vocab_size");
  c.hidden = f.int_req("n_embd");
  c.layers = f.int_req("n_layer");
  c.heads = f.int_req("n_head");
  c.kv_heads = c.heads;
  c.max_positions = f.get("n_positions") || !f.get("n_ctx") ? f.int_req("n_positions") : f.int_req("n_ctx");
  c.intermediate = f.int_or("n_inner", 4 * c.hidden);
  c.norm_eps = f.num_or("layer_norm_epsilon", 1e-5);
  c.activation = f.str_or("activation_function", "gelu_new");
  c.tie_embeddings = f.bool_or("tie_word_embeddings", true);
  c.attention_bias = c.mlp_bias = true;
  return c;
}

// transformers >= 5 keeps rope_theta and the scaling in `rope_parameters`;
// older files have top-level `rope_theta` and `rope_scaling` (type or rope_type).
void parse_rope(const Fields& f, ModelConfig& c) {
  const json* p = f.get("rope_parameters");
  if (!p) p = f.get("rope_scaling");
  c.rope_theta = f.num_or("rope_theta", 10000.0);
  if (!p) return;
  if (!p->is_object()) fail(ErrorKind::Parse, f.source, ": 'rope_parameters' / 'rope_scaling' is not an object");
  Fields r{*p, f.source};
  c.rope_theta = r.num_or("rope_theta", c.rope_theta);
  std::string type = r.str_or("rope_type", r.str_or("type", "default"));
  if (type == "default") return;
  if (type != "llama3")
    fail(ErrorKind::Unsupported, f.source, ": rope_type '", type, "' (supported: default, llama3)");
  RopeScaling s;
  s.factor = r.num_or("factor", s.factor);
  s.low_freq_factor = r.num_or("low_freq_factor", s.low_freq_factor);
  s.high_freq_factor = r.num_or("high_freq_factor", s.high_freq_factor);
  s.original_max_positions = r.int_or("original_max_position_embeddings", s.original_max_positions);
  c.rope_scaling = s;
}

ModelConfig parse_llama(const Fields& f) {
  ModelConfig c;
  c.model_type = "llama";
  c.vocab_size = f.int_req("vocab_size");
  c.hidden = f.int_req("hidden_size");
  c.layers = f.int_req("num_hidden_layers");
  c.heads = f.int_req("num_attention_heads");
  c.kv_heads = f.int_or("num_key_value_heads", c.heads);
  c.intermediate = f.int_req("intermediate_size");
  c.max_positions = f.int_or("max_position_embeddings", 2048);
  c.norm_eps = f.num_or("rms_norm_eps", 1e-6);
  c.activation = f.str_or("hidden_act", "silu");
  c.tie_embeddings = f.bool_or("tie_word_embeddings", false);
  c.attention_bias = f.bool_or("attention_bias", false);
  c.mlp_bias = f.bool_or("mlp_bias", false);
  if (c.heads > 0) c.head_dim = f.int_or("head_dim", c.hidden / c.heads);
  parse_rope(f, c);
  return c;
}

void check_consistent(const ModelConfig& c, const std::string& source) {
  const bool gpt2 = c.model_type == "gpt2";
  auto positive = [&](int64_t v, const char* gpt2_key, const char* llama_key) {
    if (v <= 0) fail(ErrorKind::Parse, source, ": field '", gpt2 ? gpt2_key : llama_key, "' must be positive, got ", v);
  };
  positive(c.vocab_size, "vocab_size", "vocab_size");
  positive(c.hidden, "n_embd", "hidden_size");
  positive(c.layers, "n_layer", "num_hidden_layers");
  positive(c.heads, "n_head", "num_attention_heads");
  positive(c.kv_heads, "n_head", "num_key_value_heads");
  positive(c.intermediate, "n_inner", "intermediate_size");
  positive(c.max_positions, "n_positions", "max_position_embeddings");
  if (gpt2 && c.hidden % c.heads != 0)
    fail(ErrorKind::Parse, source, ": n_embd ", c.hidden, " is not a multiple of n_head ", c.heads);
  if (!gpt2 && c.head_dim <= 0) fail(ErrorKind::Parse, source, ": field 'head_dim' must be positive");
  if (c.heads % c.kv_heads != 0)
    fail(ErrorKind::Parse, source, ": num_attention_heads ", c.heads, " is not a multiple of num_key_value_heads ",
         c.kv_heads);
}

json rope_json(const ModelConfig& c) {
  json r = {{"rope_theta", c.rope_theta}, {"rope_type", "default"}};
  if (c.rope_scaling) {
    const RopeScaling& s = *c.rope_scaling;
    r["rope_type"] = s.type;
    r["factor"] = s.factor;
    r["low_freq_factor"] = s.low_freq_factor;
    r["high_freq_factor"] = s.high_freq_factor;
    r["original_max_position_embeddings"] = s.original_max_positions;
  }
  return r;
}

void token_ids_json(const ModelConfig& c, json& j) {
  j["bos_token_id"] = c.bos_id ? json(*c.bos_id) : json(nullptr);
  if (c.eos_ids.empty()) j["eos_token_id"] = nullptr;
  else if (c.eos_ids.size() == 1) j["eos_token_id"] = c.eos_ids[0];
  else j["eos_token_id"] = c.eos_ids;
}

json gpt2_json(const ModelConfig& c) {
  return {{"architectures", {"GPT2LMHeadModel"}},
          {"model_type", "gpt2"},
          {"vocab_size", c.vocab_size},
          {"n_embd", c.hidden},
          {"n_layer", c.layers},
          {"n_head", c.heads},
          {"n_positions", c.max_positions},
          {"n_inner", c.intermediate == 4 * c.hidden ? json(nullptr) : json(c.intermediate)},
          {"activation_function", c.activation},
          {"layer_norm_epsilon", c.norm_eps},
          {"initializer_range", 0.02},
          {"tie_word_embeddings", c.tie_embeddings}};
}

json llama_json(const ModelConfig& c) {
  json j = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", "llama"},
            {"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden},
            {"num_hidden_layers", c.layers},
            {"num_attention_heads", c.heads},
            {"num_key_value_heads", c.kv_heads},
            {"intermediate_size", c.intermediate},
            {"max_position_embeddings", c.max_positions},
            {"rms_norm_eps", c.norm_eps},
            {"hidden_act", c.activation},
            {"attention_bias", c.attention_bias},
            {"mlp_bias", c.mlp_bias},
            {"initializer_range", 0.02},
            {"tie_word_embeddings", c.tie_embeddings},
            {"rope_parameters", rope_json(c)}};
  // Written only when it differs from hidden / heads, so --set hidden_size=... keeps it derived.
  if (c.head_dim != c.hidden / c.heads) j["head_dim"] = c.head_dim;
  return j;
}

}  // namespace

std::vector<std::string> supported_model_types() { return {"gpt2", "llama"}; }

ModelConfig parse_model_config(const std::string& json_text, const std::string& source) {
  json j = json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) fail(ErrorKind::Parse, source, ": not a JSON object");
  Fields f{j, source};
  if (!f.get("model_type")) fail(ErrorKind::Parse, source, ": missing required field 'model_type'");
  std::string type = f.str_or("model_type", "");
  ModelConfig c;
  if (type == "gpt2") c = parse_gpt2(f);
  else if (type == "llama") c = parse_llama(f);
  else fail(ErrorKind::Unsupported, source, ": model_type '", type, "' is not supported (supported: gpt2, llama)");
  if (type == "gpt2") c.head_dim = c.heads > 0 ? c.hidden / c.heads : 0;
  c.dtype = parse_dtype(f);
  parse_token_ids(f, c);
  check_consistent(c, source);
  return c;
}

ModelConfig load_model_config(const std::string& path) {
  struct stat st {};
  std::string file = path;
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) file = path + "/config.json";
  std::ifstream in(file);
  if (!in) fail(ErrorKind::Io, file, ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_model_config(ss.str(), file);
}

std::string model_config_json(const ModelConfig& c) {
  if (c.model_type != "gpt2" && c.model_type != "llama")
    fail(ErrorKind::Unsupported, "model_type '", c.model_type, "' is not supported (supported: gpt2, llama)");
  json j = c.model_type == "gpt2" ? gpt2_json(c) : llama_json(c);
  token_ids_json(c, j);
  j["dtype"] = dtype_name(c.dtype);
  j["use_cache"] = true;
  return j.dump(2) + "\n";
}

ModelConfig preset_config(const std::string& type, const std::string& preset) {
  ModelConfig c;
  c.model_type = type;
  if (type == "gpt2" && (preset == "tiny" || preset == "gpt2-124m")) {
    const bool tiny = preset == "tiny";
    // Tiny: 256 byte tokens + 64 specials (divisible by 8 for vocab-sharded TP).
    c.vocab_size = tiny ? 320 : 50257;
    c.hidden = tiny ? 64 : 768;
    c.layers = tiny ? 2 : 12;
    c.heads = c.kv_heads = tiny ? 4 : 12;
    c.max_positions = tiny ? 128 : 1024;
    c.intermediate = 4 * c.hidden;
    c.head_dim = c.hidden / c.heads;
    c.norm_eps = 1e-5;
    c.activation = "gelu_new";
    c.tie_embeddings = c.attention_bias = c.mlp_bias = true;
    c.bos_id = tiny ? 256 : 50256;
    c.eos_ids = {*c.bos_id};
    return c;
  }
  if (type == "llama" && (preset == "tiny" || preset == "llama3-8b")) {
    const bool tiny = preset == "tiny";
    c.vocab_size = tiny ? 320 : 128256;
    c.hidden = tiny ? 64 : 4096;
    c.layers = tiny ? 2 : 32;
    c.heads = tiny ? 4 : 32;
    c.kv_heads = tiny ? 2 : 8;
    c.head_dim = c.hidden / c.heads;
    c.intermediate = tiny ? 128 : 14336;
    c.max_positions = tiny ? 256 : 131072;
    c.norm_eps = 1e-5;
    c.rope_theta = 500000.0;
    // Tiny: original context 64 so positions reach all three llama3 bands.
    c.rope_scaling = RopeScaling{"llama3", 8.0, 1.0, 4.0, tiny ? 64 : 8192};
    c.activation = "silu";
    c.tie_embeddings = false;
    c.bos_id = tiny ? 256 : 128000;
    c.eos_ids = {tiny ? 257 : 128001};
    c.dtype = tiny ? DType::f32 : DType::bf16;
    return c;
  }
  fail(ErrorKind::InvalidArgument, "no preset '", preset, "' for model_type '", type,
       "' (gpt2: tiny, gpt2-124m; llama: tiny, llama3-8b)");
}

// Goes through config.json: the key is set in the JSON this config would be
// written as, which is then parsed again, so every check and derived default applies.
void set_config_field(ModelConfig& cfg, const std::string& key, const std::string& value) {
  json j = json::parse(model_config_json(cfg));
  json v = json::parse(value, nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) v = value;  // a bare word is a string
  std::string path = key;
  if (cfg.model_type == "llama" && (key == "rope_theta" || key.rfind("rope_scaling.", 0) == 0))
    path = "rope_parameters." + (key == "rope_theta" ? key : key.substr(13));
  if (cfg.model_type == "llama" && (key == "rope_scaling" || key == "rope_parameters") && (v.is_null() || v == "none"))
    v = json{{"rope_type", "default"}, {"rope_theta", cfg.rope_theta}};
  if (path == "rope_scaling") path = "rope_parameters";
  if (path == "rope_parameters" && v.is_object() && !v.contains("rope_theta")) v["rope_theta"] = cfg.rope_theta;
  json* slot = &j;
  for (size_t pos = 0, dot; ; pos = dot + 1) {
    dot = path.find('.', pos);
    std::string part = path.substr(pos, dot == std::string::npos ? std::string::npos : dot - pos);
    if (!slot->is_object()) fail(ErrorKind::InvalidArgument, "--set ", key, ": '", part, "' is not inside an object");
    slot = &(*slot)[part];
    if (dot == std::string::npos) break;
  }
  *slot = v;
  cfg = parse_model_config(j.dump(), "--set " + key + "=" + value);
}

namespace {

std::vector<ExpectedTensor> gpt2_tensors(const ModelConfig& c) {
  const int64_t H = c.hidden, I = c.intermediate;
  std::vector<ExpectedTensor> t = {{"transformer.wte.weight", {c.vocab_size, H}},
                                   {"transformer.wpe.weight", {c.max_positions, H}}};
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = str("transformer.h.", i, ".");
    // Conv1D stores [in, out], the transpose of nn.Linear.
    for (auto& [name, shape] : std::vector<std::pair<std::string, Shape>>{
             {"ln_1.weight", {H}}, {"ln_1.bias", {H}},
             {"attn.c_attn.weight", {H, 3 * H}}, {"attn.c_attn.bias", {3 * H}},
             {"attn.c_proj.weight", {H, H}}, {"attn.c_proj.bias", {H}},
             {"ln_2.weight", {H}}, {"ln_2.bias", {H}},
             {"mlp.c_fc.weight", {H, I}}, {"mlp.c_fc.bias", {I}},
             {"mlp.c_proj.weight", {I, H}}, {"mlp.c_proj.bias", {H}}})
      t.push_back({p + name, shape});
  }
  t.push_back({"transformer.ln_f.weight", {H}});
  t.push_back({"transformer.ln_f.bias", {H}});
  if (!c.tie_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, H}});
  return t;
}

std::vector<ExpectedTensor> llama_tensors(const ModelConfig& c) {
  const int64_t H = c.hidden, I = c.intermediate, Q = c.heads * c.head_dim, KV = c.kv_heads * c.head_dim;
  std::vector<ExpectedTensor> t = {{"model.embed_tokens.weight", {c.vocab_size, H}}};
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string p = str("model.layers.", i, ".");
    auto linear = [&](const std::string& name, int64_t out, int64_t in, bool bias) {
      t.push_back({p + name + ".weight", {out, in}});
      if (bias) t.push_back({p + name + ".bias", {out}});
    };
    t.push_back({p + "input_layernorm.weight", {H}});
    linear("self_attn.q_proj", Q, H, c.attention_bias);
    linear("self_attn.k_proj", KV, H, c.attention_bias);
    linear("self_attn.v_proj", KV, H, c.attention_bias);
    linear("self_attn.o_proj", H, Q, c.attention_bias);
    t.push_back({p + "post_attention_layernorm.weight", {H}});
    linear("mlp.gate_proj", I, H, c.mlp_bias);
    linear("mlp.up_proj", I, H, c.mlp_bias);
    linear("mlp.down_proj", H, I, c.mlp_bias);
  }
  t.push_back({"model.norm.weight", {H}});
  if (!c.tie_embeddings) t.push_back({"lm_head.weight", {c.vocab_size, H}});
  return t;
}

}  // namespace

std::vector<ExpectedTensor> expected_tensors(const ModelConfig& cfg) {
  if (cfg.model_type == "gpt2") return gpt2_tensors(cfg);
  if (cfg.model_type == "llama") return llama_tensors(cfg);
  fail(ErrorKind::Unsupported, "model_type '", cfg.model_type, "' is not supported (supported: gpt2, llama)");
}

void validate(const ModelConfig& cfg, const Checkpoint& ckpt) {
  std::optional<DType> common;
  std::string first;
  for (const ExpectedTensor& e : expected_tensors(cfg)) {
    if (!ckpt.has(e.name)) {
      if (e.optional) continue;
      fail(ErrorKind::Shape, ckpt.dir(), ": checkpoint has no tensor '", e.name, "' (expected ", to_string(e.shape),
           " for this ", cfg.model_type, " config)");
    }
    const TensorInfo& ti = ckpt.info(e.name);
    const std::string& file = ckpt.file_of(e.name);
    if (ti.shape != e.shape)
      fail(ErrorKind::Shape, file, ": tensor '", e.name, "' has shape ", to_string(ti.shape), ", expected ",
           to_string(e.shape), " from config.json");
    if (!is_float(ti.dtype))
      fail(ErrorKind::Shape, file, ": tensor '", e.name, "' is ", dtype_name(ti.dtype), ", expected a float dtype");
    if (!common) common = ti.dtype, first = e.name;
    if (ti.dtype != *common)
      fail(ErrorKind::Shape, file, ": tensor '", e.name, "' is ", dtype_name(ti.dtype), " but '", first, "' is ",
           dtype_name(*common), " (expected one dtype for all weights)");
  }
}

}  // namespace tessera::hf
