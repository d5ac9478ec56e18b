// Hugging Face checkpoint loading (src/frontend/hf): safetensors round trips
// and slices, every corrupt-header case, sharded checkpoints and their
// failures, config.json parsing, and validation against a config.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "frontend/hf/checkpoint.h"
#include "frontend/hf/config.h"
#include "frontend/hf/safetensors.h"

using namespace tessera;
using namespace tessera::hf;
namespace fs = std::filesystem;

namespace {

struct TempDir {
  fs::path path;
  TempDir() {
    static int counter = 0;
    path = fs::temp_directory_path() / ("tessera_hf_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string operator/(const std::string& name) const { return (path / name).string(); }
};

// A tensor whose bytes are 0, 1, 2, ... (mod 251), distinct per position.
Tensor pattern(DType dtype, const Shape& shape, int salt = 0) {
  Tensor t = Tensor::empty(dtype, shape);
  auto* p = t.data<uint8_t>();
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = uint8_t((i + size_t(salt)) % 251);
  if (dtype == DType::boolean)
    for (size_t i = 0; i < t.nbytes(); ++i) p[i] &= 1;
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// A file with a hand-written header (and `data_bytes` zero bytes after it).
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, int64_t claimed_len = -1) {
  std::ofstream out(path, std::ios::binary);
  uint64_t n = claimed_len < 0 ? header.size() : uint64_t(claimed_len);
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header << std::string(data_bytes, '\0');
}

// The message of the Error `f` throws (empty, and a test failure, if none).
template <typename F>
std::string error_of(F&& f, ErrorKind kind) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(int(e.kind()), int(kind)) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << text

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  TempDir dir;
  const DType all[] = {DType::f32, DType::f16, DType::bf16, DType::f64, DType::i64,
                       DType::i32, DType::i8,  DType::u8,   DType::boolean};
  std::vector<std::pair<std::string, Tensor>> tensors;
  int salt = 0;
  for (DType d : all) tensors.emplace_back(std::string("t_") + dtype_name(d), pattern(d, {3, 5}, salt++));
  tensors.emplace_back("scalar", pattern(DType::f32, {}));
  tensors.emplace_back("empty", Tensor::empty(DType::f16, {0, 4}));
  write_safetensors(dir / "a.safetensors", tensors, {{"format", "pt"}, {"note", "x"}});

  Tensor kept;
  {
    SafetensorsFile f = SafetensorsFile::open(dir / "a.safetensors");
    EXPECT_EQ(f.names().size(), tensors.size());
    EXPECT_EQ(f.metadata().at("note"), "x");
    for (auto& [name, t] : tensors) {
      ASSERT_TRUE(f.has(name)) << name;
      EXPECT_TRUE(same_bytes(f.tensor(name), t)) << name;
      EXPECT_EQ(f.info(name).offset % dtype_size(t.dtype()), 0u) << name << " is not aligned";
    }
    kept = f.tensor("t_float64");
  }
  // The view keeps the mapping alive after the file object is gone.
  EXPECT_TRUE(same_bytes(kept, tensors[3].second));
  std::ifstream in(dir / "a.safetensors", std::ios::binary);
  uint64_t header_len = 0;
  in.read(reinterpret_cast<char*>(&header_len), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_FALSE(fs::exists(dir / "a.safetensors.tmp." + std::to_string(::getpid())));
}

TEST(Safetensors, SlicesCopyOnlyTheSlab) {
  TempDir dir;
  Tensor t = Tensor::empty(DType::f32, {4, 6, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i);
  write_safetensors(dir / "s.safetensors", {{"w", t}});
  SafetensorsFile f = SafetensorsFile::open(dir / "s.safetensors");
  auto at = [&](int64_t a, int64_t b, int64_t c) { return float((a * 6 + b) * 3 + c); };
  Tensor rows = f.slice("w", 0, 1, 2);
  ASSERT_EQ(rows.shape(), (Shape{2, 6, 3}));
  EXPECT_EQ(rows.data<float>()[0], at(1, 0, 0));
  EXPECT_EQ(rows.data<float>()[rows.numel() - 1], at(2, 5, 2));
  Tensor cols = f.slice("w", 1, 4, 2);
  ASSERT_EQ(cols.shape(), (Shape{4, 2, 3}));
  for (int64_t a = 0; a < 4; ++a)
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(cols.data<float>()[(a * 2 + b) * 3 + c], at(a, b + 4, c));
  Tensor last = f.slice("w", -1, 2, 1);
  ASSERT_EQ(last.shape(), (Shape{4, 6, 1}));
  EXPECT_EQ(last.data<float>()[7], at(1, 1, 2));
  EXPECT_HAS(error_of([&] { f.slice("w", 1, 5, 2); }, ErrorKind::InvalidArgument), "'w'");
  EXPECT_HAS(error_of([&] { f.tensor("nope"); }, ErrorKind::InvalidArgument), "'nope'");
}

TEST(Safetensors, CorruptHeadersNameFileAndTensor) {
  TempDir dir;
  const std::string p = dir / "bad.safetensors";
  auto open_error = [&](ErrorKind kind) { return error_of([&] { SafetensorsFile::open(p); }, kind); };

  { std::ofstream(p) << "abc"; }
  EXPECT_HAS(open_error(ErrorKind::Parse), "too short");
  write_raw(p, "{}", 0, 1000);
  EXPECT_HAS(open_error(ErrorKind::Parse), "header length 1000");
  write_raw(p, "[1,2]", 0);
  EXPECT_HAS(open_error(ErrorKind::Parse), "not a JSON object");
  write_raw(p, R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2);
  std::string e = open_error(ErrorKind::Unsupported);
  EXPECT_HAS(e, "'w'");
  EXPECT_HAS(e, "F8_E4M3");
  EXPECT_HAS(e, p);
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8);
  EXPECT_HAS(open_error(ErrorKind::Parse), "outside the 8 data bytes");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,12]}})", 16);
  EXPECT_HAS(open_error(ErrorKind::Parse), "needs 16");
  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12);
  EXPECT_HAS(open_error(ErrorKind::Parse), "overlaps");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8);
  EXPECT_HAS(open_error(ErrorKind::Parse), "'w'");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
  EXPECT_HAS(open_error(ErrorKind::Parse), "bad extent");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2]}})", 8);
  EXPECT_HAS(open_error(ErrorKind::Parse), "data_offsets");
  write_raw(p, R"({"__metadata__":{"k":1}})", 0);
  EXPECT_HAS(open_error(ErrorKind::Parse), "__metadata__");

  // A real file cut short: the last tensor's offsets run past the end.
  write_safetensors(p, {{"first", pattern(DType::f32, {4})}, {"second", pattern(DType::f32, {64})}});
  fs::resize_file(p, fs::file_size(p) - 10);
  e = open_error(ErrorKind::Parse);
  EXPECT_HAS(e, "'second'");
  EXPECT_HAS(e, "truncated");
  EXPECT_HAS(error_of([&] { SafetensorsFile::open(dir / "missing.safetensors"); }, ErrorKind::Io), "missing");
}

