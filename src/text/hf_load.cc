// Reading Hugging Face tokenizer files into HfParts: tokenizer.json (model,
// added_tokens, normalizer, pre_tokenizer, post_processor, decoder) and the
// GPT-2 layout (vocab.json + merges.txt). Anything tessera does not implement
// fails as Unsupported, naming the file and the component.
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/npy.h"
#include "text/hf_tokenizer.h"

namespace tessera::text {

using nlohmann::json;

namespace {

json parse_json(const std::string& path) {
  const std::string bytes = read_file(path);
  try {
    return json::parse(bytes);
  } catch (const json::exception& e) {
    fail(ErrorKind::Parse, "[tokenizer] ", path, ": bad JSON: ", e.what());
  }
}

std::string type_of(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

std::vector<std::pair<std::string, std::string>> parse_merges_json(const json& merges, const std::string& path) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < merges.size(); ++i) {
    const json& m = merges[i];
    if (m.is_string()) {
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail(ErrorKind::Parse, "[tokenizer] ", path, ": merge ", i, " '", s, "' is not two tokens separated by one space");
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      fail(ErrorKind::Parse, "[tokenizer] ", path, ": merge ", i, " is neither \"a b\" nor [\"a\", \"b\"]: ", m.dump());
    }
  }
  return out;
}

std::unordered_map<std::string, int64_t> parse_vocab(const json& vocab, const std::string& path) {
  if (!vocab.is_object()) fail(ErrorKind::Parse, "[tokenizer] ", path, ": vocab is not an object of token → id");
  std::unordered_map<std::string, int64_t> out;
  for (const auto& [tok, id] : vocab.items()) {
    if (!id.is_number_integer()) fail(ErrorKind::Parse, "[tokenizer] ", path, ": vocab entry '", tok, "' has a non-integer id");
    out.emplace(tok, id.get<int64_t>());
  }
  return out;
}

std::unique_ptr<BpeModel> parse_model(const json& model, const std::string& path) {
  const std::string type = type_of(model);
  if (type != "BPE") fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": model.type '", type, "' is not supported (only BPE)");
  auto flag = [&](const char* key) { return model.contains(key) && model[key].is_boolean() && model[key].get<bool>(); };
  if (flag("byte_fallback")) fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": BPE byte_fallback is not supported");
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() != 0.0)
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (model.contains(key) && model[key].is_string() && !model[key].get<std::string>().empty())
      fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": BPE ", key, " is not supported");
  if (!model.contains("vocab") || !model.contains("merges") || !model["merges"].is_array())
    fail(ErrorKind::Parse, "[tokenizer] ", path, ": model needs 'vocab' and a 'merges' array");
  std::optional<std::string> unk;
  if (model.contains("unk_token") && model["unk_token"].is_string()) unk = model["unk_token"].get<std::string>();
  return std::make_unique<BpeModel>(parse_vocab(model["vocab"], path), parse_merges_json(model["merges"], path), unk,
                                    flag("ignore_merges"), flag("fuse_unk"), path);
}

std::vector<AddedToken> parse_added(const json& added, const std::string& path) {
  std::vector<AddedToken> out;
  if (added.is_null()) return out;
  for (const json& a : added) {
    if (!a.contains("id") || !a.contains("content")) fail(ErrorKind::Parse, "[tokenizer] ", path, ": added token without id/content: ", a.dump());
    AddedToken t;
    t.id = a["id"].get<int64_t>();
    t.content = a["content"].get<std::string>();
    t.special = a.value("special", false);
    t.lstrip = a.value("lstrip", false);
    t.rstrip = a.value("rstrip", false);
    t.single_word = a.value("single_word", false);
    out.push_back(std::move(t));
  }
  return out;
}

PreTokenizerStep::Behavior parse_behavior(const json& j, const std::string& path) {
  const std::string b = j.value("behavior", "Isolated");
  if (b == "Isolated") return PreTokenizerStep::Behavior::Isolated;
  if (b == "Removed") return PreTokenizerStep::Behavior::Removed;
  if (b == "MergedWithPrevious") return PreTokenizerStep::Behavior::MergedWithPrevious;
  if (b == "MergedWithNext") return PreTokenizerStep::Behavior::MergedWithNext;
  fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": Split behavior '", b, "' is not supported");
}

void add_pre_tokenizer(const json& j, HfParts& parts, const std::string& path) {
  const std::string type = type_of(j);
  if (j.is_null()) return;
  if (type == "Sequence") {
    for (const json& step : j["pretokenizers"]) add_pre_tokenizer(step, parts, path);
    return;
  }
  if (parts.byte_level) fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": pre_tokenizer ", type, " after ByteLevel is not supported");
  PreTokenizerStep step;
  if (type == "ByteLevel") {
    step.kind = PreTokenizerStep::Kind::ByteLevel;
    step.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) step.regex = std::make_shared<Regex>(kGpt2Pattern, false, path);
    parts.byte_level = true;
  } else if (type == "Split") {
    if (j.value("invert", false)) fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": Split with invert=true is not supported");
    const json& pat = j["pattern"];
    const bool literal = pat.contains("String");
    if (!literal && !pat.contains("Regex")) fail(ErrorKind::Parse, "[tokenizer] ", path, ": Split pattern is neither String nor Regex");
    step.regex = std::make_shared<Regex>(pat[literal ? "String" : "Regex"].get<std::string>(), literal, path);
    step.behavior = parse_behavior(j, path);
  } else {
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": pre_tokenizer '", type, "' is not supported (ByteLevel, Split, Sequence)");
  }
  parts.pre.push_back(std::move(step));
}

