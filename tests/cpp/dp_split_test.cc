// Data-parallel splitting (Accelerate's split_between_processes): ranges,
// tensors along dim 0, .npz batches, lines, and the errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/npy.h"
#include "parallel/dp_split.h"

using namespace tessera;
using namespace tessera::parallel;
namespace fs = std::filesystem;

namespace {
std::string tmp(const std::string& name) {
  return (fs::temp_directory_path() / ("tessera_dp_" + std::to_string(::getpid()) + "_" + name)).string();
}

Tensor iota_rows(int64_t n, int64_t cols) {
  std::vector<float> v(size_t(n * cols));
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  return Tensor::from(DType::f32, {n, cols}, v);
}

std::vector<float> values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}
}  // namespace

TEST(DpSplit, HandWorkedCases) {
  auto p = split_ranges(7, 3, false);
  EXPECT_EQ(p[0].begin, 0); EXPECT_EQ(p[0].end, 3);
  EXPECT_EQ(p[1].begin, 3); EXPECT_EQ(p[1].end, 5);
  EXPECT_EQ(p[2].begin, 5); EXPECT_EQ(p[2].end, 7);
  auto q = split_ranges(7, 3, true);
  EXPECT_EQ(q[0].padding, 0); EXPECT_EQ(q[1].padding, 1); EXPECT_EQ(q[2].padding, 1);
  auto d = split_ranges(8, 4, true);
  for (int r = 0; r < 4; ++r) {
    EXPECT_EQ(d[size_t(r)].begin, 2 * r);
    EXPECT_EQ(d[size_t(r)].rows(), 2);
    EXPECT_EQ(d[size_t(r)].padding, 0);
  }
}

// Every n and w: contiguous chunks in rank order covering [0, n), sizes
// floor or ceil of n / w with the larger ones first; padding evens them to ceil.
TEST(DpSplit, ContiguousInRankOrderForEveryCount) {
  for (int w = 1; w <= 4; ++w)
    for (int64_t n = 0; n <= 13; ++n)
      for (bool pad : {false, true}) {
        auto parts = split_ranges(n, w, pad);
        int64_t next = 0, ceil = (n + w - 1) / w;
        for (int r = 0; r < w; ++r) {
          const Part& p = parts[size_t(r)];
          EXPECT_EQ(p.begin, next) << n << "/" << w;
          EXPECT_EQ(p.real(), n / w + (r < n % w ? 1 : 0)) << n << "/" << w << " rank " << r;
          EXPECT_EQ(p.rows(), pad ? ceil : p.real()) << n << "/" << w << " rank " << r;
          next = p.end;
        }
        EXPECT_EQ(next, n);
      }
}

