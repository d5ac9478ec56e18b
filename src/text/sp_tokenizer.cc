// SentencePiece encoding and decoding (see sp_tokenizer.h).
#include "text/sp_tokenizer.h"

#include <algorithm>
#include <cstdio>
#include <queue>

#include "core/error.h"
#include "core/npy.h"
#include "text/utf8.h"

namespace tessera::text {

namespace {
constexpr std::string_view kSpace = "\xE2\x96\x81";  // ▁
}

SpTokenizer::SpTokenizer(SpModel model, const std::string& path) : m_(std::move(model)) {
  if (m_.model_type != 1 && m_.model_type != 2)
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": SentencePiece model_type ", m_.model_type == 3 ? "WORD" : m_.model_type == 4 ? "CHAR" : "unknown",
         " (", m_.model_type, ") is not supported (BPE, UNIGRAM)");
  if (!m_.precompiled_charsmap.empty())
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": SentencePiece normalizer '", m_.normalizer_name,
         "' (a precompiled_charsmap) is not supported; only identity");
  if (m_.treat_whitespace_as_suffix) fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": treat_whitespace_as_suffix is not supported");
  byte_ids_.fill(-1);
  min_score_ = max_score_ = m_.pieces[0].score;
  for (size_t i = 0; i < m_.pieces.size(); ++i) {
    const SpPiece& p = m_.pieces[i];
    const auto id = static_cast<int64_t>(i);
    const bool segmentable = p.type == SpPieceType::Normal || p.type == SpPieceType::UserDefined || p.type == SpPieceType::Unused;
    auto& table = segmentable ? pieces_ : reserved_;
    if (!table.emplace(p.piece, id).second) fail(ErrorKind::Parse, "[tokenizer] ", path, ": piece '", p.piece, "' appears twice");
    if (p.type == SpPieceType::Unknown) unk_ = id;
    if (p.type == SpPieceType::UserDefined) user_defined_.push_back(p.piece);
    if (p.type == SpPieceType::Byte) {
      unsigned b = 0;
      if (std::sscanf(p.piece.c_str(), "<0x%02X>", &b) != 1 || b > 255) fail(ErrorKind::Parse, "[tokenizer] ", path, ": byte piece '", p.piece, "' is not <0xXX>");
      byte_ids_[b] = id;
    }
    if (p.type == SpPieceType::Normal) {
      min_score_ = std::min(min_score_, p.score);
      max_score_ = std::max(max_score_, p.score);
    }
    if (segmentable) max_piece_len_ = std::max(max_piece_len_, p.piece.size());
  }
  if (unk_ < 0) fail(ErrorKind::Parse, "[tokenizer] ", path, ": no UNKNOWN piece");
  if (m_.byte_fallback && std::count(byte_ids_.begin(), byte_ids_.end(), -1) > 0)
    fail(ErrorKind::Parse, "[tokenizer] ", path, ": byte_fallback is on but not all 256 <0xXX> pieces exist");
  std::sort(user_defined_.begin(), user_defined_.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  auto control = [&](const std::string& name) -> std::optional<int64_t> {
    auto it = reserved_.find(name);
    return it != reserved_.end() && is_type(it->second, SpPieceType::Control) ? std::optional<int64_t>(it->second) : std::nullopt;
  };
  bos_ = control(m_.bos_piece);
  eos_ = control(m_.eos_piece);
}

std::unique_ptr<SpTokenizer> SpTokenizer::from_file(const std::string& path) {
  return std::make_unique<SpTokenizer>(parse_sp_model(read_file(path), path), path);
}

