// `tessera tokenize`: encode text with a Hugging Face or SentencePiece
// tokenizer (one JSON array of ids per input line), or with --decode turn
// JSON arrays of ids back into text (one JSON string per line).
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/tokenizer.h"
#include "tools/cli.h"

namespace tessera::cli {

namespace {

struct TokenizeOptions {
  std::string tokenizer, text, input_file;
  bool decode = false, no_special = false, json_lines = false;
};

std::vector<std::string> input_lines(const TokenizeOptions& o) {
  if (o.input_file.empty()) return {o.text};
  std::ifstream f(o.input_file, std::ios::binary);
  if (!f) fail(ErrorKind::Io, o.input_file, ": cannot open");
  std::vector<std::string> lines;
  for (std::string line; std::getline(f, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
  }
  return lines;
}

nlohmann::json parse_line(const std::string& line, size_t index, const TokenizeOptions& o) {
  try {
    return nlohmann::json::parse(line);
  } catch (const nlohmann::json::exception& e) {
    fail(ErrorKind::Parse, o.input_file.empty() ? "--text" : o.input_file, ": line ", index + 1, " is not JSON: ", e.what());
  }
}

void run_tokenize(const TokenizeOptions& o) {
  const auto tok = text::Tokenizer::load(o.tokenizer);
  const std::vector<std::string> lines = input_lines(o);
  for (size_t i = 0; i < lines.size(); ++i) {
    if (o.decode) {
      const nlohmann::json ids = parse_line(lines[i], i, o);
      if (!ids.is_array()) fail(ErrorKind::Parse, "tokenize --decode: line ", i + 1, " is not a JSON array of ids");
      std::cout << nlohmann::json(tok->decode(ids.get<std::vector<int64_t>>(), o.no_special)).dump() << "\n";
    } else {
      const std::string line = o.json_lines ? parse_line(lines[i], i, o).get<std::string>() : lines[i];
      std::cout << nlohmann::json(tok->encode(line, !o.no_special)).dump() << "\n";
    }
  }
}

}  // namespace

void add_tokenize(CLI::App& app) {
  auto* cmd = app.add_subcommand("tokenize", "Encode text to token ids (or --decode ids) with a tokenizer.json, vocab.json+merges.txt or tokenizer.model");
  auto o = std::make_shared<TokenizeOptions>();
  cmd->add_option("--tokenizer", o->tokenizer, "tokenizer file or the model directory holding it")->required();
  auto* text = cmd->add_option("--text", o->text, "one input (with --decode: a JSON array of ids)");
  auto* file = cmd->add_option("--input-file", o->input_file, "one input per line");
  text->excludes(file);
  cmd->add_flag("--decode", o->decode, "inputs are JSON arrays of ids; print each decoded text as a JSON string");
  cmd->add_flag("--no-special", o->no_special, "encode without BOS/EOS; decode skipping special tokens");
  cmd->add_flag("--json-lines", o->json_lines, "each input line is a JSON string (so it can hold newlines)");
  cmd->callback([o] {
    if (o->text.empty() && o->input_file.empty() && o->decode) fail(ErrorKind::InvalidArgument, "tokenize --decode: give --text or --input-file");
    run_tokenize(*o);
  });
}

}  // namespace tessera::cli