TEST(DpSplit, TensorAlongBatchRepeatsLastRowWhenPadded) {
  Tensor t = iota_rows(5, 2);  // rows {0,1} {2,3} ... {8,9}
  EXPECT_EQ(values(split_tensor(t, 0, 2, false, "x")), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(values(split_tensor(t, 1, 2, false, "x")), (std::vector<float>{6, 7, 8, 9}));
  EXPECT_EQ(values(split_tensor(t, 1, 2, true, "x")), (std::vector<float>{6, 7, 8, 9, 8, 9}));
  EXPECT_EQ(split_tensor(t, 1, 2, true, "x").shape(), (Shape{3, 2}));
}

TEST(DpSplit, MoreRanksThanItems) {
  Tensor t = iota_rows(2, 1);
  EXPECT_EQ(split_tensor(t, 3, 4, false, "x").shape(), (Shape{0, 1}));
  // An empty chunk pads with the input's last item.
  EXPECT_EQ(values(split_tensor(t, 3, 4, true, "x")), (std::vector<float>{1}));
  EXPECT_EQ(split_range(0, 1, 4, true).rows(), 0);  // nothing to repeat
}

TEST(DpSplit, ConcatOfPartsRestoresTheBatch) {
  Tensor t = iota_rows(9, 3);
  for (int w = 1; w <= 4; ++w) {
    std::vector<Tensor> parts;
    for (int r = 0; r < w; ++r) {
      Part p = split_range(9, r, w, true);
      parts.push_back(take_rows(take_part(t, p, "x"), 0, p.real(), 0, "x"));  // drop the padding
    }
    EXPECT_EQ(values(concat_rows(parts, "x")), values(t)) << w;
  }
}

TEST(DpSplit, NpzBatchSplitsEveryArray) {
  std::string path = tmp("batch.npz");
  write_npz(path, {{"x", iota_rows(7, 2)}, {"ids", Tensor::vector_i64({10, 11, 12, 13, 14, 15, 16})}});
  BatchPart b = split_npz(path, 2, 3, true);
  EXPECT_EQ(b.part.begin, 5);
  EXPECT_EQ(b.part.padding, 1);
  EXPECT_EQ(b.arrays.at("ids").to_i64_vector(), (std::vector<int64_t>{15, 16, 16}));
  EXPECT_EQ(values(b.arrays.at("x")), (std::vector<float>{10, 11, 12, 13, 12, 13}));
  fs::remove(path);
}

TEST(DpSplit, NpzArraysThatDisagreeAreNamed) {
  std::string path = tmp("bad.npz");
  write_npz(path, {{"a", iota_rows(7, 2)}, {"b", iota_rows(6, 2)}});
  std::string e = error_of([&] { split_npz(path, 0, 2, false); });
  EXPECT_NE(e.find(path), std::string::npos) << e;
  EXPECT_NE(e.find("'a' has 7 rows, 'b' has 6"), std::string::npos) << e;
  fs::remove(path);
}

TEST(DpSplit, LinesOfAPromptsFile) {
  std::string path = tmp("prompts.txt");
  std::ofstream(path) << "one\r\ntwo\nthree\n\nfive\n";
  std::vector<std::string> lines = read_lines(path);
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "three", "", "five"}));
  EXPECT_EQ(split_lines(lines, 0, 2, false), (std::vector<std::string>{"one", "two", "three"}));
  EXPECT_EQ(split_lines(lines, 1, 2, false), (std::vector<std::string>{"", "five"}));
  EXPECT_EQ(split_lines(lines, 1, 2, true), (std::vector<std::string>{"", "five", "five"}));
  EXPECT_EQ(split_lines(lines, 3, 4, false), (std::vector<std::string>{"five"}));  // 2, 1, 1, 1
  EXPECT_EQ(split_lines(lines, 3, 4, true), (std::vector<std::string>{"five", "five"}));
  fs::remove(path);
}

TEST(DpSplit, ErrorsNameTheThing) {
  EXPECT_NE(error_of([] { split_range(5, 0, 0, false); }).find("world size must be positive, got 0"), std::string::npos);
  EXPECT_NE(error_of([] { split_ranges(5, -2, false); }).find("got -2"), std::string::npos);
  EXPECT_NE(error_of([] { split_range(5, 3, 3, false); }).find("rank 3 is outside [0, 3)"), std::string::npos);
  EXPECT_NE(error_of([] { split_range(-1, 0, 1, false); }).find("got -1"), std::string::npos);
  EXPECT_NE(error_of([] { split_tensor(Tensor::scalar_i64(3), 0, 2, false, "input 'x'"); }).find("input 'x': a scalar"),
            std::string::npos);
  std::map<std::string, Tensor> mixed{{"x", iota_rows(4, 1)}, {"s", Tensor::scalar_i64(1)}};
  EXPECT_NE(error_of([&] { batch_size(mixed, "inputs"); }).find("array 's'"), std::string::npos);
  EXPECT_NE(error_of([] { concat_rows({iota_rows(2, 2), iota_rows(2, 3)}, "output 'y'"); }).find("output 'y'"),
            std::string::npos);
}
