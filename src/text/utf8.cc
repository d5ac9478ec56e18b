// UTF-8 helpers and the GPT-2 byte-level alphabet (see utf8.h).
#include "text/utf8.h"

#include <algorithm>

namespace tessera::text {

namespace {

// Bounds of the second byte for a lead byte (RFC 3629 table 3-7).
bool second_byte_ok(unsigned char lead, unsigned char b) {
  if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
  if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
  if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
  if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
  return b >= 0x80 && b <= 0xBF;
}

size_t expected_len(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Number of leading bytes of s that form a valid prefix of one sequence.
size_t valid_prefix(std::string_view s) {
  const auto lead = static_cast<unsigned char>(s[0]);
  const size_t need = expected_len(lead);
  if (need <= 1) return need;
  size_t i = 1;
  for (; i < need && i < s.size(); ++i) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (i == 1 ? !second_byte_ok(lead, b) : (b < 0x80 || b > 0xBF)) break;
  }
  return i;
}

}  // namespace

size_t utf8_char_len(std::string_view s) {
  if (s.empty()) return 0;
  const size_t need = expected_len(static_cast<unsigned char>(s[0]));
  return need != 0 && valid_prefix(s) == need ? need : 0;
}

std::string utf8_lossy(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const size_t n = utf8_char_len(s);
    if (n > 0) {
      out.append(s.substr(0, n));
      s.remove_prefix(n);
    } else {
      out += "\xEF\xBF\xBD";
      s.remove_prefix(std::max<size_t>(1, valid_prefix(s)));
    }
  }
  return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
  for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
    std::string_view tail = s.substr(s.size() - back);
    const size_t need = expected_len(static_cast<unsigned char>(tail[0]));
    if (need == 0 && static_cast<unsigned char>(tail[0]) >= 0xC0) return 0;  // invalid lead
    if (need == 0) continue;  // continuation byte: look further back
    return need > back && valid_prefix(tail) == back ? back : 0;
  }
  return 0;
}

std::vector<std::string_view> utf8_chars(std::string_view s) {
  std::vector<std::string_view> out;
  while (!s.empty()) {
    const size_t n = std::max<size_t>(1, utf8_char_len(s));
    out.push_back(s.substr(0, n));
    s.remove_prefix(n);
  }
  return out;
}

std::string utf8_encode(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes map to themselves, the
// rest to U+0100 upwards in byte order.
ByteLevelTable make_table() {
  ByteLevelTable t;
  t.char_to_byte.fill(-1);
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const char32_t c = printable ? static_cast<char32_t>(b) : next++;
    t.byte_to_char[b] = utf8_encode(c);
    t.char_to_byte[c] = b;
  }
  return t;
}

char32_t decode_one(std::string_view s, size_t n) {
  if (n == 1) return static_cast<unsigned char>(s[0]);
  char32_t c = static_cast<unsigned char>(s[0]) & (0xFF >> (n + 1));
  for (size_t i = 1; i < n; ++i) c = (c << 6) | (static_cast<unsigned char>(s[i]) & 0x3F);
  return c;
}

}  // namespace

const ByteLevelTable& byte_level_table() {
  static const ByteLevelTable table = make_table();
  return table;
}

std::string byte_level_decode(std::string_view token) {
  const ByteLevelTable& t = byte_level_table();
  std::string out;
  for (std::string_view ch : utf8_chars(token)) {
    const char32_t c = utf8_char_len(ch) ? decode_one(ch, ch.size()) : 0xFFFD;
    const int b = c < t.char_to_byte.size() ? t.char_to_byte[c] : -1;
    if (b < 0) return std::string(token);
    out += static_cast<char>(b);
  }
  return out;
}

std::string byte_level_encode(std::string_view bytes) {
  const ByteLevelTable& t = byte_level_table();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += t.byte_to_char[static_cast<unsigned char>(c)];
  return out;
}

}  // namespace tessera::text
