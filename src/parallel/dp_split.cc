#include "parallel/dp_split.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/npy.h"

namespace tessera::parallel {

Part split_range(int64_t n, int rank, int world, bool apply_padding) {
  TSR_CHECK(world > 0, ErrorKind::InvalidArgument, "[dp split] world size must be positive, got ", world);
  TSR_CHECK(rank >= 0 && rank < world, ErrorKind::InvalidArgument, "[dp split] rank ", rank, " is outside [0, ", world, ")");
  TSR_CHECK(n >= 0, ErrorKind::InvalidArgument, "[dp split] item count must not be negative, got ", n);
  int64_t per = n / world, extras = n % world;
  Part p;
  p.begin = rank * per + std::min<int64_t>(rank, extras);
  p.end = p.begin + per + (rank < extras ? 1 : 0);
  // Nothing to repeat when there are no items at all.
  if (apply_padding && n > 0) p.padding = per + (extras > 0 ? 1 : 0) - p.real();
  return p;
}

std::vector<Part> split_ranges(int64_t n, int world, bool apply_padding) {
  TSR_CHECK(world > 0, ErrorKind::InvalidArgument, "[dp split] world size must be positive, got ", world);
  std::vector<Part> parts;
  for (int r = 0; r < world; ++r) parts.push_back(split_range(n, r, world, apply_padding));
  return parts;
}

namespace {
size_t row_bytes(const Tensor& t) { return t.dim(0) == 0 ? 0 : t.nbytes() / size_t(t.dim(0)); }

void check_batched(const Tensor& t, const std::string& what) {
  TSR_CHECK(t.rank() >= 1, ErrorKind::InvalidArgument, what, ": a scalar has no batch dim to split");
}
}  // namespace

Tensor take_rows(const Tensor& t, int64_t begin, int64_t end, int64_t repeat_last, const std::string& what) {
  check_batched(t, what);
  int64_t n = t.dim(0);
  TSR_CHECK(0 <= begin && begin <= end && end <= n && repeat_last >= 0, ErrorKind::InvalidArgument, what,
            ": rows [", begin, ", ", end, ") + ", repeat_last, " repeats do not fit its ", n, " rows");
  TSR_CHECK(repeat_last == 0 || end >= 1, ErrorKind::InvalidArgument, what, ": no row to repeat");
  Shape shape = t.shape();
  shape[0] = end - begin + repeat_last;
  Tensor out = Tensor::empty(t.dtype(), shape);
  size_t rb = row_bytes(t);
  auto* dst = static_cast<char*>(out.raw());
  const auto* src = static_cast<const char*>(t.raw());
  if (end > begin) std::memcpy(dst, src + size_t(begin) * rb, size_t(end - begin) * rb);
  for (int64_t i = 0; i < repeat_last; ++i) std::memcpy(dst + size_t(end - begin + i) * rb, src + size_t(end - 1) * rb, rb);
  return out;
}

Tensor take_part(const Tensor& t, const Part& p, const std::string& what) {
  return take_rows(t, p.begin, p.end, p.padding, what);
}

Tensor concat_rows(const std::vector<Tensor>& parts, const std::string& what) {
  TSR_CHECK(!parts.empty(), ErrorKind::InvalidArgument, what, ": nothing to concatenate");
  Shape shape = parts[0].shape();
  check_batched(parts[0], what);
  shape[0] = 0;
  for (const Tensor& p : parts) {
    Shape trailing(p.shape().begin() + (p.rank() ? 1 : 0), p.shape().end());
    TSR_CHECK(p.rank() >= 1 && p.dtype() == parts[0].dtype() && trailing == Shape(shape.begin() + 1, shape.end()),
              ErrorKind::InvalidArgument, what, ": cannot concatenate ", dtype_name(p.dtype()), to_string(p.shape()),
              " to ", dtype_name(parts[0].dtype()), to_string(parts[0].shape()), " along dim 0");
    shape[0] += p.dim(0);
  }
  Tensor out = Tensor::empty(parts[0].dtype(), shape);
  auto* dst = static_cast<char*>(out.raw());
  for (const Tensor& p : parts) {
    if (p.nbytes()) std::memcpy(dst, p.raw(), p.nbytes());
    dst += p.nbytes();
  }
  return out;
}

Tensor split_tensor(const Tensor& t, int rank, int world, bool apply_padding, const std::string& what) {
  check_batched(t, what);
  return take_part(t, split_range(t.dim(0), rank, world, apply_padding), what);
}

int64_t batch_size(const std::map<std::string, Tensor>& arrays, const std::string& what) {
  TSR_CHECK(!arrays.empty(), ErrorKind::InvalidArgument, what, ": no arrays to split");
  const auto& [first, t0] = *arrays.begin();
  for (const auto& [name, t] : arrays) {
    check_batched(t, what + " array '" + name + "'");
    TSR_CHECK(t.dim(0) == t0.dim(0), ErrorKind::InvalidArgument, what, ": arrays disagree on the batch dim (dim 0): '",
              first, "' has ", t0.dim(0), " rows, '", name, "' has ", t.dim(0));
  }
  return t0.dim(0);
}

BatchPart split_batch(const std::map<std::string, Tensor>& arrays, int rank, int world, bool apply_padding,
                      const std::string& what) {
  BatchPart out;
  out.part = split_range(batch_size(arrays, what), rank, world, apply_padding);
  for (const auto& [name, t] : arrays) out.arrays[name] = take_part(t, out.part, what + " array '" + name + "'");
  return out;
}

BatchPart split_npz(const std::string& path, int rank, int world, bool apply_padding) {
  return split_batch(read_npz(path), rank, world, apply_padding, path);
}

std::vector<std::string> split_lines(const std::vector<std::string>& lines, int rank, int world, bool apply_padding) {
  Part p = split_range(int64_t(lines.size()), rank, world, apply_padding);
  std::vector<std::string> out(lines.begin() + p.begin, lines.begin() + p.end);
  for (int64_t i = 0; i < p.padding; ++i) out.push_back(lines[size_t(p.end - 1)]);
  return out;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::string text = read_file(path);
  std::vector<std::string> lines;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line = text.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return lines;
}

}  // namespace tessera::parallel