TEST(HfConfig, ParsesGpt2AndLlama) {
  ModelConfig g = parse_model_config(
      R"({"model_type":"gpt2","n_embd":64,"n_layer":2,"n_head":4,"n_positions":128,"vocab_size":256,
          "n_inner":null,"eos_token_id":50256,"bos_token_id":50256,"dtype":"float16"})", "g.json");
  EXPECT_EQ(g.hidden, 64);
  EXPECT_EQ(g.intermediate, 256);
  EXPECT_EQ(g.head_dim, 16);
  EXPECT_EQ(g.kv_heads, 4);
  EXPECT_TRUE(g.tie_embeddings);
  EXPECT_EQ(g.activation, "gelu_new");
  EXPECT_EQ(g.dtype, DType::f16);
  EXPECT_EQ(g.eos_ids, std::vector<int64_t>{50256});

  // transformers 5 style: rope_theta inside rope_parameters.
  ModelConfig l = parse_model_config(
      R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,
          "num_key_value_heads":2,"intermediate_size":128,"vocab_size":256,"head_dim":32,
          "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,
          "high_freq_factor":4.0,"original_max_position_embeddings":8192},"eos_token_id":[1,2],"torch_dtype":"bfloat16"})",
      "l.json");
  EXPECT_EQ(l.kv_heads, 2);
  EXPECT_EQ(l.head_dim, 32);
  EXPECT_DOUBLE_EQ(l.rope_theta, 500000.0);
  ASSERT_TRUE(l.rope_scaling.has_value());
  EXPECT_EQ(l.rope_scaling->original_max_positions, 8192);
  EXPECT_FALSE(l.tie_embeddings);
  EXPECT_EQ(l.eos_ids, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(l.dtype, DType::bf16);
  EXPECT_FALSE(l.bos_id.has_value());

  // transformers 4 style: top-level rope_theta, rope_scaling with "type", or default.
  ModelConfig old = parse_model_config(
      R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,
          "vocab_size":256,"rope_theta":1e6,"rope_scaling":{"type":"llama3","factor":32.0}})", "o.json");
  EXPECT_DOUBLE_EQ(old.rope_theta, 1e6);
  EXPECT_EQ(old.kv_heads, 4);
  EXPECT_EQ(old.head_dim, 16);
  EXPECT_DOUBLE_EQ(old.rope_scaling->factor, 32.0);
  ModelConfig plain = parse_model_config(
      R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,"num_attention_heads":4,"intermediate_size":128,
          "vocab_size":256,"rope_parameters":{"rope_type":"default","rope_theta":10000.0}})", "p.json");
  EXPECT_FALSE(plain.rope_scaling.has_value());
}

