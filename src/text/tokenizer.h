// The one tokenizer interface tessera's text front end offers: Hugging Face
// byte-level BPE (GPT-2, Llama-3: tokenizer.json, or vocab.json + merges.txt)
// and SentencePiece (Llama-2: tokenizer.model) behind the same calls, plus a
// streaming decoder for generation loops. Names follow Hugging Face's
// `tokenizers` (encode / decode / token_to_id / add_special_tokens).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // A file (tokenizer.json, vocab.json, tokenizer.model) or a directory holding
  // one: tokenizer.json first, else vocab.json + merges.txt, else tokenizer.model.
  static std::unique_ptr<Tokenizer> load(const std::string& path_or_dir);

  // add_special_tokens: apply the post-processor (BOS for Llama-2/3). Special
  // tokens written in the text (`<|endoftext|>`) are matched either way, as in
  // Hugging Face. Invalid UTF-8 bytes are read as U+FFFD.
  virtual std::vector<int64_t> encode(std::string_view text, bool add_special_tokens = true) const = 0;
  // Concatenates the tokens' bytes; invalid UTF-8 becomes U+FFFD (each maximal
  // invalid subpart, as Python and Rust do).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;
  // The bytes one token contributes to decoded text; may be an incomplete
  // UTF-8 sequence (byte-level and byte-fallback tokens). For streaming.
  virtual std::string token_to_text(int64_t id) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_id(std::string_view token) const = 0;
  virtual std::optional<int64_t> bos_id() const = 0;
  virtual std::optional<int64_t> eos_id() const = 0;
  // Special tokens are the ones skip_special_tokens drops.
  virtual bool is_special(int64_t id) const = 0;
  // Whether decoding drops a leading space of this token when it comes first
  // (SentencePiece's dummy prefix).
  virtual bool strips_leading_space(int64_t id) const { return false; }
};

// Feeds ids one at a time and returns the text each completes; an incomplete
// multi-byte UTF-8 sequence at the end is held back until its bytes arrive.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false)
      : tokenizer_(tokenizer), skip_special_(skip_special_tokens) {}
  std::string step(int64_t id);
  // Whatever is still held back (an incomplete sequence becomes U+FFFD).
  std::string finish();

 private:
  const Tokenizer& tokenizer_;
  bool skip_special_;
  bool at_start_ = true;
  std::string pending_;
};

}  // namespace tessera::text
