// Tensor-parallel plans, after DTensor's parallelize_module: module-name
// patterns mapped to a style and layouts.
//
//   {"in_proj":  {"style": "colwise", "input_layouts": "Shard(0)"},
//    "out_proj": {"style": "rowwise", "output_layouts": "Shard(0)"},
//    "layers.*.mlp.fc1": "colwise"}
//
// A pattern matches a module path (PyTorch's dotted names, as exporters keep
// them in initializer names "fc1.weight", node names "/fc1/Gemm", or — the
// dynamo exporter, whose names are "val_50" and "node_linear_3" — in each
// node's recorded module scope); `*` matches one path component.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace tessera::parallel {

// sequence_parallel: DTensor's SequenceParallel on a norm or dropout module —
// it runs on its input sharded along the sequence, Shard(1), and gives Shard(1).
enum class Style { colwise, rowwise, sequence_parallel, replicate };

// Shard(d) or Replicate().
struct Layout {
  bool sharded = false;
  int64_t dim = 0;
  static Layout parse(const std::string& text, const std::string& where);
  std::string str() const;
};

struct PlanEntry {
  std::string pattern;
  Style style = Style::colwise;
  std::optional<Layout> input_layout;   // default: Replicate()
  std::optional<Layout> output_layout;  // colwise: Shard(-1); rowwise: Replicate()
  bool use_local_output = true;
};

struct Plan {
  std::vector<PlanEntry> entries;
  static Plan from_json(const std::string& text, const std::string& source);
  static Plan from_file(const std::string& path);
  std::string to_json() const;
  // The first entry whose pattern matches `module_path`, or null.
  const PlanEntry* match(const std::string& module_path) const;
  // The first entry whose pattern matches any of a layer's names (its module
  // path as the exporter recorded it, its weight's name, ...), or null.
  const PlanEntry* match(const std::vector<std::string>& names) const;
};

bool pattern_matches(const std::string& pattern, const std::string& path);
const char* style_name(Style s);

}  // namespace tessera::parallel
