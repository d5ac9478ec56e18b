// The engine cache's key and paths, SHA-256 against FIPS 180-4's examples,
// and micro-batched runs of a fixed-batch engine (one process; the gather
// over ranks is tested end to end in tests/python/test_data_parallel.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/sha256.h"
#include "engine/cache.h"
#include "engine/data_parallel.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {
std::string sha(const std::string& s) {
  Sha256 h;
  h.update(s);
  return h.hex_digest();
}

std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("tessera_dpt_" + std::to_string(::getpid()) + "_" + name)).string();
}

// The smallest valid ModelProto: ir_version = 8 (field 1, varint).
void write_tiny_model(const std::string& path, char ir_version = 8) { std::ofstream(path, std::ios::binary) << '\x08' << ir_version; }

// y = Relu(x) * 2 with x of shape [batch, 3].
Graph relu2(int64_t batch) {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {batch, 3});
  g.inputs.push_back(x);
  Value* two = g.add_constant("two", Tensor::from<float>(DType::f32, {}, {2}));
  Value* r = g.add_value("r", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Relu", "relu", {x}, {r});
  g.add_node("Mul", "mul", {r, two}, {y});
  g.outputs.push_back(y);
  return g;
}

Tensor rows(int64_t n) {
  Tensor t = Tensor::empty(DType::f32, {n, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = float(i % 7) - 3.0f;
  return t;
}
}  // namespace

TEST(Sha256, FipsExamples) {
  EXPECT_EQ(sha(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // a million 'a', fed in uneven pieces
  std::string piece(997, 'a');
  size_t left = 1000000;
  for (; left >= piece.size(); left -= piece.size()) h.update(piece);
  h.update(std::string(left, 'a'));
  EXPECT_EQ(h.hex_digest(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(EngineCache, KeyFollowsBytesAndSettingsNotPath) {
  std::string a = tmp("a.onnx"), b = tmp("b.onnx");
  write_tiny_model(a);
  write_tiny_model(b);
  Settings s;
  std::string key = engine_cache_key(a, s);
  EXPECT_EQ(key.size(), 64u);
  EXPECT_EQ(engine_cache_key(b, s), key);  // same bytes elsewhere: same engine
  Settings pinned = s;
  pinned.input_shapes["x"] = {8, 3};
  EXPECT_NE(engine_cache_key(a, pinned), key);
  Settings unfused = s;
  unfused.fuse_distributed_ops = false;
  EXPECT_NE(engine_cache_key(a, unfused), key);
  write_tiny_model(b, 9);
  EXPECT_NE(engine_cache_key(b, s), key);
  fs::remove(a);
  fs::remove(b);
}

TEST(EngineCache, ErrorsNameTheFile) {
  std::string missing = tmp("missing.onnx");
  try {
    engine_cache_key(missing, Settings{});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
}

TEST(EngineCache, PathKeepsAReadableStem) {
  std::string key(64, 'f');
  EXPECT_EQ(engine_cache_path("/c", "/m/my model.onnx", key), "/c/my_model-" + std::string(32, 'f') + ".tsr");
}

TEST(EngineCache, DefaultDirFromEnvironment) {
  std::string old = std::getenv("TESSERA_CACHE") ? std::getenv("TESSERA_CACHE") : "";
  ::setenv("TESSERA_CACHE", "/some/cache", 1);
  EXPECT_EQ(default_cache_dir(), "/some/cache");
  ::unsetenv("TESSERA_CACHE");
  if (const char* home = std::getenv("HOME")) {
    EXPECT_EQ(default_cache_dir(), std::string(home) + "/.cache/tessera");
  }
  if (!old.empty()) ::setenv("TESSERA_CACHE", old.c_str(), 1);
}

TEST(DataParallel, EngineBatchSize) {
  EXPECT_EQ(engine_batch_size(Engine::build(relu2(kUnknownDim), Settings{}).graph()), kUnknownDim);
  EXPECT_EQ(engine_batch_size(Engine::build(relu2(4), Settings{}).graph()), 4);
}

TEST(DataParallel, MicroBatchesOfAFixedBatchEngine) {
  Engine fixed = Engine::build(relu2(4), Settings{});
  Engine any = Engine::build(relu2(kUnknownDim), Settings{});
  for (int64_t n : {1, 3, 4, 5, 9, 12}) {
    std::vector<std::pair<int64_t, int64_t>> progress;
    Tensor x = rows(n);
    Tensor a = run_in_micro_batches(fixed, {{"x", x}}, [&](int64_t k, int64_t t) { progress.emplace_back(k, t); }).at("y");
    Tensor b = run_in_micro_batches(any, {{"x", x}}).at("y");
    ASSERT_EQ(a.shape(), (Shape{n, 3}));
    for (int64_t i = 0; i < a.numel(); ++i) EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]) << n << " " << i;
    int64_t total = (n + 3) / 4;
    EXPECT_EQ(progress.size(), size_t(total > 1 ? total : 0)) << n;
    if (total > 1) {
      EXPECT_EQ(progress.back(), std::make_pair(total, total));
    }
  }
}

TEST(DataParallel, WorldOfOneRunsTheWholeBatch) {
  Engine fixed = Engine::build(relu2(4), Settings{});
  Tensor x = rows(7);
  Tensor y = run_data_parallel(fixed, {{"x", x}}, nullptr, DataParallelOptions{}).at("y");
  ASSERT_EQ(y.shape(), (Shape{7, 3}));
  for (int64_t i = 0; i < y.numel(); ++i) EXPECT_EQ(y.data<float>()[i], 2 * std::max(0.0f, x.data<float>()[i]));
}
