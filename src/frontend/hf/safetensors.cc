// safetensors reader (mmap + header validation) and writer (temp file +
// rename). See safetensors.h for the format; the checks mirror the reference
// Rust implementation's (offsets in range, no overlap, size = numel * dtype).
#include "frontend/hf/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace tessera::hf {

using json = nlohmann::json;

namespace {

// The reference implementation refuses headers over 100 MB; so do we, so a
// corrupt length fails cleanly instead of asking for gigabytes.
constexpr uint64_t kMaxHeaderBytes = 100u << 20;

const std::pair<const char*, DType> kCodes[] = {
    {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"F64", DType::f64}, {"I64", DType::i64},
    {"I32", DType::i32}, {"I8", DType::i8},   {"U8", DType::u8},     {"BOOL", DType::boolean},
};

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr) ::munmap(addr, size);
  }
};

std::shared_ptr<Mapping> map_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(ErrorKind::Io, path, ": cannot open (", std::strerror(errno), ")");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    fail(ErrorKind::Io, path, ": cannot stat (", std::strerror(errno), ")");
  }
  auto m = std::make_shared<Mapping>();
  m->size = size_t(st.st_size);
  if (m->size > 0) {
    // Private writable pages: a kernel that writes into a view gets its own
    // copy instead of a segfault; the file itself is never written.
    void* p = ::mmap(nullptr, m->size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      ::close(fd);
      fail(ErrorKind::Io, path, ": cannot mmap (", std::strerror(errno), ")");
    }
    m->addr = p;
  }
  ::close(fd);
  return m;
}

uint64_t read_le64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

Shape parse_shape(const json& j, const std::string& where) {
  if (!j.is_array()) fail(ErrorKind::Parse, where, ": 'shape' is not a list");
  Shape s;
  for (const json& d : j) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) fail(ErrorKind::Parse, where, ": bad extent ", d.dump(), " in shape");
    s.push_back(d.get<int64_t>());
  }
  return s;
}

// One header entry → TensorInfo with a data-relative offset; checks the size.
TensorInfo parse_entry(const json& e, const std::string& where, uint64_t data_size) {
  if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
    fail(ErrorKind::Parse, where, ": header entry needs dtype, shape and data_offsets");
  if (!e["dtype"].is_string()) fail(ErrorKind::Parse, where, ": 'dtype' is not a string");
  TensorInfo info;
  info.dtype = dtype_from_safetensors(e["dtype"].get<std::string>(), where);
  info.shape = parse_shape(e["shape"], where);
  const json& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail(ErrorKind::Parse, where, ": 'data_offsets' must be two non-negative integers");
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > data_size)
    fail(ErrorKind::Parse, where, ": data_offsets [", begin, ", ", end, ") outside the ", data_size,
         " data bytes (truncated file?)");
  uint64_t want = uint64_t(numel(info.shape)) * dtype_size(info.dtype);
  if (end - begin != want)
    fail(ErrorKind::Parse, where, ": holds ", end - begin, " bytes but ", dtype_name(info.dtype), " ",
         to_string(info.shape), " needs ", want);
  info.offset = size_t(begin);
  info.nbytes = size_t(want);
  return info;
}

std::map<std::string, std::string> parse_metadata(const json& m, const std::string& path) {
  if (!m.is_object()) fail(ErrorKind::Parse, path, ": '__metadata__' is not an object");
  std::map<std::string, std::string> out;
  for (auto& [k, v] : m.items()) {
    if (!v.is_string()) fail(ErrorKind::Parse, path, ": __metadata__ '", k, "' is not a string");
    out[k] = v.get<std::string>();
  }
  return out;
}

// Writes to `path`.tmp.<pid> and renames it over `path` once complete, so a
// failure (or a crash) never leaves a half-written checkpoint under the real name.
class AtomicFile {
 public:
  explicit AtomicFile(const std::string& path) : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
    out_.open(tmp_, std::ios::binary | std::ios::trunc);
    if (!out_) fail(ErrorKind::Io, path, ": cannot create (", std::strerror(errno), ")");
  }
  ~AtomicFile() {
    if (!done_) std::remove(tmp_.c_str());
  }
  void write(const void* p, size_t n) {
    out_.write(static_cast<const char*>(p), std::streamsize(n));
    if (!out_) fail(ErrorKind::Io, path_, ": write failed (disk full?)");
  }
  void commit() {
    out_.close();
    if (!out_) fail(ErrorKind::Io, path_, ": write failed");
    if (std::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail(ErrorKind::Io, path_, ": cannot rename into place (", std::strerror(errno), ")");
    done_ = true;
  }

 private:
  std::string path_, tmp_;
  std::ofstream out_;
  bool done_ = false;
};

