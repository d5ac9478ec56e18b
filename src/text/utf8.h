// UTF-8 helpers the tokenizers share: validation with U+FFFD replacement,
// character splitting, the held-back tail for streaming, and GPT-2's
// byte-to-unicode table (bytes.json's "byte level" alphabet).
#pragma once
#include <array>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text {

// Length of the valid UTF-8 sequence starting at s[0], or 0 if invalid or cut short.
size_t utf8_char_len(std::string_view s);
// Replaces each maximal invalid subpart with U+FFFD (Python's errors="replace").
std::string utf8_lossy(std::string_view s);
// Length of the tail of s that is a valid but incomplete sequence (0..3).
size_t utf8_incomplete_tail(std::string_view s);
// s split into characters; s must be valid UTF-8.
std::vector<std::string_view> utf8_chars(std::string_view s);
std::string utf8_encode(char32_t c);

// GPT-2's byte ↔ printable-character mapping used by ByteLevel.
struct ByteLevelTable {
  std::array<std::string, 256> byte_to_char;  // UTF-8 of the mapped character
  std::array<int, 324> char_to_byte;          // -1 where no byte maps there
};
const ByteLevelTable& byte_level_table();
// Byte-level text (mapped characters) back to bytes; a string with any
// character outside the table is returned as is (Hugging Face's rule).
std::string byte_level_decode(std::string_view token);
std::string byte_level_encode(std::string_view bytes);

}  // namespace tessera::text
