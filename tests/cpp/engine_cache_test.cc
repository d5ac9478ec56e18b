// The engine cache's key and what an entry records: a key names the target's
// architecture ("cpu", "sm_90"), and an entry built for another key (another
// GPU, another model, or no key at all) is rebuilt, not trusted. No GPU is
// needed: a foreign arch is written into an entry by hand.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "engine/cache.h"
#include "engine/target.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {
// Protocol-buffer wire format, enough for a one-node ONNX model.
std::string varint(uint64_t v) {
  std::string out;
  for (; v >= 0x80; v >>= 7) out += char(v | 0x80);
  return out + char(v);
}
std::string field(int number, uint64_t v) { return varint(uint64_t(number) << 3) + varint(v); }
std::string field(int number, const std::string& bytes) { return varint(uint64_t(number) << 3 | 2) + varint(bytes.size()) + bytes; }

// A float [2, 3] tensor's ValueInfoProto.
std::string value_info(const std::string& name) {
  std::string shape = field(1, field(1, 2)) + field(1, field(1, 3));
  return field(1, name) + field(2, field(1, field(1, 1) + field(2, shape)));
}

// y = OP(x), x and y float [2, 3], opset 17.
void write_model(const std::string& path, const std::string& op) {
  std::string node = field(1, "x") + field(2, "y") + field(3, "n") + field(4, op);
  std::string graph = field(1, node) + field(2, "g") + field(11, value_info("x")) + field(12, value_info("y"));
  std::ofstream(path, std::ios::binary) << field(1, 8) + field(8, field(2, 17)) + field(7, graph);
}

class EngineCacheEntry : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = (fs::temp_directory_path() / ("tessera_ect_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir);
    fs::create_directories(dir);
    model = dir + "/relu.onnx";
    write_model(model, "Relu");
    opts.dir = dir + "/cache";
    opts.log = [this](const std::string& line) { logs += line + "\n"; };
  }
  void TearDown() override { fs::remove_all(dir); }

  std::string entry() const { return engine_cache_path(opts.dir, model, engine_cache_key(model, Settings{})); }
  // Put `e` at this model's entry path, recording `key`.
  void plant(Engine e, const CacheKey& key) {
    e.set_cache_key(cache_key_json(key));
    e.save(entry());
  }
  // The cached engine's y for x = [-1, 2, -3, 4, -5, 6]: Relu keeps the positives.
  void expect_relu(const Engine& e) {
    Tensor x = Tensor::from<float>(DType::f32, {2, 3}, {-1, 2, -3, 4, -5, 6});
    Tensor y = e.run({{"x", x}}).at("y");
    std::vector<float> want = {0, 2, 0, 4, 0, 6};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(y.data<float>()[i], want[i]) << i;
  }
  size_t count(const std::string& text) const {
    size_t n = 0;
    for (size_t p = logs.find(text); p != std::string::npos; p = logs.find(text, p + 1)) ++n;
    return n;
  }

  std::string dir, model, logs;
  EngineCacheOptions opts;
};
}  // namespace

TEST(EngineCacheKey, ArchIsPartOfTheKey) {
  std::string dir = (fs::temp_directory_path() / ("tessera_eck_" + std::to_string(::getpid()))).string();
  fs::create_directories(dir);
  std::string model = dir + "/m.onnx";
  write_model(model, "Relu");
  CacheKey sm80 = make_cache_key(model, Settings{}, "sm_80"), sm90 = make_cache_key(model, Settings{}, "sm_90");
  EXPECT_NE(cache_key_digest(sm80), cache_key_digest(sm90));
  EXPECT_NE(cache_key_digest(make_cache_key(model, Settings{}, "cpu")), cache_key_digest(sm90));
  EXPECT_EQ(cache_key_digest(sm90), cache_key_digest(make_cache_key(model, Settings{}, "sm_90")));
  EXPECT_EQ(cache_key_digest(sm90).size(), 64u);
  EXPECT_EQ(cache_key_mismatch(sm80, sm90), "built for sm_80, not sm_90");
  EXPECT_EQ(cache_key_mismatch(sm90, sm90), "");
  EXPECT_EQ(engine_cache_key(model, Settings{}), cache_key_digest(make_cache_key(model, Settings{}, "cpu")));
  fs::remove_all(dir);
}

TEST(EngineCacheKey, TargetArch) {
  EXPECT_EQ(target_arch(Settings{}), "cpu");
  Settings cuda;
  cuda.target = "cuda";
  try {
    EXPECT_EQ(target_arch(cuda).rfind("sm_", 0), 0u);  // a GPU is visible: its compute capability
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda"), std::string::npos) << e.what();  // none: a clear error
  }
  Settings bad;
  bad.target = "tpu";
  EXPECT_THROW(target_arch(bad), Error);
}

TEST_F(EngineCacheEntry, BuiltOnceThenLoaded) {
  expect_relu(load_or_build_cached(model, Settings{}, opts));
  expect_relu(load_or_build_cached(model, Settings{}, opts));
  EXPECT_EQ(count("built engine"), 1u) << logs;
  EXPECT_EQ(count("loaded engine from cache"), 1u) << logs;
  EXPECT_EQ(Engine::load(entry()).cache_key(), cache_key_json(make_cache_key(model, Settings{}, "cpu")));
}

TEST_F(EngineCacheEntry, EntryOfAnotherArchIsRebuilt) {
  load_or_build_cached(model, Settings{}, opts);
  plant(Engine::load(entry()), make_cache_key(model, Settings{}, "sm_90"));
  logs.clear();
  expect_relu(load_or_build_cached(model, Settings{}, opts));
  EXPECT_EQ(count("was built for sm_90, not cpu; rebuilding"), 1u) << logs;
  EXPECT_EQ(count("built engine"), 1u) << logs;
  logs.clear();
  load_or_build_cached(model, Settings{}, opts);
  EXPECT_EQ(count("loaded engine from cache"), 1u) << logs;
}

TEST_F(EngineCacheEntry, EntryOfAnotherModelIsRebuilt) {
  std::string other = dir + "/neg.onnx";
  write_model(other, "Neg");
  fs::create_directories(opts.dir);
  plant(Engine::build_onnx(other, Settings{}), make_cache_key(other, Settings{}, "cpu"));
  expect_relu(load_or_build_cached(model, Settings{}, opts));
  EXPECT_EQ(count("was built for another model; rebuilding"), 1u) << logs;
  EXPECT_EQ(count("built engine"), 1u) << logs;
}

TEST_F(EngineCacheEntry, EntryWithoutAKeyIsRebuilt) {
  fs::create_directories(opts.dir);
  Engine::build_onnx(model, Settings{}).save(entry());  // what `tessera build` writes
  expect_relu(load_or_build_cached(model, Settings{}, opts));
  EXPECT_EQ(count("records no key"), 1u) << logs;
  EXPECT_EQ(count("built engine"), 1u) << logs;
}

TEST_F(EngineCacheEntry, TargetThatCannotBeBuiltHereWritesNothing) {
  Settings cuda;
  cuda.target = "cuda";
  try {
    target_arch(cuda);
    GTEST_SKIP() << "a GPU is visible";
  } catch (const Error&) {
  }
  EXPECT_THROW(load_or_build_cached(model, cuda, opts), Error);
  EXPECT_FALSE(fs::exists(opts.dir));
}
