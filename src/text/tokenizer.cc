// Tokenizer::load (which file format a path holds), the shared decode, and
// StreamDecoder (see tokenizer.h).
#include "text/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "text/hf_tokenizer.h"
#include "text/sp_tokenizer.h"
#include "text/utf8.h"

namespace tessera::text {

namespace fs = std::filesystem;

namespace {

std::unique_ptr<Tokenizer> load_dir(const fs::path& dir) {
  if (fs::is_regular_file(dir / "tokenizer.json")) return HfTokenizer::from_tokenizer_json((dir / "tokenizer.json").string());
  if (fs::is_regular_file(dir / "vocab.json") && fs::is_regular_file(dir / "merges.txt"))
    return HfTokenizer::from_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string());
  if (fs::is_regular_file(dir / "tokenizer.model")) return SpTokenizer::from_file((dir / "tokenizer.model").string());
  fail(ErrorKind::Io, "[tokenizer] ", dir.string(), ": no tokenizer.json, vocab.json + merges.txt, or tokenizer.model in this directory");
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::load(const std::string& path_or_dir) {
  const fs::path p(path_or_dir);
  if (fs::is_directory(p)) return load_dir(p);
  if (!fs::exists(p)) fail(ErrorKind::Io, "[tokenizer] ", path_or_dir, ": no such file or directory");
  if (p.filename() == "vocab.json" || p.filename() == "merges.txt") {
    const fs::path dir = p.parent_path();
    if (!fs::is_regular_file(dir / "vocab.json") || !fs::is_regular_file(dir / "merges.txt"))
      fail(ErrorKind::Io, "[tokenizer] ", path_or_dir, ": vocab.json and merges.txt must sit side by side");
    return HfTokenizer::from_vocab_merges((dir / "vocab.json").string(), (dir / "merges.txt").string());
  }
  if (p.extension() == ".json") return HfTokenizer::from_tokenizer_json(path_or_dir);
  return SpTokenizer::from_file(path_or_dir);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  bool at_start = true;
  for (int64_t id : ids) {
    if (skip_special_tokens && is_special(id)) continue;
    std::string piece = token_to_text(id);
    if (at_start && !piece.empty()) {
      if (strips_leading_space(id) && piece[0] == ' ') piece.erase(0, 1);
      at_start = false;
    }
    bytes += piece;
  }
  return utf8_lossy(bytes);
}

std::string StreamDecoder::step(int64_t id) {
  if (skip_special_ && tokenizer_.is_special(id)) return "";
  std::string piece = tokenizer_.token_to_text(id);
  if (at_start_ && !piece.empty()) {
    if (tokenizer_.strips_leading_space(id) && piece[0] == ' ') piece.erase(0, 1);
    at_start_ = false;
  }
  pending_ += piece;
  // Emit all but a tail that may still become a valid character.
  const size_t keep = utf8_incomplete_tail(pending_);
  std::string out = utf8_lossy(std::string_view(pending_).substr(0, pending_.size() - keep));
  pending_.erase(0, pending_.size() - keep);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out = utf8_lossy(pending_);
  pending_.clear();
  return out;
}

}  // namespace tessera::text
