// The seed's tensor_parallel_llama3 in C++: a whole Llama-3 model sharded
// over the ranks of `tessera launch` with DTensor's Llama plan — q/k/v and
// gate/up colwise, o and down rowwise with an AllReduce, the LM head
// vocab-parallel with an AllGather — each rank reading only its slab of every
// weight (hf::build_causal_lm with tp_rank / tp_degree), then greedy
// generation with gen::Generator over the sharded engine.
//
//   tessera launch --nproc-per-node 2 -- ./build/tensor_parallel_llama3 [MODEL_DIR]
//
// Without MODEL_DIR each rank writes the same random-weight tiny Llama 3
// (transformers' layout, llama3 RoPE scaling, 4 query / 2 KV heads) to a
// temporary directory: no downloads. Every rank also builds the single-rank
// engine in the same process and checks (1) the generated tokens are equal
// and (2) the logits of every position of each prompt + its generation agree
// (rel. L2 <= 1e-5, fp32); it prints tokens/s and exits non-zero on a mismatch.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <unistd.h>

#include "dist/process_group.h"
#include "frontend/hf/causal_lm.h"
#include "generate/generator.h"

using namespace tessera;

namespace {

// Token-id prompts of different lengths (continuous batching refills slots).
const std::vector<std::vector<int64_t>> kPrompts = {
    {256, 72, 101, 108, 108, 111}, {256, 84, 104, 101, 32, 99, 97, 112, 105, 116, 97, 108}, {256, 49}, {256, 100, 101, 102, 32, 102}};
const int64_t kNewTokens = 16;

// The model directory; a temporary one is removed however the run ends.
struct Model {
  std::string dir;
  bool temporary = false;
  ~Model() {
    if (temporary) std::filesystem::remove_all(dir);
  }
};

void open_model(int argc, char** argv, Model& m) {
  if (argc > 2) fail(ErrorKind::InvalidArgument, "usage: tensor_parallel_llama3 [MODEL_DIR]");
  if (argc == 2) {
    m.dir = argv[1];
    return;
  }
  m.dir = (std::filesystem::temp_directory_path() / ("tessera_llama3_tiny_" + std::to_string(getpid()))).string();
  m.temporary = true;
  hf::write_random_checkpoint(hf::preset_config("llama", "tiny"), DType::f32, 0, m.dir);
}

Engine build(const hf::ModelConfig& cfg, const hf::Checkpoint& ckpt, int rank, int world, bool all_logits, dist::ProcessGroup& pg) {
  hf::BuildOptions b;
  b.cache_len = std::min<int64_t>(cfg.max_positions, 128);
  b.tp_rank = rank, b.tp_degree = world;
  b.all_logits = all_logits;
  Settings s;
  s.tp_rank = rank, s.tp_degree = world;  // no plan: the builder already read only this rank's slabs
  Engine e = Engine::build(hf::build_causal_lm(cfg, ckpt, b), s);
  if (world > 1) e.set_communicator(pg.world);
  return e;
}

double rel_l2(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape()) fail(ErrorKind::Internal, "logits ", to_string(a.shape()), " vs ", to_string(b.shape()));
  double num = 0, den = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    double d = double(a.data<float>()[i]) - b.data<float>()[i];
    num += d * d, den += double(b.data<float>()[i]) * b.data<float>()[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

int run(int argc, char** argv) {
  auto pg = dist::init_process_group("gloo", std::chrono::seconds(60));
  int rank = pg->info.rank, world = pg->info.world_size;
  Model m;
  open_model(argc, argv, m);
  hf::ModelConfig cfg = hf::load_model_config(m.dir);
  if (cfg.model_type != "llama") fail(ErrorKind::InvalidArgument, m.dir, ": model_type '", cfg.model_type, "', this example runs Llama models");
  hf::Checkpoint ckpt = hf::Checkpoint::open(m.dir);
  hf::validate(cfg, ckpt);
  Engine sharded = build(cfg, ckpt, rank, world, false, *pg);
  Engine single = build(cfg, ckpt, 0, 1, false, *pg);

  std::vector<gen::Request> reqs;
  for (const auto& p : kPrompts) {
    gen::Request r;
    r.prompt = p;
    r.max_new_tokens = kNewTokens;
    r.sampling.greedy = true;
    reqs.push_back(r);
  }
  gen::Generator tp_gen(sharded, 2), one_gen(single, 2);
  std::vector<gen::Result> tp_res = tp_gen.generate(reqs), one_res = one_gen.generate(reqs);

  // Logits of every position of prompt + generation, from all-logits builds.
  Engine sharded_all = build(cfg, ckpt, rank, world, true, *pg), single_all = build(cfg, ckpt, 0, 1, true, *pg);
  gen::Generator tp_fwd(sharded_all, 1), one_fwd(single_all, 1);
  int status = 0;
  double worst = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    bool same = tp_res[i].tokens == one_res[i].tokens;
    std::vector<int64_t> seq = reqs[i].prompt;
    seq.insert(seq.end(), one_res[i].tokens.begin(), one_res[i].tokens.end());
    if (seq.size() > 1) seq.pop_back();  // the last token was never fed back
    double err = rel_l2(tp_fwd.forward(seq), one_fwd.forward(seq));
    worst = std::max(worst, err);
    if (!same || !(err <= 1e-5)) status = 1;
    if (rank == 0 || !same) {
      std::cout << "[rank " << rank << "] prompt " << i << " ->";
      for (int64_t t : tp_res[i].tokens) std::cout << " " << t;
      std::cout << (same ? " (= single rank)" : " (DIFFERS from the single rank)") << ", logits rel. L2 " << std::scientific
                << std::setprecision(2) << err << std::defaultfloat << "\n";
    }
  }
  pg->world->barrier();
  std::cout << "[rank " << rank << "/" << world << "] " << reqs.size() << " prompts, " << tp_gen.stats().generated_tokens
            << " tokens, worst logits rel. L2 " << std::scientific << std::setprecision(2) << worst << std::fixed
            << std::setprecision(1) << ", " << tp_gen.stats().decode_tokens_per_s() << " tokens/s decoding sharded vs "
            << one_gen.stats().decode_tokens_per_s() << " single (cpu, gloo)" << (status ? " MISMATCH" : "") << "\n";
  pg->finish();
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "tensor_parallel_llama3: error: " << e.what() << "\n";
    return 1;
  }
}