// sentencepiece's Normalizer with an empty charsmap: drop leading, trailing
// and repeated spaces (remove_extra_whitespaces), add the dummy prefix, and
// write spaces as ▁ (escape_whitespaces).
std::string SpTokenizer::normalize(std::string_view text) const {
  const std::string clean = utf8_lossy(text);
  std::string_view s = clean;
  if (m_.remove_extra_whitespaces) {
    while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  }
  std::string out;
  if (s.empty()) return out;
  const std::string space = m_.escape_whitespaces ? std::string(kSpace) : " ";
  if (m_.add_dummy_prefix) out += space;
  bool prev_space = m_.add_dummy_prefix;
  for (char c : s) {
    if (c == ' ') {
      if (m_.remove_extra_whitespaces && prev_space) continue;
      out += space;
      prev_space = true;
    } else {
      out += c;
      prev_space = false;
    }
  }
  if (m_.remove_extra_whitespaces)
    while (out.size() >= space.size() && out.compare(out.size() - space.size(), space.size(), space) == 0) out.resize(out.size() - space.size());
  return out;
}

size_t SpTokenizer::prefix_len(std::string_view s) const {
  for (const std::string& u : user_defined_)
    if (s.substr(0, u.size()) == u) return u.size();
  return std::max<size_t>(1, utf8_char_len(s));
}

int64_t SpTokenizer::lookup(std::string_view piece) const {
  auto it = pieces_.find(std::string(piece));
  return it == pieces_.end() ? -1 : it->second;
}

// bpe_model.cc: characters (user-defined symbols frozen whole), then the
// pair whose concatenation has the highest score is merged, leftmost on ties.
SpTokenizer::Pieces SpTokenizer::encode_bpe(std::string_view s) const {
  struct Sym {
    std::string_view piece;
    int prev, next;
    bool frozen;
  };
  std::vector<Sym> syms;
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = prefix_len(s.substr(pos));
    const bool frozen = n > 1 && std::find(user_defined_.begin(), user_defined_.end(), s.substr(pos, n)) != user_defined_.end();
    const int i = static_cast<int>(syms.size());
    syms.push_back({s.substr(pos, n), i - 1, pos + n < s.size() ? i + 1 : -1, frozen});
    pos += n;
  }
  struct Cand {
    float score;
    int left, right;
    size_t size;
    bool operator<(const Cand& o) const { return score != o.score ? score < o.score : left > o.left; }
  };
  std::priority_queue<Cand> agenda;
  RevMerge rev;  // halves of each UNUSED piece a merge made
  auto add = [&](int l, int r) {
    if (l < 0 || r < 0 || syms[l].frozen || syms[r].frozen) return;
    const std::string_view joined(syms[l].piece.data(), syms[l].piece.size() + syms[r].piece.size());
    const int64_t id = lookup(joined);
    if (id < 0) return;
    agenda.push({m_.pieces[id].score, l, r, joined.size()});
    if (is_type(id, SpPieceType::Unused)) rev[joined] = {syms[l].piece, syms[r].piece};
  };
  for (size_t i = 1; i < syms.size(); ++i) add(static_cast<int>(i) - 1, static_cast<int>(i));
  while (!agenda.empty()) {
    const Cand c = agenda.top();
    agenda.pop();
    Sym &l = syms[c.left], &r = syms[c.right];
    if (l.piece.empty() || r.piece.empty() || l.piece.size() + r.piece.size() != c.size) continue;
    l.piece = std::string_view(l.piece.data(), c.size);
    r.piece = {};
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = c.left;
    add(l.prev, c.left);
    add(c.left, l.next);
  }
  Pieces out;
  for (int i = syms.empty() ? -1 : 0; i >= 0; i = syms[i].next) resegment(syms[i].piece, rev, out);
  return out;
}

// UNUSED pieces the merges produced are split back into their halves.
void SpTokenizer::resegment(std::string_view piece, const RevMerge& rev, Pieces& out) const {
  const int64_t id = lookup(piece);
  if (id >= 0 && is_type(id, SpPieceType::Unused)) {
    auto it = rev.find(piece);
    if (it != rev.end()) {
      resegment(it->second.first, rev, out);
      resegment(it->second.second, rev, out);
      return;
    }
  }
  out.emplace_back(piece, id);
}

