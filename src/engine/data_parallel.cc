#include "engine/data_parallel.h"

#include <algorithm>

#include "parallel/dp_split.h"

namespace tessera {

using parallel::Part;
using parallel::take_rows;

int64_t engine_batch_size(const Graph& g) {
  int64_t fixed = kUnknownDim;
  std::string fixed_name;
  for (const Value* in : g.inputs) {
    if (!in->rank_known) continue;
    TSR_CHECK(!in->shape.empty(), ErrorKind::InvalidArgument, "input '", in->name,
              "' is a scalar: data parallelism splits every input along dim 0 (the batch)");
    int64_t d = in->shape[0];
    if (d == kUnknownDim) continue;
    TSR_CHECK(fixed == kUnknownDim || d == fixed, ErrorKind::InvalidArgument, "inputs '", fixed_name, "' and '", in->name,
              "' have fixed batch dims ", fixed, " and ", d, ": data parallelism needs one batch dim");
    TSR_CHECK(d > 0, ErrorKind::InvalidArgument, "input '", in->name, "' has a fixed batch dim of 0: nothing to run");
    fixed = d;
    fixed_name = in->name;
  }
  return fixed;
}

namespace {
void check_batched_outputs(const std::map<std::string, Tensor>& outs, int64_t rows) {
  for (const auto& [name, t] : outs)
    TSR_CHECK(t.rank() >= 1 && t.dim(0) == rows, ErrorKind::InvalidArgument, "output '", name, "' has shape ",
              to_string(t.shape()), " for a batch of ", rows, " rows: data parallelism needs every output batched along dim 0");
}

std::map<std::string, Tensor> micro_batch(const std::map<std::string, Tensor>& inputs, int64_t begin, int64_t end,
                                          int64_t size) {
  std::map<std::string, Tensor> batch;
  for (const auto& [name, t] : inputs) batch[name] = take_rows(t, begin, end, size - (end - begin), "input '" + name + "'");
  return batch;
}

std::map<std::string, Tensor> concat_pieces(const std::map<std::string, std::vector<Tensor>>& pieces) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, list] : pieces) out[name] = parallel::concat_rows(list, "output '" + name + "'");
  return out;
}
}  // namespace

std::map<std::string, Tensor> run_in_micro_batches(const Engine& e, const std::map<std::string, Tensor>& inputs,
                                                   const ProgressFn& progress) {
  int64_t rows = parallel::batch_size(inputs, "inputs");
  TSR_CHECK(rows > 0, ErrorKind::InvalidArgument, "inputs: the batch is empty (dim 0 is 0)");
  int64_t size = engine_batch_size(e.graph());
  if (size == kUnknownDim || size == rows) {
    auto outs = e.run(inputs);
    check_batched_outputs(outs, rows);
    return outs;
  }
  int64_t total = (rows + size - 1) / size;
  std::map<std::string, std::vector<Tensor>> pieces;
  for (int64_t k = 0; k < total; ++k) {
    int64_t begin = k * size, end = std::min(rows, begin + size);
    auto outs = e.run(micro_batch(inputs, begin, end, size));
    check_batched_outputs(outs, size);
    for (auto& [name, t] : outs)
      pieces[name].push_back(end - begin == size ? t : take_rows(t, 0, end - begin, 0, "output '" + name + "'"));
    if (progress && total > 1) progress(k + 1, total);
  }
  return concat_pieces(pieces);
}

namespace {
// Per rank: rows sent, rows that are real, dtype, values per row.
constexpr int kMeta = 4;

std::vector<int64_t> exchange_meta(dist::Communicator& comm, const Tensor& t, int64_t real_rows) {
  Tensor mine = Tensor::vector_i64({t.dim(0), real_rows, int64_t(t.dtype()), t.numel() / std::max<int64_t>(1, t.dim(0))});
  Tensor all = Tensor::empty(DType::i64, {int64_t(comm.size()) * kMeta});
  comm.all_gather(mine, all);
  return all.to_i64_vector();
}

void check_meta(const std::vector<int64_t>& meta, int ranks, const std::string& what) {
  for (int r = 1; r < ranks; ++r) {
    const int64_t* a = &meta[0];
    const int64_t* b = &meta[size_t(r) * kMeta];
    TSR_CHECK(a[2] == b[2] && a[3] == b[3], ErrorKind::Runtime, what, ": rank ", r, " produced ", dtype_name(DType(b[2])),
              " rows of ", b[3], " values, rank 0 ", dtype_name(DType(a[2])), " rows of ", a[3]);
  }
}
}  // namespace

std::map<std::string, Tensor> gather_rows(dist::Communicator& comm, const std::map<std::string, Tensor>& outs,
                                          int64_t real_rows, int root) {
  std::map<std::string, Tensor> result;
  int ranks = comm.size();
  for (const auto& [name, t] : outs) {
    std::string what = "output '" + name + "'";
    std::vector<int64_t> meta = exchange_meta(comm, t, real_rows);
    check_meta(meta, ranks, what);
    int64_t max_rows = 0;
    for (int r = 0; r < ranks; ++r) max_rows = std::max(max_rows, meta[size_t(r) * kMeta]);
    // Equal chunks for the collective: repeat the last row up to the longest part.
    Tensor send = take_rows(t, 0, t.dim(0), max_rows - t.dim(0), what);
    Shape all_shape = t.shape();
    all_shape[0] = max_rows * ranks;
    Tensor all = comm.rank() == root ? Tensor::empty(t.dtype(), all_shape) : Tensor();
    comm.gather(send, all, root);
    if (comm.rank() != root) continue;
    std::vector<Tensor> parts;
    for (int r = 0; r < ranks; ++r) parts.push_back(take_rows(all, r * max_rows, r * max_rows + meta[size_t(r) * kMeta + 1], 0, what));
    result[name] = parallel::concat_rows(parts, what);
  }
  return result;
}

namespace {
void check_same_batch(dist::Communicator& comm, int64_t n) {
  Tensor all = Tensor::empty(DType::i64, {int64_t(comm.size())});
  comm.all_gather(Tensor::vector_i64({n}), all);
  std::vector<int64_t> sizes = all.to_i64_vector();
  for (int r = 0; r < comm.size(); ++r)
    TSR_CHECK(sizes[size_t(r)] == sizes[0], ErrorKind::InvalidArgument, "rank ", r, " holds a batch of ", sizes[size_t(r)],
              " rows but rank 0 holds ", sizes[0], ": with data parallelism every rank loads the full batch");
}
}  // namespace

std::map<std::string, Tensor> run_data_parallel(const Engine& e, const std::map<std::string, Tensor>& inputs,
                                                dist::Communicator* comm, const DataParallelOptions& opts) {
  int rank = comm ? comm->rank() : 0, world = comm ? comm->size() : 1;
  int64_t n = parallel::batch_size(inputs, "inputs");
  if (comm) check_same_batch(*comm, n);
  TSR_CHECK(n > 0, ErrorKind::InvalidArgument, "inputs: the batch is empty (dim 0 is 0)");
  Part p = parallel::split_range(n, rank, world, opts.apply_padding);
  // Fewer items than ranks: run one copy of the last item, dropped at the
  // gather, so that this rank still knows its outputs' dtypes and shapes.
  if (p.rows() == 0) p.padding = 1;
  std::map<std::string, Tensor> part;
  for (const auto& [name, t] : inputs) part[name] = parallel::take_part(t, p, "input '" + name + "'");
  auto outs = run_in_micro_batches(e, part, opts.progress);
  if (!comm) return outs;
  return gather_rows(*comm, outs, p.real(), opts.root);
}

}  // namespace tessera
