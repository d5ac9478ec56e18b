// GPT-2 text generation, data-parallel: every rank builds the same engine
// from a Hugging Face checkpoint directory, takes its part of the prompts
// (split_between_processes order: contiguous, the first ranks take one
// more), generates greedily with continuous batching, and prints its
// generations. Each rank then checks its tokens against generating every one
// of its prompts alone, one sequence at a time.
//
//   tessera launch --nproc-per-node 2 -- ./build/data_parallel_gpt2 [MODEL_DIR]
//
// Without MODEL_DIR each rank writes the same random-weight tiny GPT-2
// (transformers' layout) to a temporary directory: no downloads. With a
// directory holding a tokenizer the prompts are text; otherwise token ids.
#include <filesystem>
#include <iostream>
#include <unistd.h>

#include "dist/process_group.h"
#include "frontend/hf/causal_lm.h"
#include "generate/generator.h"
#include "parallel/dp_split.h"
#include "text/tokenizer.h"

using namespace tessera;

namespace {

const char* kPrompts[] = {"Hello, my name is", "The capital of France is", "def fibonacci(n):", "Tensor parallelism splits",
                          "Once upon a time", "The quick brown fox"};

std::string model_dir(int argc, char** argv, int rank) {
  if (argc > 1) return argv[1];
  std::string dir = (std::filesystem::temp_directory_path() / ("tessera_gpt2_tiny_" + std::to_string(getpid()))).string();
  hf::write_random_checkpoint(hf::preset_config("gpt2", "tiny"), DType::f32, 0, dir);
  (void)rank;
  return dir;
}

std::vector<int64_t> prompt_ids(const text::Tokenizer* tok, size_t i, int64_t vocab) {
  if (tok) return tok->encode(kPrompts[i]);
  std::vector<int64_t> ids;
  for (char c : std::string(kPrompts[i])) ids.push_back(int64_t(static_cast<unsigned char>(c)) % vocab);  // bytes as ids
  return ids;
}

int run(int argc, char** argv) {
  auto pg = dist::init_process_group("gloo", std::chrono::seconds(60));
  int rank = pg->info.rank, world = pg->info.world_size;
  std::string dir = model_dir(argc, argv, rank);
  hf::ModelConfig cfg = hf::load_model_config(dir);
  hf::Checkpoint ckpt = hf::Checkpoint::open(dir);
  hf::validate(cfg, ckpt);
  std::unique_ptr<text::Tokenizer> tok;
  try {
    tok = text::Tokenizer::load(dir);
  } catch (const Error&) {
  }
  hf::BuildOptions b;
  b.cache_len = std::min<int64_t>(cfg.max_positions, 128);
  Engine engine = Engine::build(hf::build_causal_lm(cfg, ckpt, b), Settings{});
  size_t n = sizeof(kPrompts) / sizeof(kPrompts[0]);
  parallel::Part part = parallel::split_range(int64_t(n), rank, world, false);
  std::vector<gen::Request> reqs;
  for (int64_t i = part.begin; i < part.end; ++i) {
    gen::Request r;
    r.prompt = prompt_ids(tok.get(), size_t(i), cfg.vocab_size);
    r.max_new_tokens = 16;
    r.sampling.greedy = true;
    reqs.push_back(r);
  }
  gen::Generator batched(engine, 2);
  std::vector<gen::Result> res = batched.generate(reqs);
  int status = 0;
  for (size_t k = 0; k < res.size(); ++k) {
    gen::Generator alone(engine, 1);
    bool same = alone.generate({reqs[k]})[0].tokens == res[k].tokens;
    status |= same ? 0 : 1;
    std::string out = tok ? tok->decode(res[k].tokens, true) : "";
    std::cout << "[rank " << rank << "] prompt " << part.begin + int64_t(k) << " \"" << kPrompts[part.begin + int64_t(k)] << "\" -> ";
    if (tok) std::cout << "\"" << out << "\"";
    else for (int64_t t : res[k].tokens) std::cout << t << " ";
    std::cout << (same ? "(= alone)" : "(DIFFERS from generating it alone)") << "\n";
  }
  const gen::Stats& st = batched.stats();
  std::cout << "[rank " << rank << "] " << res.size() << " of " << n << " prompts, " << st.generated_tokens << " tokens, "
            << st.decode_tokens_per_s()
            << " tokens/s decoding (cpu)\n";
  if (argc <= 1) std::filesystem::remove_all(dir);
  pg->finish();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "data_parallel_gpt2: error: " << e.what() << "\n";
    return 1;
  }
}
