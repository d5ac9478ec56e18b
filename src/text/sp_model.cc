// Wire-format reader for SentencePiece's ModelProto (see sp_model.h). Unknown
// fields are skipped, so newer models with more settings still load.
#include "text/sp_model.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <bit>
#include <functional>

#include "core/error.h"

namespace tessera::text {

namespace {

using google::protobuf::io::CodedInputStream;
using google::protobuf::internal::WireFormatLite;

class Reader {
 public:
  Reader(CodedInputStream& in, const std::string& path) : in_(in), path_(path) {}

  // Calls on_field(number, wire_type) for every field up to the current limit;
  // on_field returns false to have the field skipped.
  void fields(const char* what, const std::function<bool(int, WireFormatLite::WireType)>& on_field) {
    while (true) {
      const uint32_t tag = in_.ReadTag();
      if (tag == 0) break;
      const int number = WireFormatLite::GetTagFieldNumber(tag);
      if (!on_field(number, WireFormatLite::GetTagWireType(tag)) && !WireFormatLite::SkipField(&in_, tag)) bad(what);
    }
    if (in_.BytesUntilLimit() != 0) bad(what);
  }
  std::string string(const char* what) {
    uint32_t len = 0;
    std::string s;
    if (!in_.ReadVarint32(&len) || !in_.ReadString(&s, static_cast<int>(len))) bad(what);
    return s;
  }
  uint64_t varint(const char* what) {
    uint64_t v = 0;
    if (!in_.ReadVarint64(&v)) bad(what);
    return v;
  }
  float fixed_float(const char* what) {
    uint32_t v = 0;
    if (!in_.ReadLittleEndian32(&v)) bad(what);
    return std::bit_cast<float>(v);
  }
  // Runs `body` inside a length-delimited sub-message.
  void message(const char* what, const std::function<void()>& body) {
    uint32_t len = 0;
    if (!in_.ReadVarint32(&len) || static_cast<int>(len) > in_.BytesUntilLimit()) bad(what);
    const auto limit = in_.PushLimit(static_cast<int>(len));
    body();
    in_.PopLimit(limit);
  }
  [[noreturn]] void bad(const char* what) {
    fail(ErrorKind::Parse, "[tokenizer] ", path_, ": truncated or malformed protobuf in ", what, " (not a SentencePiece model?)");
  }

 private:
  CodedInputStream& in_;
  const std::string& path_;
};

using WT = WireFormatLite::WireType;
constexpr WT kLen = WireFormatLite::WIRETYPE_LENGTH_DELIMITED;
constexpr WT kVarint = WireFormatLite::WIRETYPE_VARINT;

void read_piece(Reader& r, SpModel& m) {
  SpPiece p;
  r.fields("pieces", [&](int n, WT wt) {
    if (n == 1 && wt == kLen) p.piece = r.string("pieces.piece");
    else if (n == 2 && wt == WireFormatLite::WIRETYPE_FIXED32) p.score = r.fixed_float("pieces.score");
    else if (n == 3 && wt == kVarint) p.type = static_cast<SpPieceType>(r.varint("pieces.type"));
    else return false;
    return true;
  });
  m.pieces.push_back(std::move(p));
}

void read_trainer(Reader& r, SpModel& m) {
  r.fields("trainer_spec", [&](int n, WT wt) {
    if (wt == kVarint && n == 3) m.model_type = static_cast<int>(r.varint("trainer_spec.model_type"));
    else if (wt == kVarint && n == 24) m.treat_whitespace_as_suffix = r.varint("trainer_spec") != 0;
    else if (wt == kVarint && n == 35) m.byte_fallback = r.varint("trainer_spec") != 0;
    else if (wt == kLen && n == 44) m.unk_surface = r.string("trainer_spec.unk_surface");
    else if (wt == kLen && n == 45) m.unk_piece = r.string("trainer_spec.unk_piece");
    else if (wt == kLen && n == 46) m.bos_piece = r.string("trainer_spec.bos_piece");
    else if (wt == kLen && n == 47) m.eos_piece = r.string("trainer_spec.eos_piece");
    else return false;
    return true;
  });
}

void read_normalizer(Reader& r, SpModel& m) {
  r.fields("normalizer_spec", [&](int n, WT wt) {
    if (wt == kLen && n == 1) m.normalizer_name = r.string("normalizer_spec.name");
    else if (wt == kLen && n == 2) m.precompiled_charsmap = r.string("normalizer_spec.precompiled_charsmap");
    else if (wt == kVarint && n == 3) m.add_dummy_prefix = r.varint("normalizer_spec") != 0;
    else if (wt == kVarint && n == 4) m.remove_extra_whitespaces = r.varint("normalizer_spec") != 0;
    else if (wt == kVarint && n == 5) m.escape_whitespaces = r.varint("normalizer_spec") != 0;
    else return false;
    return true;
  });
}

}  // namespace

SpModel parse_sp_model(const std::string& bytes, const std::string& path) {
  CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  in.SetTotalBytesLimit(INT32_MAX);
  const auto top = in.PushLimit(static_cast<int>(bytes.size()));
  Reader r(in, path);
  SpModel m;
  r.fields("ModelProto", [&](int n, WT wt) {
    if (wt != kLen || n < 1 || n > 3) return false;
    r.message(n == 1 ? "pieces" : n == 2 ? "trainer_spec" : "normalizer_spec", [&] {
      if (n == 1) read_piece(r, m);
      else if (n == 2) read_trainer(r, m);
      else read_normalizer(r, m);
    });
    return true;
  });
  in.PopLimit(top);
  if (m.pieces.empty()) fail(ErrorKind::Parse, "[tokenizer] ", path, ": no pieces (not a SentencePiece model?)");
  return m;
}

}  // namespace tessera::text
