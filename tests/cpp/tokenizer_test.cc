// src/text tokenizers on hand-made vocabularies: byte-level BPE from
// tokenizer.json and vocab.json + merges.txt, SentencePiece BPE and Unigram
// from a ModelProto written here byte by byte, streaming decode, and the
// errors bad files give. Parity with the reference libraries is in
// tests/python/test_tokenizers.py.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "text/tokenizer.h"

namespace fs = std::filesystem;
using tessera::Error;
using tessera::ErrorKind;
using tessera::text::StreamDecoder;
using tessera::text::Tokenizer;
using Ids = std::vector<int64_t>;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("tessera_tok_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write(const fs::path& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary);
  f << bytes;
}

// Byte-level vocabulary: Ġ is the space byte. "ab", "abc", "Ġab", "Ġabc" come from merges.
const char* kVocab = R"({"a":0,"b":1,"c":2,"Ġ":3,"ab":4,"abc":5,"Ġab":6,"Ġabc":7,"<|endoftext|>":8})";

std::string tokenizer_json(const std::string& merges, const std::string& extra = "") {
  return R"({"version":"1.0","added_tokens":[{"id":8,"content":"<|endoftext|>","special":true}],)"
         R"("normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},)"
         R"("decoder":{"type":"ByteLevel"},)" + extra +
         R"("model":{"type":"BPE","vocab":)" + std::string(kVocab) + R"(,"merges":)" + merges + "}}";
}

// Minimal protobuf writer for the SentencePiece test models.
struct Proto {
  std::string bytes;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      bytes += static_cast<char>(v | 0x80);
      v >>= 7;
    }
    bytes += static_cast<char>(v);
  }
  void tag(int field, int wire) { varint(static_cast<uint64_t>(field) << 3 | wire); }
  void str(int field, const std::string& s) {
    tag(field, 2);
    varint(s.size());
    bytes += s;
  }
  void num(int field, uint64_t v) {
    tag(field, 0);
    varint(v);
  }
  void flt(int field, float f) {
    tag(field, 5);
    char b[4];
    std::memcpy(b, &f, 4);
    bytes.append(b, 4);
  }
};

struct SpPieceSpec {
  std::string piece;
  float score;
  int type;
};

// pieces: <unk> <s> </s>, the given pieces, then 256 byte pieces if byte_fallback.
std::string sp_model(const std::vector<SpPieceSpec>& pieces, int model_type, bool byte_fallback, const std::string& charsmap = "") {
  std::vector<SpPieceSpec> all = {{"<unk>", 0, 2}, {"<s>", 0, 3}, {"</s>", 0, 3}};
  all.insert(all.end(), pieces.begin(), pieces.end());
  if (byte_fallback)
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      all.push_back({name, 0, 6});
    }
  Proto m;
  for (const auto& p : all) {
    Proto sub;
    sub.str(1, p.piece);
    sub.flt(2, p.score);
    sub.num(3, p.type);
    m.str(1, sub.bytes);
  }
  Proto trainer;
  trainer.num(3, model_type);
  trainer.num(35, byte_fallback);
  m.str(2, trainer.bytes);
  Proto norm;
  norm.str(1, charsmap.empty() ? "identity" : "nmt_nfkc");
  if (!charsmap.empty()) norm.str(2, charsmap);
  norm.num(3, 1);
  norm.num(4, 0);
  m.str(3, norm.bytes);
  return m.bytes;
}

const std::string kSpace = "\xE2\x96\x81";