TEST(HfConfig, ErrorsNameFieldAndFile) {
  std::string e = error_of([] { parse_model_config(R"({"model_type":"gpt2","n_embd":64})", "dir/config.json"); },
                           ErrorKind::Parse);
  EXPECT_HAS(e, "dir/config.json");
  EXPECT_HAS(e, "'vocab_size'");
  e = error_of([] { parse_model_config(R"({"model_type":"bert"})", "c.json"); }, ErrorKind::Unsupported);
  EXPECT_HAS(e, "gpt2, llama");
  e = error_of([] { parse_model_config(R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,
      "num_attention_heads":4,"num_key_value_heads":3,"intermediate_size":8,"vocab_size":9})", "c.json"); },
               ErrorKind::Parse);
  EXPECT_HAS(e, "num_key_value_heads");
  e = error_of([] { parse_model_config(R"({"model_type":"llama","hidden_size":64,"num_hidden_layers":2,
      "num_attention_heads":4,"intermediate_size":8,"vocab_size":9,"rope_scaling":{"rope_type":"yarn"}})", "c.json"); },
               ErrorKind::Unsupported);
  EXPECT_HAS(e, "yarn");
}

TEST(HfConfig, PresetsSetAndJsonRoundTrip) {
  for (auto [type, preset] : {std::pair{"gpt2", "tiny"}, {"gpt2", "gpt2-124m"}, {"llama", "tiny"}, {"llama", "llama3-8b"}}) {
    ModelConfig c = preset_config(type, preset);
    ModelConfig back = parse_model_config(model_config_json(c), "round trip");
    EXPECT_EQ(back.hidden, c.hidden) << preset;
    EXPECT_EQ(back.kv_heads, c.kv_heads) << preset;
    EXPECT_EQ(back.rope_scaling.has_value(), c.rope_scaling.has_value()) << preset;
    EXPECT_EQ(back.eos_ids, c.eos_ids) << preset;
    EXPECT_EQ(back.tie_embeddings, c.tie_embeddings) << preset;
  }
  ModelConfig big = preset_config("llama", "llama3-8b");
  EXPECT_EQ(big.intermediate, 14336);
  EXPECT_EQ(big.vocab_size, 128256);
  EXPECT_DOUBLE_EQ(big.rope_theta, 500000.0);
  ModelConfig c = preset_config("llama", "tiny");
  set_config_field(c, "hidden_size", "128");
  EXPECT_EQ(c.head_dim, 32);  // derived again
  set_config_field(c, "rope_theta", "10000");
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  EXPECT_TRUE(c.rope_scaling.has_value());
  set_config_field(c, "rope_scaling", "none");
  EXPECT_FALSE(c.rope_scaling.has_value());
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  set_config_field(c, "tie_word_embeddings", "true");
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_THROW(set_config_field(c, "num_key_value_heads", "3"), Error);
}

