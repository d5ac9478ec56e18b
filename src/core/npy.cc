#include "core/npy.h"

#include <zlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <unistd.h>

#include "core/error.h"

namespace tessera {

namespace {

struct Descr {
  const char* code;
  DType dtype;
};
constexpr Descr kDescr[] = {{"<f4", DType::f32}, {"<f2", DType::f16}, {"<f8", DType::f64}, {"<i8", DType::i64},
                            {"<i4", DType::i32}, {"|i1", DType::i8},  {"|u1", DType::u8},  {"|b1", DType::boolean}};

DType dtype_of_descr(const std::string& d, const std::string& what) {
  for (const Descr& x : kDescr)
    if (d == x.code || (d.size() == 3 && d[0] == '=' && d.substr(1) == std::string(x.code).substr(1))) return x.dtype;
  fail(ErrorKind::Parse, what, ": unsupported .npy dtype '", d, "' (tessera reads little-endian f2/f4/f8, i1/i4/i8, u1, b1)");
}

const char* descr_of(DType t) {
  for (const Descr& x : kDescr)
    if (x.dtype == t) return x.code;
  return "<f4";
}

uint32_t le32(const std::string& b, size_t off) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | uint8_t(b[off + size_t(i)]);
  return v;
}
uint16_t le16(const std::string& b, size_t off) { return uint16_t(uint8_t(b[off]) | (uint8_t(b[off + 1]) << 8)); }
uint64_t le64(const std::string& b, size_t off) { return uint64_t(le32(b, off)) | (uint64_t(le32(b, off + 4)) << 32); }
void put16(std::string& s, uint16_t v) { s += char(v & 0xff); s += char(v >> 8); }
void put32(std::string& s, uint32_t v) { put16(s, uint16_t(v & 0xffff)); put16(s, uint16_t(v >> 16)); }

}  // namespace

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(ErrorKind::Io, path, ": cannot open (", std::strerror(errno), ")");
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) fail(ErrorKind::Io, path, ": read error");
  return bytes;
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) fail(ErrorKind::Io, path, ": cannot write (", std::strerror(errno), ")");
    f.write(bytes.data(), std::streamsize(bytes.size()));
    f.flush();
    if (!f) {
      f.close();
      std::remove(tmp.c_str());
      fail(ErrorKind::Io, path, ": write failed (disk full?)");
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::remove(tmp.c_str());
    fail(ErrorKind::Io, path, ": cannot rename temporary file into place (", ec.message(), ")");
  }
}

Tensor parse_npy(const std::string& b, const std::string& what) {
  if (b.size() < 10 || b.compare(0, 6, "\x93NUMPY") != 0) fail(ErrorKind::Parse, what, ": not a .npy file (bad magic)");
  int major = uint8_t(b[6]);
  size_t hlen = major == 1 ? le16(b, 8) : le32(b, 8), hoff = major == 1 ? 10 : 12;
  if (hoff + hlen > b.size()) fail(ErrorKind::Parse, what, ": truncated .npy header");
  std::string h = b.substr(hoff, hlen);
  std::smatch m;
  if (!std::regex_search(h, m, std::regex("'descr':\\s*'([^']+)'"))) fail(ErrorKind::Parse, what, ": .npy header has no descr");
  DType dtype = dtype_of_descr(m[1], what);
  if (std::regex_search(h, std::regex("'fortran_order':\\s*True")))
    fail(ErrorKind::Parse, what, ": Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  if (!std::regex_search(h, m, std::regex("'shape':\\s*\\(([^)]*)\\)"))) fail(ErrorKind::Parse, what, ": .npy header has no shape");
  Shape shape;
  std::string dims = m[1];
  const std::regex digits("\\d+");
  for (std::sregex_iterator it(dims.begin(), dims.end(), digits), end; it != end; ++it) shape.push_back(std::stoll(it->str()));
  Tensor t = Tensor::empty(dtype, shape);
  size_t data = hoff + hlen;
  if (b.size() - data < t.nbytes())
    fail(ErrorKind::Parse, what, ": truncated .npy data (", b.size() - data, " bytes, expected ", t.nbytes(), " for ",
         dtype_name(dtype), to_string(shape), ")");
  if (t.nbytes()) std::memcpy(t.raw(), b.data() + data, t.nbytes());
  return t;
}

Tensor read_npy(const std::string& path) { return parse_npy(read_file(path), path); }

std::string format_npy(const Tensor& in) {
  Tensor t = in.dtype() == DType::bf16 ? in.cast(DType::f32) : in;
  std::string shape;
  for (int64_t d : t.shape()) shape += std::to_string(d) + ",";
  if (t.rank() > 1) shape.pop_back();
  std::string h = str("{'descr': '", descr_of(t.dtype()), "', 'fortran_order': False, 'shape': (", shape, "), }");
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out("\x93NUMPY\x01\x00", 8);
  put16(out, uint16_t(h.size()));
  out += h;
  out.append(static_cast<const char*>(t.raw()), t.nbytes());
  return out;
}

void write_npy(const std::string& path, const Tensor& t) { write_file_atomic(path, format_npy(t)); }

