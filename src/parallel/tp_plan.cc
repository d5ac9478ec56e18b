#include "parallel/tp_plan.h"

#include <nlohmann/json.hpp>
#include <regex>

#include "core/error.h"
#include "core/npy.h"

namespace tessera::parallel {

using json = nlohmann::json;

Layout Layout::parse(const std::string& text, const std::string& where) {
  std::smatch m;
  if (text == "Replicate()" || text == "Replicate") return {};
  if (std::regex_match(text, m, std::regex(R"(Shard\((-?\d+)\))"))) return {true, std::stoll(m[1])};
  fail(ErrorKind::InvalidArgument, where, ": layout '", text, "' is not Shard(d) or Replicate()");
}

std::string Layout::str() const { return sharded ? "Shard(" + std::to_string(dim) + ")" : "Replicate()"; }

const char* style_name(Style s) {
  switch (s) {
    case Style::colwise: return "colwise";
    case Style::rowwise: return "rowwise";
    case Style::sequence_parallel: return "sequence_parallel";
    case Style::replicate: return "replicate";
  }
  return "?";
}

namespace {
Style parse_style(const std::string& s, const std::string& where) {
  if (s == "colwise" || s == "ColwiseParallel") return Style::colwise;
  if (s == "rowwise" || s == "RowwiseParallel") return Style::rowwise;
  if (s == "replicate") return Style::replicate;
  if (s == "sequence_parallel" || s == "SequenceParallel") return Style::sequence_parallel;
  fail(ErrorKind::InvalidArgument, where, ": unknown style '", s, "' (colwise, rowwise, sequence_parallel, replicate)");
}

PlanEntry parse_entry(const std::string& pattern, const json& v, const std::string& source) {
  std::string where = source + ": entry '" + pattern + "'";
  PlanEntry e;
  e.pattern = pattern;
  if (v.is_string()) {
    e.style = parse_style(v.get<std::string>(), where);
    return e;
  }
  if (!v.is_object() || !v.contains("style")) fail(ErrorKind::InvalidArgument, where, ": expected a style string or an object with \"style\"");
  for (auto& [k, x] : v.items())
    if (k != "style" && k != "input_layouts" && k != "output_layouts" && k != "use_local_output")
      fail(ErrorKind::InvalidArgument, where, ": unknown key '", k, "' (style, input_layouts, output_layouts, use_local_output)");
  e.style = parse_style(v.at("style").get<std::string>(), where);
  if (v.contains("input_layouts")) e.input_layout = Layout::parse(v["input_layouts"].get<std::string>(), where);
  if (v.contains("output_layouts")) e.output_layout = Layout::parse(v["output_layouts"].get<std::string>(), where);
  if (v.contains("use_local_output")) e.use_local_output = v["use_local_output"].get<bool>();
  if (!e.use_local_output)
    fail(ErrorKind::Unsupported, where, ": use_local_output=false has no meaning here (engines hold each rank's local tensors)");
  if (e.style == Style::sequence_parallel)
    for (const auto& l : {e.input_layout, e.output_layout})
      if (l && !(l->sharded && l->dim == 1))
        fail(ErrorKind::Unsupported, where, ": sequence_parallel runs on the sequence dim: its layouts are Shard(1), not ", l->str());
  return e;
}
}  // namespace

Plan Plan::from_json(const std::string& text, const std::string& source) {
  json doc;
  try {
    doc = json::parse(text);
  } catch (const json::exception& e) {
    fail(ErrorKind::Parse, source, ": not valid JSON (", e.what(), ")");
  }
  if (doc.is_object() && doc.contains("plan")) doc = doc["plan"];
  if (!doc.is_object()) fail(ErrorKind::InvalidArgument, source, ": a plan is a JSON object of module pattern → style");
  Plan p;
  try {
    for (auto& [k, v] : doc.items()) p.entries.push_back(parse_entry(k, v, source));
  } catch (const json::exception& e) {
    fail(ErrorKind::InvalidArgument, source, ": ", e.what());
  }
  return p;
}

Plan Plan::from_file(const std::string& path) { return from_json(read_file(path), path); }

std::string Plan::to_json() const {
  json doc = json::object();
  for (const PlanEntry& e : entries) {
    json v = {{"style", style_name(e.style)}};
    if (e.input_layout) v["input_layouts"] = e.input_layout->str();
    if (e.output_layout) v["output_layouts"] = e.output_layout->str();
    doc[e.pattern] = v;
  }
  return doc.dump(2);
}

bool pattern_matches(const std::string& pattern, const std::string& path) {
  size_t i = 0, j = 0;
  while (i < pattern.size() && j < path.size()) {
    if (pattern[i] == '*') {  // one dotted component
      while (j < path.size() && path[j] != '.') ++j;
      ++i;
      continue;
    }
    if (pattern[i] != path[j]) return false;
    ++i, ++j;
  }
  return i == pattern.size() && j == path.size();
}

const PlanEntry* Plan::match(const std::string& module_path) const {
  for (const PlanEntry& e : entries)
    if (pattern_matches(e.pattern, module_path)) return &e;
  return nullptr;
}

const PlanEntry* Plan::match(const std::vector<std::string>& names) const {
  for (const PlanEntry& e : entries)
    for (const std::string& n : names)
      if (pattern_matches(e.pattern, n)) return &e;
  return nullptr;
}

}  // namespace tessera::parallel