TEST(HfConfig, ExpectedTensorsMatchSavePretrained) {
  // Counts and names as transformers 5.24's save_pretrained writes the tiny models.
  auto g = expected_tensors(preset_config("gpt2", "tiny"));
  EXPECT_EQ(g.size(), 28u);
  EXPECT_EQ(g[0].name, "transformer.wte.weight");
  EXPECT_EQ(g[4].name, "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(g[4].shape, (Shape{64, 192}));
  EXPECT_EQ(g.back().name, "transformer.ln_f.bias");
  auto l = expected_tensors(preset_config("llama", "tiny"));
  EXPECT_EQ(l.size(), 21u);
  EXPECT_EQ(l[3].name, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(l[3].shape, (Shape{32, 64}));
  EXPECT_EQ(l.back().name, "lm_head.weight");
  ModelConfig biased = preset_config("llama", "tiny");
  biased.attention_bias = biased.mlp_bias = true;
  EXPECT_EQ(expected_tensors(biased).size(), 21u + 2 * 7);
}

TEST(HfCheckpoint, ShardedEqualsSingleAndValidates) {
  TempDir dir;
  ModelConfig cfg = preset_config("llama", "tiny");
  write_random_checkpoint(cfg, DType::bf16, 7, dir / "one");
  write_random_checkpoint(cfg, DType::bf16, 7, dir / "many", 20000);
  Checkpoint one = Checkpoint::open(dir / "one"), many = Checkpoint::open(dir / "many");
  EXPECT_TRUE(fs::exists(dir / "many/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(dir / "many/model.safetensors"));
  ASSERT_EQ(one.names(), many.names());
  for (const std::string& n : one.names()) EXPECT_TRUE(same_bytes(one.tensor(n), many.tensor(n))) << n;
  EXPECT_NE(many.file_of("lm_head.weight"), many.file_of("model.embed_tokens.weight"));
  ModelConfig back = load_model_config(dir / "many");
  EXPECT_EQ(back.dtype, DType::bf16);
  validate(back, many);
  // Norm weights are ones, projections small and not all equal.
  EXPECT_EQ(one.tensor("model.norm.weight").cast(DType::f32).data<float>()[5], 1.0f);
  Tensor q = one.tensor("model.layers.0.self_attn.q_proj.weight").cast(DType::f32);
  EXPECT_NE(q.data<float>()[0], q.data<float>()[1]);
  EXPECT_LT(std::abs(q.data<float>()[0]), 0.2f);
  Tensor rows = many.slice("model.embed_tokens.weight", 0, 10, 3);
  EXPECT_EQ(rows.shape(), (Shape{3, 64}));
}

TEST(HfCheckpoint, MissingShardAndMissingTensorNameBoth) {
  TempDir dir;
  write_random_checkpoint(preset_config("gpt2", "tiny"), DType::f32, 1, dir / "c", 30000);
  Checkpoint ok = Checkpoint::open(dir / "c");
  const std::string shard = ok.file_of("transformer.ln_f.weight");
  // Older GPT-2 checkpoints lack the `transformer.` prefix; lookups fall back.
  EXPECT_TRUE(ok.has("transformer.h.0.ln_1.weight"));

  // An index naming a tensor its shard lacks.
  nlohmann::json index = nlohmann::json::parse(std::ifstream(dir / "c/model.safetensors.index.json"));
  index["weight_map"]["transformer.h.9.ln_1.weight"] = fs::path(shard).filename().string();
  std::ofstream(dir / "c/model.safetensors.index.json") << index.dump();
  std::string e = error_of([&] { Checkpoint::open(dir / "c"); }, ErrorKind::Parse);
  EXPECT_HAS(e, "'transformer.h.9.ln_1.weight'");
  EXPECT_HAS(e, shard);

  fs::remove(shard);
  e = error_of([&] { Checkpoint::open(dir / "c"); }, ErrorKind::Io);
  EXPECT_HAS(e, shard);
  EXPECT_HAS(e, "missing");

  fs::create_directories(dir / "pt");
  std::ofstream(dir / "pt/pytorch_model.bin") << "pickle";
  EXPECT_HAS(error_of([&] { Checkpoint::open(dir / "pt"); }, ErrorKind::Unsupported), "safe_serialization");
  EXPECT_HAS(error_of([&] { Checkpoint::open(dir / "nowhere"); }, ErrorKind::Io), "nowhere");
}

TEST(HfCheckpoint, ValidateNamesTensorShapeAndFile) {
  TempDir dir;
  ModelConfig cfg = preset_config("llama", "tiny");
  write_random_checkpoint(cfg, DType::f32, 3, dir / "c");
  Checkpoint ckpt = Checkpoint::open(dir / "c");
  ModelConfig wrong = cfg;
  wrong.intermediate = 256;
  std::string e = error_of([&] { validate(wrong, ckpt); }, ErrorKind::Shape);
  EXPECT_HAS(e, "'model.layers.0.mlp.gate_proj.weight'");
  EXPECT_HAS(e, "[128,64]");
  EXPECT_HAS(e, "[256,64]");
  EXPECT_HAS(e, "model.safetensors");
  ModelConfig biased = cfg;
  biased.attention_bias = true;
  EXPECT_HAS(error_of([&] { validate(biased, ckpt); }, ErrorKind::Shape), "'model.layers.0.self_attn.q_proj.bias'");

  // One weight of another dtype, and an integer weight.
  std::vector<std::pair<std::string, Tensor>> ts;
  for (const std::string& n : ckpt.names()) ts.emplace_back(n, ckpt.tensor(n).clone());
  ts[3].second = ts[3].second.cast(DType::f16);
  write_safetensors(dir / "c/model.safetensors", ts, {{"format", "pt"}});
  e = error_of([&] { validate(cfg, Checkpoint::open(dir / "c")); }, ErrorKind::Shape);
  EXPECT_HAS(e, "'" + ts[3].first + "'");
  EXPECT_HAS(e, "float16");
}
