// Hugging Face byte-level BPE tokenizers (GPT-2, Llama-3): the pipeline of
// `tokenizers` — added tokens matched first, then the pre-tokenizer (Split by
// regex, ByteLevel), the BPE model, and the post-processor's BOS/EOS.
// Loading (tokenizer.json, or GPT-2's vocab.json + merges.txt) is in hf_load.cc.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "text/bpe_model.h"
#include "text/regex.h"
#include "text/tokenizer.h"

namespace tessera::text {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = true;
  bool lstrip = false, rstrip = false, single_word = false;
};

// One pre-tokenizer of a Sequence.
struct PreTokenizerStep {
  enum class Kind { Split, ByteLevel } kind = Kind::Split;
  enum class Behavior { Isolated, Removed, MergedWithPrevious, MergedWithNext };
  std::shared_ptr<const Regex> regex;  // Split's pattern, or ByteLevel's GPT-2 pattern (use_regex)
  Behavior behavior = Behavior::Isolated;
  bool add_prefix_space = false;       // ByteLevel
};

// What the loaders read from the files.
struct HfParts {
  std::unique_ptr<BpeModel> model;
  std::vector<AddedToken> added;
  std::vector<PreTokenizerStep> pre;
  bool byte_level = false;               // words are byte-level mapped, tokens decoded back
  std::vector<int64_t> prefix, suffix;   // post-processor, single sequence
  std::optional<int64_t> bos, eos;
};

// GPT-2's pre-tokenizer pattern (ByteLevel with use_regex).
extern const char* const kGpt2Pattern;

class HfTokenizer final : public Tokenizer {
 public:
  explicit HfTokenizer(HfParts parts);
  static std::unique_ptr<HfTokenizer> from_tokenizer_json(const std::string& path);
  static std::unique_ptr<HfTokenizer> from_vocab_merges(const std::string& vocab_path, const std::string& merges_path);

  std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const override;
  std::string token_to_text(int64_t id) const override;
  int64_t vocab_size() const override;
  std::optional<int64_t> token_id(std::string_view token) const override;
  std::optional<int64_t> bos_id() const override { return p_.bos; }
  std::optional<int64_t> eos_id() const override { return p_.eos; }
  bool is_special(int64_t id) const override;
  const HfParts& parts() const { return p_; }
  void set_bos_eos(std::optional<int64_t> bos, std::optional<int64_t> eos) { p_.bos = bos; p_.eos = eos; }

 private:
  // Appends the ids of a stretch of text holding no added token.
  void encode_segment(std::string_view text, std::vector<int64_t>& out) const;
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  // The next added token in text at or after `from`: its span (after
  // lstrip/rstrip) and index into p_.added; npos when none.
  struct Found {
    size_t begin = std::string::npos, end = 0, index = 0;
  };
  Found find_added(std::string_view text, size_t from) const;

  HfParts p_;
  std::vector<std::string> added_by_id_;  // content of added tokens, by id ("" where none)
  std::vector<bool> special_by_id_;
  // Added tokens by first byte, longest first: the leftmost-longest match.
  std::array<std::vector<size_t>, 256> by_first_byte_;
};

}  // namespace tessera::text
