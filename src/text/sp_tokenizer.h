// SentencePiece tokenizers (Llama-2's tokenizer.model): the identity
// normalizer with its whitespace options, BPE (highest-score pair merged
// first) and Unigram (Viterbi) segmentation, byte fallback, and decoding
// with ▁ as space. Follows sentencepiece's bpe_model.cc / unigram_model.cc.
#pragma once
#include <array>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "text/sp_model.h"
#include "text/tokenizer.h"

namespace tessera::text {

class SpTokenizer final : public Tokenizer {
 public:
  SpTokenizer(SpModel model, const std::string& path);
  static std::unique_ptr<SpTokenizer> from_file(const std::string& path);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string token_to_text(int64_t id) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(m_.pieces.size()); }
  std::optional<int64_t> token_id(std::string_view token) const override;
  std::optional<int64_t> bos_id() const override { return bos_; }
  std::optional<int64_t> eos_id() const override { return eos_; }
  bool is_special(int64_t id) const override;
  bool strips_leading_space(int64_t id) const override;

  // The normalized text the segmenters see (▁ for spaces, dummy prefix).
  std::string normalize(std::string_view text) const;

 private:
  using Pieces = std::vector<std::pair<std::string_view, int64_t>>;  // (piece, id or -1)
  Pieces encode_bpe(std::string_view normalized) const;
  Pieces encode_unigram(std::string_view normalized) const;
  // Length of the user-defined symbol at the start of s, else of one character.
  size_t prefix_len(std::string_view s) const;
  int64_t lookup(std::string_view piece) const;  // pieces_ only; -1 if absent
  bool is_type(int64_t id, SpPieceType t) const { return m_.pieces[id].type == t; }
  using RevMerge = std::unordered_map<std::string_view, std::pair<std::string_view, std::string_view>>;
  void resegment(std::string_view piece, const RevMerge& rev, Pieces& out) const;

  SpModel m_;
  std::unordered_map<std::string, int64_t> pieces_;    // NORMAL, USER_DEFINED, UNUSED: segmenters' vocabulary
  std::unordered_map<std::string, int64_t> reserved_;  // CONTROL, UNKNOWN, BYTE
  std::vector<std::string> user_defined_;
  std::array<int64_t, 256> byte_ids_{};
  int64_t unk_ = -1;
  std::optional<int64_t> bos_, eos_;
  size_t max_piece_len_ = 0;
  float min_score_ = 0, max_score_ = 0;
};

}  // namespace tessera::text
