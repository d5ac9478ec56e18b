// Encoding and decoding for Hugging Face BPE tokenizers (see hf_tokenizer.h).
#include "text/hf_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "text/utf8.h"

namespace tessera::text {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

HfTokenizer::HfTokenizer(HfParts parts) : p_(std::move(parts)) {
  for (size_t i = 0; i < p_.added.size(); ++i) {
    const AddedToken& t = p_.added[i];
    if (t.content.empty()) continue;
    if (t.id >= static_cast<int64_t>(added_by_id_.size())) {
      added_by_id_.resize(t.id + 1);
      special_by_id_.resize(t.id + 1, false);
    }
    added_by_id_[t.id] = t.content;
    special_by_id_[t.id] = t.special;
    by_first_byte_[static_cast<unsigned char>(t.content[0])].push_back(i);
  }
  for (auto& bucket : by_first_byte_)
    std::stable_sort(bucket.begin(), bucket.end(),
                     [&](size_t a, size_t b) { return p_.added[a].content.size() > p_.added[b].content.size(); });
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
// Word characters for single_word: ASCII alphanumerics and any non-ASCII byte.
bool is_word_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || std::isalnum(u) || c == '_';
}

}  // namespace

HfTokenizer::Found HfTokenizer::find_added(std::string_view text, size_t from) const {
  for (size_t pos = from; pos < text.size(); ++pos) {
    for (size_t idx : by_first_byte_[static_cast<unsigned char>(text[pos])]) {
      const AddedToken& t = p_.added[idx];
      if (text.compare(pos, t.content.size(), t.content) != 0) continue;
      size_t begin = pos, end = pos + t.content.size();
      if (t.single_word && ((begin > 0 && is_word_byte(text[begin - 1])) || (end < text.size() && is_word_byte(text[end])))) {
        pos = end - 1;  // the match stays plain text; search on after it
        break;
      }
      if (t.lstrip)
        while (begin > from && is_space(text[begin - 1])) --begin;
      if (t.rstrip)
        while (end < text.size() && is_space(text[end])) ++end;
      return {begin, end, idx};
    }
  }
  return {};
}

std::vector<int64_t> HfTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const std::string clean = utf8_lossy(text);
  const std::string_view s = clean;
  std::vector<int64_t> out;
  if (add_special_tokens) out = p_.prefix;
  size_t pos = 0;
  while (true) {
    const Found f = find_added(s, pos);
    encode_segment(s.substr(pos, f.begin == std::string::npos ? std::string::npos : f.begin - pos), out);
    if (f.begin == std::string::npos) break;
    out.push_back(p_.added[f.index].id);
    pos = f.end;
  }
  if (add_special_tokens) out.insert(out.end(), p_.suffix.begin(), p_.suffix.end());
  return out;
}

void HfTokenizer::encode_segment(std::string_view text, std::vector<int64_t>& out) const {
  if (text.empty()) return;
  for (const std::string& piece : pre_tokenize(text)) p_.model->encode_word(p_.byte_level ? byte_level_encode(piece) : piece, out);
}

namespace {

using Behavior = PreTokenizerStep::Behavior;

// Splits one piece at the regex matches, keeping or merging them per `b`.
void split_piece(const std::string& piece, const Regex& re, Behavior b, std::vector<std::string>& out) {
  size_t last = 0;
  std::string carry;  // MergedWithNext: the match waiting for what follows it
  auto emit = [&](std::string s) {
    if (!s.empty()) out.push_back(std::move(s));
  };
  for (auto [begin, end] : re.find_all(piece)) {
    std::string gap = piece.substr(last, begin - last), match = piece.substr(begin, end - begin);
    switch (b) {
      case Behavior::Isolated: emit(std::move(gap)); emit(std::move(match)); break;
      case Behavior::Removed: emit(std::move(gap)); break;
      case Behavior::MergedWithPrevious: emit(gap + match); break;
      case Behavior::MergedWithNext: emit(carry + gap); carry = match; break;
    }
    last = end;
  }
  emit(carry + piece.substr(last));
}

}  // namespace

std::vector<std::string> HfTokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> pieces{std::string(text)};
  for (const PreTokenizerStep& step : p_.pre) {
    std::vector<std::string> next;
    for (std::string& piece : pieces) {
      if (step.kind == PreTokenizerStep::Kind::ByteLevel && step.add_prefix_space && piece[0] != ' ') piece.insert(0, " ");
      if (step.regex)
        split_piece(piece, *step.regex, step.behavior, next);
      else
        next.push_back(std::move(piece));
    }
    pieces = std::move(next);
  }
  return pieces;
}

std::string HfTokenizer::token_to_text(int64_t id) const {
  const std::string* tok = nullptr;
  if (id >= 0 && id < static_cast<int64_t>(added_by_id_.size()) && !added_by_id_[id].empty())
    tok = &added_by_id_[id];
  else if (id >= 0 && id < p_.model->size())
    tok = &p_.model->token(id);
  if (!tok) fail(ErrorKind::InvalidArgument, "[tokenizer] token id ", id, " is outside the vocabulary (size ", vocab_size(), ")");
  return p_.byte_level ? byte_level_decode(*tok) : *tok;
}

int64_t HfTokenizer::vocab_size() const {
  return std::max<int64_t>(p_.model->size(), static_cast<int64_t>(added_by_id_.size()));
}

std::optional<int64_t> HfTokenizer::token_id(std::string_view token) const {
  for (const AddedToken& t : p_.added)
    if (t.content == token) return t.id;
  return p_.model->token_id(token);
}

bool HfTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < static_cast<int64_t>(special_by_id_.size()) && special_by_id_[id];
}

}  // namespace tessera::text