// unigram_model.cc (EncodeOptimized): best-scoring path over all pieces
// starting at each character; a character no piece covers costs min - 10.
SpTokenizer::Pieces SpTokenizer::encode_unigram(std::string_view s) const {
  struct Node {
    int64_t id = -1;
    float score = 0;
    long start = -1;
  };
  std::vector<Node> best(s.size() + 1);
  const float unk_score = min_score_ - 10.0f;
  for (size_t start = 0; start < s.size();) {
    const float base = best[start].score;
    const size_t mblen = std::max<size_t>(1, utf8_char_len(s.substr(start)));
    bool has_single = false;
    for (size_t len = 1; len <= max_piece_len_ && start + len <= s.size(); ++len) {
      const int64_t id = lookup(s.substr(start, len));
      if (id < 0 || is_type(id, SpPieceType::Unused)) continue;
      const float score = base + (is_type(id, SpPieceType::UserDefined) ? len * max_score_ - 0.1f : m_.pieces[id].score);
      Node& t = best[start + len];
      if (t.start == -1 || score > t.score) t = {id, score, static_cast<long>(start)};
      if (len == mblen) has_single = true;
    }
    if (!has_single) {
      Node& t = best[start + mblen];
      if (t.start == -1 || base + unk_score > t.score) t = {unk_, base + unk_score, static_cast<long>(start)};
    }
    start += mblen;
  }
  Pieces out;
  for (size_t end = s.size(); end > 0; end = best[end].start) out.emplace_back(s.substr(best[end].start, end - best[end].start), best[end].id);
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<int64_t> SpTokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const std::string normalized = normalize(text);
  const Pieces pieces = m_.model_type == 2 ? encode_bpe(normalized) : encode_unigram(normalized);
  std::vector<int64_t> ids;
  if (add_special_tokens && bos_) ids.push_back(*bos_);
  for (const auto& [piece, found] : pieces) {
    const int64_t id = found >= 0 ? found : unk_;
    if (id == unk_ && m_.byte_fallback) {
      for (char c : piece) ids.push_back(byte_ids_[static_cast<unsigned char>(c)]);
    } else if (id == unk_ && !ids.empty() && ids.back() == unk_ && m_.model_type == 1) {
      continue;  // Unigram merges a run of unknown characters into one <unk>
    } else {
      ids.push_back(id);
    }
  }
  return ids;
}

std::string SpTokenizer::token_to_text(int64_t id) const {
  if (id < 0 || id >= vocab_size()) fail(ErrorKind::InvalidArgument, "[tokenizer] token id ", id, " is outside the vocabulary (size ", vocab_size(), ")");
  const SpPiece& p = m_.pieces[id];
  switch (p.type) {
    case SpPieceType::Control: return "";
    case SpPieceType::Unknown: return m_.unk_surface;
    case SpPieceType::Byte: return std::string(1, static_cast<char>(std::find(byte_ids_.begin(), byte_ids_.end(), id) - byte_ids_.begin()));
    default: break;
  }
  std::string out;
  std::string_view s = p.piece;
  for (size_t pos; (pos = s.find(kSpace)) != std::string_view::npos; s.remove_prefix(pos + kSpace.size())) {
    out.append(s.substr(0, pos));
    out += ' ';
  }
  out.append(s);
  return out;
}

std::optional<int64_t> SpTokenizer::token_id(std::string_view token) const {
  if (auto it = pieces_.find(std::string(token)); it != pieces_.end()) return it->second;
  if (auto it = reserved_.find(std::string(token)); it != reserved_.end()) return it->second;
  return std::nullopt;
}

// sentencepiece consumes the ▁ of the first piece, never unknown or byte pieces.
bool SpTokenizer::strips_leading_space(int64_t id) const {
  const SpPieceType t = m_.pieces[id].type;
  return (m_.add_dummy_prefix || m_.remove_extra_whitespaces) && t != SpPieceType::Unknown && t != SpPieceType::Byte;
}

bool SpTokenizer::is_special(int64_t id) const { return id >= 0 && id < vocab_size() && is_type(id, SpPieceType::Control); }

}  // namespace tessera::text