std::string make_header(const std::vector<TensorSpec>& specs, const std::vector<size_t>& order,
                        const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  if (!metadata.empty()) h["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i : order) {
    const TensorSpec& s = specs[i];
    uint64_t n = uint64_t(numel(s.shape)) * dtype_size(s.dtype);
    h[s.name] = {{"dtype", safetensors_dtype_code(s.dtype)}, {"shape", s.shape}, {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = h.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');  // the format allows trailing spaces
  return text;
}

}  // namespace

DType dtype_from_safetensors(const std::string& code, const std::string& what) {
  for (auto& [c, d] : kCodes)
    if (code == c) return d;
  fail(ErrorKind::Unsupported, what, ": unsupported safetensors dtype '", code,
       "' (supported: F32, F16, BF16, F64, I64, I32, I8, U8, BOOL)");
}

const char* safetensors_dtype_code(DType dtype) {
  for (auto& [c, d] : kCodes)
    if (d == dtype) return c;
  fail(ErrorKind::Internal, "no safetensors code for ", dtype_name(dtype));
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  auto m = map_file(path);
  f.base_ = static_cast<const uint8_t*>(m->addr);
  f.size_ = m->size;
  f.mapping_ = m;
  if (f.size_ < 8) fail(ErrorKind::Parse, path, ": ", f.size_, " bytes is too short for a safetensors file");
  uint64_t header_len = read_le64(f.base_);
  if (header_len > f.size_ - 8 || header_len > kMaxHeaderBytes)
    fail(ErrorKind::Parse, path, ": header length ", header_len, " runs past the end of the ", f.size_,
         "-byte file (truncated, or not safetensors)");
  json h = json::parse(f.base_ + 8, f.base_ + 8 + header_len, nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded() || !h.is_object()) fail(ErrorKind::Parse, path, ": header is not a JSON object");
  const size_t data_start = 8 + size_t(header_len);
  const uint64_t data_size = f.size_ - data_start;
  std::vector<std::pair<size_t, std::string>> by_offset;
  for (auto& [name, e] : h.items()) {
    if (name == "__metadata__") {
      f.metadata_ = parse_metadata(e, path);
      continue;
    }
    TensorInfo info = parse_entry(e, str(path, ": tensor '", name, "'"), data_size);
    info.offset += data_start;
    by_offset.emplace_back(info.offset, name);
    f.index_[name] = std::move(info);
  }
  std::sort(by_offset.begin(), by_offset.end(), [&](auto& a, auto& b) {
    return a.first != b.first ? a.first < b.first : f.index_[a.second].nbytes < f.index_[b.second].nbytes;
  });
  size_t prev_end = data_start;
  std::string prev;
  for (auto& [offset, name] : by_offset) {
    const TensorInfo& info = f.index_[name];
    if (offset < prev_end)
      fail(ErrorKind::Parse, path, ": tensor '", name, "' overlaps tensor '", prev, "' (data_offsets overlap)");
    if (info.nbytes > 0) prev_end = offset + info.nbytes, prev = name;
    f.names_.push_back(name);
  }
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(ErrorKind::InvalidArgument, path_, ": no tensor '", name, "'");
  return it->second;
}

Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  void* p = const_cast<uint8_t*>(base_ + ti.offset);
  Tensor view = Tensor::view(ti.dtype, ti.shape, p, mapping_);
  // Zero-copy needs element alignment; a foreign writer may not have given it.
  if (ti.offset % dtype_size(ti.dtype) != 0) return view.clone();
  return view;
}

Tensor SafetensorsFile::slice(const std::string& name, int64_t dim, int64_t start, int64_t length) const {
  const TensorInfo& ti = info(name);
  const std::string what = str(path_, ": slice of tensor '", name, "' ", to_string(ti.shape));
  if (ti.shape.empty()) fail(ErrorKind::InvalidArgument, what, ": a scalar cannot be sliced");
  int64_t d = normalize_axis(dim, int64_t(ti.shape.size()), what);
  if (start < 0 || length < 0 || start + length > ti.shape[size_t(d)])
    fail(ErrorKind::InvalidArgument, what, ": range [", start, ", ", start + length, ") outside dim ", d, " of extent ",
         ti.shape[size_t(d)]);
  Shape out_shape = ti.shape;
  out_shape[size_t(d)] = length;
  int64_t outer = 1, inner = int64_t(dtype_size(ti.dtype));
  for (int64_t i = 0; i < d; ++i) outer *= ti.shape[size_t(i)];
  for (size_t i = size_t(d) + 1; i < ti.shape.size(); ++i) inner *= ti.shape[i];
  Tensor out = Tensor::empty(ti.dtype, out_shape);
  const uint8_t* src = base_ + ti.offset;
  auto* dst = out.data<uint8_t>();
  const int64_t extent = ti.shape[size_t(d)], chunk = length * inner;
  // One contiguous run per outer index: for dim 0 that is the rows alone.
  for (int64_t o = 0; o < outer && chunk > 0; ++o)
    std::memcpy(dst + o * chunk, src + (o * extent + start) * inner, size_t(chunk));
  return out;
}

void write_safetensors(const std::string& path, const std::vector<TensorSpec>& specs,
                       const std::function<Tensor(size_t)>& produce, const std::map<std::string, std::string>& metadata) {
  std::vector<size_t> order(specs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  // Largest element first keeps every offset aligned for its dtype (as the
  // Python writer does), since the header is padded to 8 bytes.
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return dtype_size(specs[a].dtype) > dtype_size(specs[b].dtype); });
  std::map<std::string, int> seen;
  for (const TensorSpec& s : specs)
    if (s.name == "__metadata__" || seen[s.name]++)
      fail(ErrorKind::InvalidArgument, path, ": tensor name '", s.name, "' is reserved or repeated");
  std::string header = make_header(specs, order, metadata);
  AtomicFile file(path);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  file.write(len, 8);
  file.write(header.data(), header.size());
  for (size_t i : order) {
    Tensor t = produce(i);
    const TensorSpec& s = specs[i];
    if (t.device() != Device::cpu || t.dtype() != s.dtype || t.shape() != s.shape)
      fail(ErrorKind::InvalidArgument, path, ": tensor '", s.name, "' is ", dtype_name(t.dtype()), " ",
           to_string(t.shape()), ", expected host ", dtype_name(s.dtype), " ", to_string(s.shape));
    file.write(t.raw(), t.nbytes());
  }
  file.commit();
}

void write_safetensors(const std::string& path, const std::vector<std::pair<std::string, Tensor>>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  std::vector<TensorSpec> specs;
  for (auto& [name, t] : tensors) specs.push_back({name, t.dtype(), t.shape()});
  write_safetensors(path, specs, [&](size_t i) { return tensors[i].second; }, metadata);
}

}  // namespace tessera::hf
