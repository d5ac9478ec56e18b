// A Hugging Face model directory's weights: one `model.safetensors`, or the
// shards a `model.safetensors.index.json` (weight_map: name → file) names.
// Every shard is opened and checked up front, so a missing shard, an index
// naming a tensor its shard lacks, or a truncated file fails at open, naming
// the tensor and the file. Also the random-checkpoint writer behind
// `tessera make-checkpoint`.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "frontend/hf/config.h"
#include "frontend/hf/safetensors.h"

namespace tessera::hf {

class Checkpoint {
 public:
  // `dir` holds model.safetensors or model.safetensors.index.json (a path to
  // either file also works). pytorch_model.bin alone is refused (Unsupported).
  static Checkpoint open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // Sorted tensor names.
  std::vector<std::string> names() const;
  bool has(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  // Path of the file holding `name`.
  const std::string& file_of(const std::string& name) const;
  Tensor tensor(const std::string& name) const;  // zero-copy view
  Tensor slice(const std::string& name, int64_t dim, int64_t start, int64_t length) const;

 private:
  // Older GPT-2 checkpoints (the hub's openai-community/gpt2) were saved
  // without the `transformer.` prefix; a lookup falls back to the bare name.
  const std::string* resolve(const std::string& name) const;
  const SafetensorsFile& file(const std::string& name) const;

  std::string dir_;
  std::vector<std::shared_ptr<SafetensorsFile>> files_;
  std::map<std::string, size_t> where_;  // tensor → index into files_
};

// Writes DIR/config.json and random weights initialised like transformers'
// _init_weights (N(0, 0.02) weights, ones for norm weights, zeros for biases).
// Values depend only on (seed, tensor name), so sharding does not change them.
// max_shard_bytes > 0 splits into model-0000i-of-0000n.safetensors + index.
void write_random_checkpoint(const ModelConfig& cfg, DType dtype, uint64_t seed, const std::string& dir,
                             int64_t max_shard_bytes = 0);

}  // namespace tessera::hf
