#include "dist/wire.h"

#include <stdexcept>

namespace tessera::dist::wire {

Writer::Writer(Op op) { buf_.push_back(char(op)); }

void Writer::put_u32(uint32_t v) {
  for (int i = 0; i < 4; ++i) buf_.push_back(char((v >> (8 * i)) & 0xff));
}

Writer& Writer::str(std::string_view s) {
  put_u32(uint32_t(s.size()));
  buf_.append(s);
  return *this;
}

Writer& Writer::strs(const std::vector<std::string>& v) {
  put_u32(uint32_t(v.size()));
  for (const std::string& s : v) str(s);
  return *this;
}

Writer& Writer::i64(int64_t v) {
  uint64_t u = uint64_t(v);
  for (int i = 0; i < 8; ++i) buf_.push_back(char((u >> (8 * i)) & 0xff));
  return *this;
}

Writer& Writer::i32(int32_t v) {
  put_u32(uint32_t(v));
  return *this;
}

Writer& Writer::u8(uint8_t v) {
  buf_.push_back(char(v));
  return *this;
}

std::string Writer::frame() const {
  std::string out;
  out.reserve(buf_.size() + 4);
  uint32_t n = uint32_t(buf_.size());
  for (int i = 0; i < 4; ++i) out.push_back(char((n >> (8 * i)) & 0xff));
  out += buf_;
  return out;
}

Reader::Reader(std::string_view payload) : data_(payload) {
  if (payload.empty()) throw std::runtime_error("empty message");
  op_ = Op(uint8_t(payload[0]));
}

void Reader::need(size_t n) const {
  if (data_.size() - pos_ < n) throw std::runtime_error("truncated message");
}

uint32_t Reader::u32() {
  need(4);
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(data_[pos_ + i])) << (8 * i);
  pos_ += 4;
  return v;
}

uint64_t Reader::u64() {
  need(8);
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t(uint8_t(data_[pos_ + i])) << (8 * i);
  pos_ += 8;
  return v;
}

std::string Reader::str() {
  uint32_t n = u32();
  need(n);
  std::string s(data_.substr(pos_, n));
  pos_ += n;
  return s;
}

std::vector<std::string> Reader::strs() {
  uint32_t n = u32();
  // Each string needs at least its 4-byte length: bounds the reserve below.
  need(size_t(n) * 4);
  std::vector<std::string> v;
  v.reserve(n);
  for (uint32_t i = 0; i < n; ++i) v.push_back(str());
  return v;
}

int64_t Reader::i64() { return int64_t(u64()); }
int32_t Reader::i32() { return int32_t(u32()); }

uint8_t Reader::u8() {
  need(1);
  return uint8_t(data_[pos_++]);
}

bool take_frame(std::string& buf, std::string& payload) {
  if (buf.size() < 4) return false;
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= uint32_t(uint8_t(buf[i])) << (8 * i);
  if (n == 0 || n > kMaxFrame) throw std::runtime_error("bad frame length " + std::to_string(n));
  if (buf.size() < 4 + size_t(n)) return false;
  payload.assign(buf, 4, n);
  buf.erase(0, 4 + size_t(n));
  return true;
}

}  // namespace tessera::dist::wire
