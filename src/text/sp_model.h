// SentencePiece's ModelProto (tokenizer.model), read straight from the
// protobuf wire format: the pieces with scores and types, and the trainer and
// normalizer settings encoding needs. Field numbers are sentencepiece_model.proto's.
#pragma once
#include <string>
#include <vector>

namespace tessera::text {

enum class SpPieceType { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SpPiece {
  std::string piece;
  float score = 0.0f;
  SpPieceType type = SpPieceType::Normal;
};

struct SpModel {
  std::vector<SpPiece> pieces;
  // trainer_spec
  int model_type = 1;  // UNIGRAM = 1, BPE = 2, WORD = 3, CHAR = 4
  bool byte_fallback = false;
  bool treat_whitespace_as_suffix = false;
  std::string unk_piece = "<unk>", bos_piece = "<s>", eos_piece = "</s>";
  std::string unk_surface = " \xE2\x81\x87 ";
  // normalizer_spec
  std::string normalizer_name;
  std::string precompiled_charsmap;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
};

// `path` names the file in errors (truncated or malformed protobuf, no pieces).
SpModel parse_sp_model(const std::string& bytes, const std::string& path);

}  // namespace tessera::text
