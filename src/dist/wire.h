// The store's wire protocol. A message is a frame: a 4-byte little-endian
// payload length, then the payload: one op byte and its fields. Strings are a
// 4-byte length and the bytes; integers are little-endian, so nodes of any
// byte order agree. Client and server speak strictly in turn (one reply per
// request), except that a parked Get/Wait may be followed by Cancel.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::dist::wire {

enum class Op : uint8_t {
  // requests
  Hello = 1,   // magic, rank (i32): must come first
  Set,         // key, value → Ok
  Get,         // key → Value, once the key exists (parked until then)
  Add,         // key, delta (i64) → Int (the new value)
  Check,       // keys → Bool
  Wait,        // keys → Ok, once all exist (parked until then)
  Cancel,      // → Cancelled; ends a parked Get/Wait whose client timed out
  DeadRanks,   // → Ranks
  Delete,      // key → Bool (whether it existed)
  NumKeys,     // → Int
  Goodbye,     // → Bye; the client closes cleanly and is not counted dead
  // replies
  Ok = 64,
  Value,       // value
  Int,         // i64
  Bool,        // u8
  Ranks,       // count (u32), then i32 each
  Cancelled,
  Bye,
  Error,       // message
};

// Sent in Hello; a server that sees anything else is talking to a stranger.
inline constexpr std::string_view kMagic = "tessera-store/1";
// Bigger frames are treated as garbage (a stray client, a port scanner)
// rather than allocated.
inline constexpr uint32_t kMaxFrame = 256u << 20;

// Builds one frame.
class Writer {
 public:
  explicit Writer(Op op);
  Writer& str(std::string_view s);
  Writer& strs(const std::vector<std::string>& v);
  Writer& i64(int64_t v);
  Writer& i32(int32_t v);
  Writer& u8(uint8_t v);
  // The frame, length prefix included.
  std::string frame() const;

 private:
  void put_u32(uint32_t v);
  std::string buf_;
};

// Reads fields of one payload; throws std::runtime_error when it runs short,
// which both sides treat as a protocol error.
class Reader {
 public:
  explicit Reader(std::string_view payload);
  Op op() const { return op_; }
  std::string str();
  std::vector<std::string> strs();
  int64_t i64();
  int32_t i32();
  uint8_t u8();
  bool done() const { return pos_ == data_.size(); }

 private:
  uint32_t u32();
  uint64_t u64();
  void need(size_t n) const;
  std::string_view data_;
  size_t pos_ = 1;
  Op op_;
};

// If `buf` starts with a whole frame, moves its payload into `payload`,
// erases it from `buf` and returns true. Throws std::runtime_error for a
// frame over kMaxFrame or an empty one.
bool take_frame(std::string& buf, std::string& payload);

}  // namespace tessera::dist::wire