template <typename F>
void expect_error(F&& f, ErrorKind kind, const std::string& needle) {
  try {
    f();
    FAIL() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(TokenizerBpe, MergesByRankAndMatchesAddedTokens) {
  const fs::path dir = temp_dir("bpe");
  write(dir / "tokenizer.json", tokenizer_json(R"(["a b","ab c","Ġ ab","Ġab c"])"));
  auto tok = Tokenizer::load(dir.string());
  // " abc": a b (rank 0) then ab c (rank 1) leave Ġ abc, which no merge joins.
  EXPECT_EQ(tok->encode("abc abc"), (Ids{5, 3, 5}));
  EXPECT_EQ(tok->encode("ab ab"), (Ids{4, 6}));
  EXPECT_EQ(tok->encode("ab cab"), (Ids{4, 3, 2, 4}));
  EXPECT_EQ(tok->encode("abc<|endoftext|> ab"), (Ids{5, 8, 6}));
  EXPECT_EQ(tok->decode({5, 8, 6}), "abc<|endoftext|> ab");
  EXPECT_EQ(tok->decode({5, 8, 6}, /*skip_special_tokens=*/true), "abc ab");
  EXPECT_EQ(tok->token_id("<|endoftext|>"), 8);
  EXPECT_EQ(tok->eos_id(), 8);
  EXPECT_EQ(tok->vocab_size(), 9);
  EXPECT_EQ(tok->token_to_text(7), " abc");
}

TEST(TokenizerBpe, MergesAsPairsAndTemplateBos) {
  const fs::path dir = temp_dir("pairs");
  const std::string post = R"("post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<|endoftext|>","type_id":0}},)"
                           R"({"Sequence":{"id":"A","type_id":0}}],"special_tokens":{"<|endoftext|>":{"id":"<|endoftext|>","ids":[8]}}},)";
  write(dir / "tokenizer.json", tokenizer_json(R"([["a","b"],["ab","c"]])", post));
  auto tok = Tokenizer::load((dir / "tokenizer.json").string());
  EXPECT_EQ(tok->encode("abc"), (Ids{8, 5}));
  EXPECT_EQ(tok->encode("abc", /*add_special_tokens=*/false), (Ids{5}));
  EXPECT_EQ(tok->bos_id(), 8);
}

TEST(TokenizerBpe, VocabJsonAndMergesTxt) {
  const fs::path dir = temp_dir("gpt2");
  write(dir / "vocab.json", kVocab);
  write(dir / "merges.txt", "#version: 0.2\na b\nab c\nĠ ab\nĠab c\n");
  auto tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->encode("ab ab<|endoftext|>"), (Ids{4, 6, 8}));
  EXPECT_EQ(tok->decode({5, 7}), "abc abc");
}

TEST(TokenizerSentencePiece, BpeHighestScoreFirstWithByteFallback) {
  const fs::path dir = temp_dir("spbpe");
  // ids: 3 ▁, 4 a, 5 b, 6 ab, 7 ▁ab ; scores favour ab then ▁ab.
  write(dir / "tokenizer.model", sp_model({{kSpace, -5, 1}, {"a", -5, 1}, {"b", -5, 1}, {"ab", -1, 1}, {kSpace + "ab", -2, 1}}, 2, true));
  auto tok = Tokenizer::load(dir.string());
  EXPECT_EQ(tok->bos_id(), 1);
  EXPECT_EQ(tok->eos_id(), 2);
  EXPECT_EQ(tok->encode("ab ab"), (Ids{1, 7, 7}));
  // "é" is not a piece: its two UTF-8 bytes come as byte tokens (id 8 + byte).
  EXPECT_EQ(tok->encode("é", false), (Ids{3, 8 + 0xC3, 8 + 0xA9}));
  EXPECT_EQ(tok->decode({1, 7, 7}), "ab ab");
  EXPECT_EQ(tok->decode(tok->encode("ab é")), "ab é");
}

TEST(TokenizerSentencePiece, UnigramViterbi) {
  const fs::path dir = temp_dir("spuni");
  // "▁abc": ▁ab + c (-1 -1) beats ▁ + abc (-3 -0.5) and ▁a b c.
  write(dir / "tokenizer.model",
        sp_model({{kSpace, -3, 1}, {"a", -2, 1}, {"b", -2, 1}, {"c", -1, 1}, {kSpace + "ab", -1, 1}, {"abc", -0.5, 1}}, 1, false));
  auto tok = Tokenizer::load((dir / "tokenizer.model").string());
  EXPECT_EQ(tok->encode("abc", false), (Ids{7, 6}));
  // No piece covers "x": it costs min score - 10 as <unk>.
  EXPECT_EQ(tok->encode("ax", false), (Ids{3, 4, 0}));
  EXPECT_EQ(tok->decode({0}), " \xE2\x81\x87 ");
}

TEST(TokenizerStream, HoldsBackIncompleteUtf8) {
  const fs::path dir = temp_dir("stream");
  write(dir / "tokenizer.model", sp_model({{kSpace, -5, 1}, {"a", -5, 1}}, 2, true));
  auto tok = Tokenizer::load(dir.string());
  const Ids ids = tok->encode("a€", false);  // ▁ a then three byte tokens
  ASSERT_EQ(ids.size(), 5u);
  StreamDecoder stream(*tok);
  std::vector<std::string> steps;
  for (int64_t id : ids) steps.push_back(stream.step(id));
  EXPECT_EQ(steps[1], "a");  // the leading dummy-prefix space is dropped
  EXPECT_EQ(steps[2], "");
  EXPECT_EQ(steps[3], "");
  EXPECT_EQ(steps[4], "€");
  EXPECT_EQ(stream.finish(), "");
}

TEST(TokenizerErrors, BadFiles) {
  const fs::path dir = temp_dir("bad");
  expect_error([&] { Tokenizer::load((dir / "missing.json").string()); }, ErrorKind::Io, "missing.json");
  expect_error([&] { Tokenizer::load(dir.string()); }, ErrorKind::Io, "no tokenizer.json");
  write(dir / "bad.json", "{\"model\": ");
  expect_error([&] { Tokenizer::load((dir / "bad.json").string()); }, ErrorKind::Parse, "bad.json: bad JSON");
  write(dir / "wp.json", R"({"model":{"type":"WordPiece","vocab":{}}})");
  expect_error([&] { Tokenizer::load((dir / "wp.json").string()); }, ErrorKind::Unsupported, "model.type 'WordPiece'");
  write(dir / "merge.json", tokenizer_json(R"(["a b","ab x"])"));
  expect_error([&] { Tokenizer::load((dir / "merge.json").string()); }, ErrorKind::Parse, "unknown token 'x'");
  std::string nfkc = tokenizer_json("[]", R"("normalizer":{"type":"NFKC"},)");
  const std::string null_norm = R"("normalizer":null,)";
  nfkc.erase(nfkc.find(null_norm), null_norm.size());
  write(dir / "norm.json", nfkc);
  expect_error([&] { Tokenizer::load((dir / "norm.json").string()); }, ErrorKind::Unsupported, "normalizer 'NFKC'");
  const std::string model = sp_model({{"a", -1, 1}}, 2, false);
  write(dir / "cut.model", model.substr(0, model.size() / 2));
  expect_error([&] { Tokenizer::load((dir / "cut.model").string()); }, ErrorKind::Parse, "truncated");
  write(dir / "nfkc.model", sp_model({{"a", -1, 1}}, 2, false, "\x01\x02\x03\x04"));
  expect_error([&] { Tokenizer::load((dir / "nfkc.model").string()); }, ErrorKind::Unsupported, "normalizer 'nmt_nfkc'");
  write(dir / "word.model", sp_model({{"a", -1, 1}}, 3, false));
  expect_error([&] { Tokenizer::load((dir / "word.model").string()); }, ErrorKind::Unsupported, "WORD");
  write(dir / "vocab.json", kVocab);
  write(dir / "merges.txt", "a b c\n");
  expect_error([&] { Tokenizer::load(dir.string()); }, ErrorKind::Parse, "merges.txt:1");
}

TEST(TokenizerErrors, IdOutsideVocabulary) {
  const fs::path dir = temp_dir("range");
  write(dir / "tokenizer.json", tokenizer_json("[]"));
  auto tok = Tokenizer::load(dir.string());
  expect_error([&] { tok->decode({99}); }, ErrorKind::InvalidArgument, "token id 99");
}
