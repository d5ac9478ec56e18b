// Engine file round trip and its failure modes: corrupt, truncated, foreign,
// wrong inputs; and that a failed save leaves no file.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "tessera/tessera.h"

using namespace tessera;
namespace fs = std::filesystem;

namespace {

// y = Relu(x + b) * 2, with x of symbolic batch.
Graph small_graph() {
  Graph g;
  Value* x = g.add_value("x", DType::f32, {kUnknownDim, 3});
  g.inputs.push_back(x);
  Value* b = g.add_constant("b", Tensor::from<float>(DType::f32, {3}, {1, -2, 3}));
  Value* two = g.add_constant("two", Tensor::from<float>(DType::f32, {}, {2}));
  Value* s = g.add_value("s", DType::f32, {});
  Value* r = g.add_value("r", DType::f32, {});
  Value* y = g.add_value("y", DType::f32, {});
  g.add_node("Add", "add", {x, b}, {s});
  g.add_node("Relu", "relu", {s}, {r});
  g.add_node("Mul", "mul", {r, two}, {y});
  g.outputs.push_back(y);
  return g;
}

std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("tessera_test_" + std::to_string(::getpid()) + "_" + name)).string();
}

Tensor random_x(int64_t batch) {
  static std::mt19937 gen(std::random_device{}());
  std::normal_distribution<float> n;
  Tensor t = Tensor::empty(DType::f32, {batch, 3});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = n(gen);
  return t;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(Engine, SaveLoadRunMatches) {
  Engine e = Engine::build(small_graph(), Settings{});
  std::string path = tmp("rt.tsr");
  e.save(path);
  Engine l = Engine::load(path);
  Tensor x = random_x(5);
  Tensor a = e.run({{"x", x}}).at("y"), b = l.run({{"x", x}}).at("y");
  ASSERT_EQ(b.shape(), (Shape{5, 3}));
  const float bias[3] = {1, -2, 3};
  for (int64_t i = 0; i < b.numel(); ++i) {
    EXPECT_EQ(a.data<float>()[i], b.data<float>()[i]);
    EXPECT_FLOAT_EQ(b.data<float>()[i], 2 * std::max(0.0f, x.data<float>()[i] + bias[i % 3]));
  }
  fs::remove(path);
}

TEST(Engine, CorruptFileIsRefused) {
  std::string path = tmp("corrupt.tsr");
  Engine::build(small_graph(), Settings{}).save(path);
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(100);
  f.put('#');
  f.close();
  EXPECT_NE(error_of([&] { Engine::load(path); }).find("checksum"), std::string::npos);
  fs::resize_file(path, 80);
  EXPECT_NE(error_of([&] { Engine::load(path); }).find("truncated"), std::string::npos);
  fs::remove(path);
}

TEST(Engine, ForeignFileIsRefused) {
  std::string path = tmp("foreign.tsr");
  std::ofstream(path) << std::string(200, 'x');
  std::string msg = error_of([&] { Engine::load(path); });
  EXPECT_NE(msg.find("not a tessera engine"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  fs::remove(path);
  EXPECT_NE(error_of([&] { Engine::load(path); }).find("cannot open"), std::string::npos);
}

TEST(Engine, WrongInputsNameTheInput) {
  Engine e = Engine::build(small_graph(), Settings{});
  EXPECT_NE(error_of([&] { e.run({{"z", random_x(2)}}); }).find("unknown input 'z'"), std::string::npos);
  std::string shape = error_of([&] { e.run({{"x", Tensor::zeros(DType::f32, {2, 4})}}); });
  EXPECT_NE(shape.find("input 'x': expected shape float32[?,3], received [2,4]"), std::string::npos) << shape;
  std::string dtype = error_of([&] { e.run({{"x", Tensor::zeros(DType::f64, {2, 3})}}); });
  EXPECT_NE(dtype.find("expected dtype float32, received float64"), std::string::npos) << dtype;
  EXPECT_NE(error_of([&] { e.run({}); }).find("missing input 'x'"), std::string::npos);
}

TEST(Engine, FailedSaveLeavesNoFile) {
  std::string path = "/nonexistent-dir/model.tsr";
  EXPECT_NE(error_of([&] { Engine::build(small_graph(), Settings{}).save(path); }).find(path), std::string::npos);
  EXPECT_FALSE(fs::exists(path));
}

TEST(Engine, PinnedInputShapesPropagate) {
  // --shape replaces the symbolic batch dim; a shape that contradicts the model is refused.
  Graph g = small_graph();
  Settings s;
  s.input_shapes["x"] = {4, 3};
  Engine e = Engine::build(std::move(g), s);
  EXPECT_EQ(e.graph().outputs[0]->shape, (Shape{4, 3}));
  Settings bad;
  bad.input_shapes["x"] = {4, 5};
  EXPECT_NE(error_of([&] { Engine::build(small_graph(), bad); }).find("conflicts"), std::string::npos);
}

TEST(Npz, RoundTrip) {
  std::string path = tmp("a.npz");
  std::map<std::string, Tensor> m = {{"a", random_x(4)}, {"ids", Tensor::vector_i64({1, -2, 3})}};
  write_npz(path, m);
  auto back = read_npz(path);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_EQ(back["ids"].to_i64_vector(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_EQ(std::memcmp(back["a"].raw(), m["a"].raw(), m["a"].nbytes()), 0);
  fs::resize_file(path, 50);
  EXPECT_NE(error_of([&] { read_npz(path); }).find(path), std::string::npos);
  fs::remove(path);
}

TEST(Npy, TruncatedDataNamesFile) {
  std::string path = tmp("t.npy");
  write_npy(path, random_x(3));
  fs::resize_file(path, fs::file_size(path) - 4);
  std::string msg = error_of([&] { read_npy(path); });
  EXPECT_NE(msg.find("truncated .npy data"), std::string::npos) << msg;
  fs::remove(path);
}
