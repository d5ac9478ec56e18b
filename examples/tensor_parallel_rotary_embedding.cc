// The seed's tensor_parallel_rotary_embedding (Torch-TensorRT's
// examples/distributed_inference, module RotaryAttention in rotary_embedding.py)
// in C++: x [B, S, H, D] → wq, wk (nn.Linear D→D) → Llama's complex-form RoPE
// (interleaved pairs viewed as complex numbers times freqs_cis =
// polar(1, t·θ^(-2i/D)), broadcast as freqs_cis[None, :, None, :]) on q and k
// → wo(q). As in the seed, there is no attention: forward returns wo(rope(q))
// and the rotated k is unused (tessera's dead-code pass drops it). Attention
// over this layout could not be sharded by the plan anyway: the colwise shard
// is D, the dim q·kᵀ contracts over.
//
// The graph is built as an exporter writes it (MatMul with a transposed
// nn.Linear weight + bias Add, the pair view as Reshape [.., D/2, 2] with
// Slice / Mul / Sub / Add / Concat, Reshape back) and sharded by the seed's
// DTensor plan through the engine, not by hand:
//   wq, wk: ColwiseParallel()          (each rank computes D/N features)
//   wo:     RowwiseParallel(output_layouts=Shard(0))  (a ReduceScatter on dim 0)
// Shard propagation slices the cos/sin tables to each rank's block of pairs.
//
//   tessera launch --nproc-per-node 2 -- ./build/tensor_parallel_rotary_embedding
//       [--batch 4] [--seq 128] [--heads 4] [--dim 128]
//
// Defaults are the seed's sizes except batch 4 (the seed's 2), so that
// Shard(0) divides over 2 and 4 ranks. Every rank checks its rows of the
// output against the single-rank engine and the single-rank engine against a
// double-precision reference (rel. L2 <= 1e-5 each), prints p50 timings, and
// exits non-zero on a mismatch.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <complex>
#include <cstring>
#include <iomanip>
#include <iostream>
#include <random>

#include "dist/process_group.h"
#include "frontend/hf/build_common.h"
#include "parallel/tp_plan.h"
#include "tessera/tessera.h"

using namespace tessera;

