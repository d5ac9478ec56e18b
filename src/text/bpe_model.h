// The BPE model of Hugging Face's `tokenizers`: a vocabulary of (byte-level)
// token strings and ranked merges; a word is split into characters and the
// lowest-ranked adjacent pair is merged first (leftmost on ties), until no
// merge applies.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tessera::text {

class BpeModel {
 public:
  // merges: (left, right) token strings in rank order. `where` names the file
  // in errors (a merge naming an unknown token, a duplicate id).
  BpeModel(std::unordered_map<std::string, int64_t> vocab, const std::vector<std::pair<std::string, std::string>>& merges,
           std::optional<std::string> unk_token, bool ignore_merges, bool fuse_unk, const std::string& where);

  // Appends the ids of one pre-tokenized word (already byte-level mapped).
  void encode_word(std::string_view word, std::vector<int64_t>& out) const;

  std::optional<int64_t> token_id(std::string_view token) const;
  // "" for an id outside the vocabulary.
  const std::string& token(int64_t id) const;
  int64_t size() const { return static_cast<int64_t>(id_to_token_.size()); }

 private:
  struct Merge {
    int32_t rank;
    int64_t merged;
  };
  static uint64_t pair_key(int64_t a, int64_t b) { return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b); }
  void merge_symbols(std::vector<int64_t>& ids) const;

  std::unordered_map<std::string, int64_t> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int64_t> unk_id_;
  bool ignore_merges_;
  bool fuse_unk_;
};

}  // namespace tessera::text
