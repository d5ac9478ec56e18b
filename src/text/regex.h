// A compiled PCRE2 pattern in UTF + UCP mode (so \p{L}, \s and (?i) are
// Unicode-aware, as in the Oniguruma engine Hugging Face uses), and the
// match spans the pre-tokenizers split on.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tessera::text {

class Regex {
 public:
  // literal: match the pattern text itself (Split's {"String": ...}).
  // `where` names the file for the error message.
  Regex(const std::string& pattern, bool literal, const std::string& where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Non-overlapping match spans [begin, end) in text (valid UTF-8), left to right.
  std::vector<std::pair<size_t, size_t>> find_all(std::string_view text) const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tessera::text