namespace {

struct Sizes {
  int64_t batch = 4, seq = 128, heads = 4, dim = 128;
};

Sizes parse_args(int argc, char** argv) {
  Sizes s;
  for (int i = 1; i < argc; i += 2) {
    std::string key = argv[i];
    int64_t* field = key == "--batch" ? &s.batch : key == "--seq" ? &s.seq : key == "--heads" ? &s.heads : key == "--dim" ? &s.dim : nullptr;
    if (!field) fail(ErrorKind::InvalidArgument, "unknown argument '", key, "' (options: --batch, --seq, --heads, --dim)");
    if (i + 1 >= argc) fail(ErrorKind::InvalidArgument, key, " needs a value");
    try {
      *field = std::stoll(argv[i + 1]);
    } catch (const std::exception&) {
      fail(ErrorKind::InvalidArgument, key, ": '", argv[i + 1], "' is not an integer");
    }
    if (*field <= 0) fail(ErrorKind::InvalidArgument, key, " must be positive, got ", *field);
  }
  if (s.dim % 2) fail(ErrorKind::InvalidArgument, "--dim ", s.dim, ": RoPE pairs features, so the dim must be even");
  return s;
}

struct Linear {
  Tensor weight;  // [out, in], as nn.Linear stores it
  Tensor bias;    // [out]
};

// nn.Linear's default init range, seeded.
Linear make_linear(int64_t dim, std::mt19937_64& gen) {
  float bound = 1.0f / std::sqrt(float(dim));
  std::uniform_real_distribution<float> u(-bound, bound);
  Linear l{Tensor::empty(DType::f32, {dim, dim}), Tensor::empty(DType::f32, {dim})};
  for (int64_t i = 0; i < l.weight.numel(); ++i) l.weight.data<float>()[i] = u(gen);
  for (int64_t i = 0; i < dim; ++i) l.bias.data<float>()[i] = u(gen);
  return l;
}

struct Weights {
  Linear wq, wk, wo;
};

// precompute_freqs_cis: angle of pair i at position t is t / θ^(2i/D), θ = 10000.
double angle(int64_t t, int64_t pair, int64_t dim) { return double(t) / std::pow(10000.0, double(2 * pair) / double(dim)); }

// freqs_cis[None, :, None, :] as its real (cos) or imaginary (sin) part, with
// a trailing 1 to broadcast against the [.., D/2, 1] halves of each pair.
Tensor freqs_part(const Sizes& s, bool imag) {
  Tensor t = Tensor::empty(DType::f32, {1, s.seq, 1, s.dim / 2, 1});
  for (int64_t p = 0; p < s.seq; ++p)
    for (int64_t i = 0; i < s.dim / 2; ++i) {
      double a = angle(p, i, s.dim);
      t.data<float>()[p * (s.dim / 2) + i] = float(imag ? std::sin(a) : std::cos(a));
    }
  return t;
}

// x @ W^T + b as the PyTorch exporter writes nn.Linear on a 4-D input.
Value* linear(hf::GraphBuilder& b, const std::string& name, Value* x, const Linear& l) {
  Value* w = b.constant(name + ".weight", l.weight);
  Attributes perm;
  perm.set("perm", std::vector<int64_t>{1, 0});
  Value* wt = b.op("Transpose", "/" + name + "/Transpose", {w}, perm);
  Value* y = b.op("MatMul", "/" + name + "/MatMul", {x, wt});
  return b.op("Add", "/" + name + "/Add", {y, b.constant(name + ".bias", l.bias)});
}

// rotary_embedding: view_as_complex(x.reshape(*x.shape[:-1], -1, 2)) * freqs_cis, view_as_real, flatten(3).
Value* rope(hf::GraphBuilder& b, const std::string& name, Value* x, Value* cos, Value* sin) {
  Value* pairs = b.op("Reshape", name + "/view_as_complex", {x, b.i64s({0, 0, 0, -1, 2})});
  Value* re = b.slice(name + "/real", pairs, 4, 0, 1);
  Value* im = b.slice(name + "/imag", pairs, 4, 1, 2);
  // (re + i·im)(cos + i·sin) = (re·cos − im·sin) + i·(re·sin + im·cos)
  Value* out_re = b.op("Sub", name + "/out_real", {b.op("Mul", name + "/re_cos", {re, cos}), b.op("Mul", name + "/im_sin", {im, sin})});
  Value* out_im = b.op("Add", name + "/out_imag", {b.op("Mul", name + "/re_sin", {re, sin}), b.op("Mul", name + "/im_cos", {im, cos})});
  Attributes axis;
  axis.set("axis", int64_t(4));
  Value* real = b.op("Concat", name + "/view_as_real", {out_re, out_im}, axis);
  return b.op("Reshape", name + "/flatten", {real, b.i64s({0, 0, 0, -1})});
}

Graph make_graph(const Weights& w, const Sizes& s) {
  Graph g;
  g.name = "rotary_attention";
  hf::GraphBuilder b(g);
  Value* x = b.input("x", DType::f32, {s.batch, s.seq, s.heads, s.dim}, {"batch", "seq", "heads", "dim"});
  Value* cos = b.constant("freqs_cis.real", freqs_part(s, false));
  Value* sin = b.constant("freqs_cis.imag", freqs_part(s, true));
  Value* q = rope(b, "/rotary_q", linear(b, "wq", x, w.wq), cos, sin);
  rope(b, "/rotary_k", linear(b, "wk", x, w.wk), cos, sin);  // the seed rotates k and drops it
  Value* y = linear(b, "wo", q, w.wo);
  g.outputs.push_back(y);
  return g;
}

parallel::Plan seed_plan() {
  parallel::Plan p;
  p.entries.push_back({"wq", parallel::Style::colwise, {}, {}, true});
  p.entries.push_back({"wk", parallel::Style::colwise, {}, {}, true});
  p.entries.push_back({"wo", parallel::Style::rowwise, {}, parallel::Layout{true, 0}, true});
  return p;
}

// wo(rope(wq x)) in double precision, the complex product written with std::complex.
std::vector<double> reference_forward(const Weights& w, const Sizes& s, const Tensor& x) {
  int64_t D = s.dim, rows = s.batch * s.seq * s.heads;
  std::vector<double> out(size_t(rows * D)), q(static_cast<size_t>(D));
  for (int64_t r = 0; r < rows; ++r) {
    int64_t pos = (r / s.heads) % s.seq;
    const float* xr = x.data<float>() + r * D;
    for (int64_t o = 0; o < D; ++o) {
      double acc = w.wq.bias.data<float>()[o];
      for (int64_t i = 0; i < D; ++i) acc += double(xr[i]) * w.wq.weight.data<float>()[o * D + i];
      q[size_t(o)] = acc;
    }
    for (int64_t i = 0; i < D / 2; ++i) {
      std::complex<double> z = std::complex<double>(q[size_t(2 * i)], q[size_t(2 * i + 1)]) * std::polar(1.0, angle(pos, i, D));
      q[size_t(2 * i)] = z.real(), q[size_t(2 * i + 1)] = z.imag();
    }
    for (int64_t o = 0; o < D; ++o) {
      double acc = w.wo.bias.data<float>()[o];
      for (int64_t i = 0; i < D; ++i) acc += q[size_t(i)] * w.wo.weight.data<float>()[o * D + i];
      out[size_t(r * D + o)] = acc;
    }
  }
  return out;
}

double rel_l2(const float* a, const double* b, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    double d = double(a[i]) - b[i];
    num += d * d, den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

double p50_ms(const Engine& e, const Tensor& x, int iters) {
  std::vector<double> ms;
  for (int i = 0; i < iters; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    e.run({{"x", x}});
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int run(int argc, char** argv) {
  Sizes s = parse_args(argc, argv);
  auto pg = dist::init_process_group("gloo", std::chrono::seconds(60));
  int rank = pg->info.rank, world = pg->info.world_size;
  if (s.batch % world)
    fail(ErrorKind::InvalidArgument, "--batch ", s.batch, " does not divide by ", world, " ranks (wo's output_layouts=Shard(0) splits the batch)");
  std::mt19937_64 gen(0);  // the same weights and input on every rank
  Weights w{make_linear(s.dim, gen), make_linear(s.dim, gen), make_linear(s.dim, gen)};
  std::normal_distribution<float> normal;
  Tensor x = Tensor::empty(DType::f32, {s.batch, s.seq, s.heads, s.dim});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = normal(gen);

  Settings tp;
  tp.tp_degree = world, tp.tp_rank = rank, tp.plan_json = seed_plan().to_json();
  Engine sharded = Engine::build(make_graph(w, s), world > 1 ? tp : Settings{});
  if (world > 1) sharded.set_communicator(pg->world);
  Engine single = Engine::build(make_graph(w, s), Settings{});

  // ColwiseParallel's input_layouts default, Replicate(): every rank reads all of x.
  Tensor y_local = sharded.run({{"x", x}}).begin()->second;
  Tensor y_full = single.run({{"x", x}}).begin()->second;
  std::vector<double> ref = reference_forward(w, s, x);
  int64_t local = s.batch / world, row = s.seq * s.heads * s.dim;  // output_layouts=Shard(0): rank r holds batch rows r*B/N..
  std::vector<double> mine(y_full.data<float>() + rank * local * row, y_full.data<float>() + (rank + 1) * local * row);
  Shape want = {local, s.seq, s.heads, s.dim};
  if (y_local.shape() != want)
    fail(ErrorKind::Internal, "rank ", rank, ": sharded output is ", to_string(y_local.shape()), ", expected ", to_string(want));
  double err = rel_l2(y_local.data<float>(), mine.data(), local * row);
  double err_ref = rel_l2(y_full.data<float>(), ref.data(), y_full.numel());
  double tp_ms = p50_ms(sharded, x, 20), one_ms = p50_ms(single, x, 20);
  pg->world->barrier();
  std::cout << "rank " << rank << "/" << world << ": output " << to_string(y_local.shape()) << " (batch rows " << rank * local << ".."
            << (rank + 1) * local - 1 << "), rel. L2 vs single rank " << std::scientific << std::setprecision(2) << err
            << ", single rank vs float64 reference " << err_ref << std::fixed << std::setprecision(3) << ", p50 " << tp_ms
            << " ms sharded vs " << one_ms << " ms single (cpu, gloo)\n";
  pg->finish();
  if (!(err <= 1e-5) || !(err_ref <= 1e-5)) {
    std::cerr << "rank " << rank << ": " << (err <= 1e-5 ? "the single-rank engine differs from the float64 reference"
                                                         : "sharded result differs from the single-rank result") << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "tensor_parallel_rotary_embedding: error: " << e.what() << "\n";
    return 1;
  }
}