// TemplateProcessing's "single": special tokens before and after $A.
void add_template(const json& j, HfParts& parts, const std::string& path) {
  bool after = false;
  for (const json& item : j["single"]) {
    if (item.contains("Sequence")) {
      after = true;
      continue;
    }
    const std::string name = item["SpecialToken"]["id"].get<std::string>();
    const json& special = j["special_tokens"];
    if (!special.contains(name)) fail(ErrorKind::Parse, "[tokenizer] ", path, ": template names unknown special token '", name, "'");
    for (const json& id : special[name]["ids"]) (after ? parts.suffix : parts.prefix).push_back(id.get<int64_t>());
  }
}

void add_post_processor(const json& j, HfParts& parts, const std::string& path) {
  const std::string type = type_of(j);
  if (j.is_null() || type == "ByteLevel") return;  // ByteLevel only trims offsets
  if (type == "Sequence") {
    for (const json& p : j["processors"]) add_post_processor(p, parts, path);
  } else if (type == "TemplateProcessing") {
    add_template(j, parts, path);
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    parts.prefix.push_back(j["cls"][1].get<int64_t>());
    parts.suffix.push_back(j["sep"][1].get<int64_t>());
  } else {
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": post_processor '", type, "' is not supported");
  }
}

void check_normalizer_and_decoder(const json& root, const std::string& path) {
  const json& norm = root.value("normalizer", json());
  if (!norm.is_null()) fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": normalizer '", type_of(norm), "' is not supported (only none)");
  const json& dec = root.value("decoder", json());
  if (!dec.is_null() && type_of(dec) != "ByteLevel")
    fail(ErrorKind::Unsupported, "[tokenizer] ", path, ": decoder '", type_of(dec), "' is not supported (only ByteLevel)");
}

// bos/eos: tokenizer_config.json beside the file if present, else the
// template's first token and the usual names.
std::optional<int64_t> named_token(const HfTokenizer& tok, const std::string& dir, const char* key,
                                   std::initializer_list<const char*> fallbacks) {
  const std::string cfg_path = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  if (!dir.empty() && std::filesystem::is_regular_file(cfg_path)) {
    const json cfg = parse_json(cfg_path);
    if (cfg.contains(key)) {
      const json& v = cfg[key];
      if (v.is_string()) return tok.token_id(v.get<std::string>());
      if (v.is_object() && v.contains("content")) return tok.token_id(v["content"].get<std::string>());
    }
  }
  for (const char* name : fallbacks)
    if (auto id = tok.token_id(name)) return id;
  return std::nullopt;
}

std::unique_ptr<HfTokenizer> finish(HfParts parts, const std::string& path) {
  const std::string dir = std::filesystem::path(path).parent_path().string();
  const std::optional<int64_t> template_bos = parts.prefix.empty() ? std::nullopt : std::optional<int64_t>(parts.prefix[0]);
  auto tok = std::make_unique<HfTokenizer>(std::move(parts));
  tok->set_bos_eos(template_bos ? template_bos : named_token(*tok, dir, "bos_token", {"<|begin_of_text|>", "<s>", "<|endoftext|>"}),
                   named_token(*tok, dir, "eos_token", {"<|end_of_text|>", "<|endoftext|>", "</s>", "<|eot_id|>"}));
  return tok;
}

}  // namespace

std::unique_ptr<HfTokenizer> HfTokenizer::from_tokenizer_json(const std::string& path) {
  const json root = parse_json(path);
  if (!root.is_object() || !root.contains("model")) fail(ErrorKind::Parse, "[tokenizer] ", path, ": no 'model' object (not a tokenizer.json?)");
  try {
    check_normalizer_and_decoder(root, path);
    HfParts parts;
    parts.model = parse_model(root["model"], path);
    parts.added = parse_added(root.value("added_tokens", json()), path);
    add_pre_tokenizer(root.value("pre_tokenizer", json()), parts, path);
    add_post_processor(root.value("post_processor", json()), parts, path);
    return finish(std::move(parts), path);
  } catch (const json::exception& e) {
    fail(ErrorKind::Parse, "[tokenizer] ", path, ": unexpected layout: ", e.what());
  }
}

std::unique_ptr<HfTokenizer> HfTokenizer::from_vocab_merges(const std::string& vocab_path, const std::string& merges_path) {
  const json vocab = parse_json(vocab_path);
  const std::string text = read_file(merges_path);
  std::vector<std::pair<std::string, std::string>> merges;
  size_t line_no = 0, pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line.rfind("#version", 0) == 0) continue;
    const size_t sp = line.find(' ');
    if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
      fail(ErrorKind::Parse, "[tokenizer] ", merges_path, ":", line_no, ": '", line, "' is not two tokens separated by one space");
    merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  // GPT-2's layout: ByteLevel pre-tokenizer, no BOS added, <|endoftext|> special.
  HfParts parts;
  parts.model = std::make_unique<BpeModel>(parse_vocab(vocab, vocab_path), merges, std::nullopt, false, false, merges_path);
  PreTokenizerStep step;
  step.kind = PreTokenizerStep::Kind::ByteLevel;
  step.regex = std::make_shared<Regex>(kGpt2Pattern, false, vocab_path);
  parts.pre.push_back(std::move(step));
  parts.byte_level = true;
  if (auto id = parts.model->token_id("<|endoftext|>")) parts.added.push_back({"<|endoftext|>", *id, true});
  return finish(std::move(parts), vocab_path);
}

}  // namespace tessera::text