namespace {
std::string inflate_raw(const std::string& in, size_t out_size, const std::string& what) {
  std::string out(out_size, '\0');
  z_stream z{};
  if (inflateInit2(&z, -MAX_WBITS) != Z_OK) fail(ErrorKind::Internal, "zlib init failed");
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = uInt(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  int rc = inflate(&z, Z_FINISH);
  inflateEnd(&z);
  if (rc != Z_STREAM_END) fail(ErrorKind::Parse, what, ": corrupt deflate data");
  return out;
}
}  // namespace

std::map<std::string, Tensor> read_npz(const std::string& path) {
  std::string b = read_file(path);
  // The end-of-central-directory record sits in the last 64 KiB + 22 bytes.
  size_t eocd = std::string::npos;
  for (size_t i = b.size() >= 22 ? b.size() - 22 : 0; i + 22 <= b.size() && i != std::string::npos; --i) {
    if (le32(b, i) == 0x06054b50) { eocd = i; break; }
    if (i == 0 || b.size() - i > 65557) break;
  }
  if (eocd == std::string::npos) fail(ErrorKind::Parse, path, ": not a .npz (zip) file or truncated");
  uint64_t count = le16(b, eocd + 10), cd = le32(b, eocd + 16);
  if (cd == 0xffffffff && eocd >= 20 && le32(b, eocd - 20) == 0x07064b50) {  // zip64
    uint64_t rec = le64(b, eocd - 12);
    if (rec + 56 > b.size()) fail(ErrorKind::Parse, path, ": corrupt zip64 record");
    count = le64(b, rec + 32);
    cd = le64(b, rec + 48);
  }
  std::map<std::string, Tensor> out;
  size_t p = cd;
  for (uint64_t k = 0; k < count; ++k) {
    if (p + 46 > b.size() || le32(b, p) != 0x02014b50) fail(ErrorKind::Parse, path, ": corrupt zip central directory");
    uint16_t method = le16(b, p + 10), nlen = le16(b, p + 28), xlen = le16(b, p + 30), clen = le16(b, p + 32);
    uint64_t csize = le32(b, p + 20), usize = le32(b, p + 24), local = le32(b, p + 42);
    std::string name = b.substr(p + 46, nlen);
    for (size_t x = p + 46 + nlen; x + 4 <= p + 46 + nlen + xlen;) {  // zip64 extra field
      uint16_t id = le16(b, x), sz = le16(b, x + 2);
      size_t q = x + 4;
      if (id == 1) {
        if (usize == 0xffffffff) usize = le64(b, q), q += 8;
        if (csize == 0xffffffff) csize = le64(b, q), q += 8;
        if (local == 0xffffffff) local = le64(b, q);
      }
      x += 4 + sz;
    }
    p += 46 + nlen + xlen + clen;
    if (local + 30 > b.size()) fail(ErrorKind::Parse, path, ": entry '", name, "' is truncated");
    size_t data = local + 30 + le16(b, local + 26) + le16(b, local + 28);
    if (data + csize > b.size()) fail(ErrorKind::Parse, path, ": entry '", name, "' is truncated");
    std::string raw = b.substr(data, csize);
    if (method == 8) raw = inflate_raw(raw, usize, path + ":" + name);
    else if (method != 0) fail(ErrorKind::Parse, path, ": entry '", name, "' uses unsupported zip compression ", method);
    if (name.size() > 4 && name.ends_with(".npy")) name.resize(name.size() - 4);
    out[name] = parse_npy(raw, path + ":" + name);
  }
  return out;
}

void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays) {
  std::string zip, cd;
  for (auto& [name, t] : arrays) {
    std::string data = format_npy(t), fname = name + ".npy";
    if (data.size() >= 0xffffffffu || zip.size() >= 0xffffffffu)
      fail(ErrorKind::InvalidArgument, path, ": array '", name, "' is too large for a plain .npz (4 GiB); write .npy files instead");
    uint32_t crc = uint32_t(crc32(0, reinterpret_cast<const Bytef*>(data.data()), uInt(data.size())));
    uint32_t offset = uint32_t(zip.size());
    auto header = [&](std::string& s, bool central) {
      put32(s, central ? 0x02014b50 : 0x04034b50);
      if (central) put16(s, 20);
      put16(s, 20); put16(s, 0); put16(s, 0); put16(s, 0); put16(s, 0x21);  // version, flags, stored, time, date
      put32(s, crc); put32(s, uint32_t(data.size())); put32(s, uint32_t(data.size()));
      put16(s, uint16_t(fname.size())); put16(s, 0);
      if (central) { put16(s, 0); put16(s, 0); put16(s, 0); put32(s, 0); put32(s, offset); }
      s += fname;
    };
    header(zip, false);
    zip += data;
    header(cd, true);
  }
  uint32_t cd_off = uint32_t(zip.size());
  zip += cd;
  put32(zip, 0x06054b50); put16(zip, 0); put16(zip, 0);
  put16(zip, uint16_t(arrays.size())); put16(zip, uint16_t(arrays.size()));
  put32(zip, uint32_t(cd.size())); put32(zip, cd_off); put16(zip, 0);
  write_file_atomic(path, zip);
}

}  // namespace tessera
