// The collective ops on host tensors (see host_collectives.h).
#include "backend/host_collectives.h"

#include <cstring>

#include "core/error.h"
#include "core/shape.h"

namespace tessera {
namespace {

// View src as [a][b][c] (elements of `es` bytes) and write dst as [b][a][c].
void swap01(const Tensor& src, Tensor& dst, int64_t a, int64_t b, int64_t c) {
  size_t row = size_t(c) * dtype_size(src.dtype());
  const char* s = static_cast<const char*>(src.raw());
  char* d = static_cast<char*>(dst.raw());
  for (int64_t i = 0; i < a; ++i)
    for (int64_t j = 0; j < b; ++j) std::memcpy(d + size_t(j * a + i) * row, s + size_t(i * b + j) * row, row);
}

struct Split {
  int64_t outer, groups, chunk;  // the tensor seen as [outer][groups][chunk] elements
};

// `shape` split along `axis` into g parts.
Split split_along(const Shape& shape, int64_t axis, int64_t g) {
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= shape[size_t(i)];
  for (size_t i = size_t(axis); i < shape.size(); ++i) inner *= shape[i];
  return {outer, g, inner / g};
}

struct Call {
  const Node& node;
  dist::Communicator& comm;
  int64_t axis;
};

void all_gather(const Call& c, const Tensor& in, Tensor& out) {
  int64_t g = c.comm.size();
  Tensor tmp = Tensor::empty(in.dtype(), {g, in.numel()});
  c.comm.all_gather(in, tmp);
  Split s = split_along(out.shape(), c.axis, g);
  swap01(tmp, out, g, s.outer, s.chunk);
}

void reduce_scatter(const Call& c, const Tensor& in, Tensor& out, dist::ReduceOp op) {
  Split s = split_along(in.shape(), c.axis, c.comm.size());
  Tensor tmp = Tensor::empty(in.dtype(), {in.numel()});
  swap01(in, tmp, s.outer, s.groups, s.chunk);
  c.comm.reduce_scatter(tmp, out, op);
}

void all_to_all(const Call& c, const Tensor& in, Tensor& out) {
  Split s = split_along(in.shape(), c.axis, c.comm.size());
  Tensor a = Tensor::empty(in.dtype(), {in.numel()}), b = Tensor::empty(in.dtype(), {in.numel()});
  swap01(in, a, s.outer, s.groups, s.chunk);
  c.comm.all_to_all(a, b);
  swap01(b, out, s.groups, s.outer, s.chunk);
}

void root_gather(const Call& c, const Tensor& in, Tensor& out, int root) {
  int64_t g = c.comm.size();
  Tensor tmp = Tensor::empty(in.dtype(), {c.comm.rank() == root ? g * in.numel() : 0});
  c.comm.gather(in, tmp, root);
  if (c.comm.rank() != root) {
    std::memset(out.raw(), 0, out.nbytes());  // documented: only the root holds the result
    return;
  }
  Split s = split_along(out.shape(), c.axis, g);
  swap01(tmp, out, g, s.outer, s.chunk);
}

void root_scatter(const Call& c, const Tensor& in, Tensor& out, int root) {
  Split s = split_along(in.shape(), c.axis, c.comm.size());
  Tensor tmp = Tensor::empty(in.dtype(), {c.comm.rank() == root ? in.numel() : 0});
  if (c.comm.rank() == root) swap01(in, tmp, s.outer, s.groups, s.chunk);
  c.comm.scatter(tmp, out, root);
}

}  // namespace

void run_host_collective(const std::string& op, const Node& node, dist::Communicator& comm, const Tensor& in, Tensor& out) {
  Call c{node, comm, 0};
  const Attributes& a = node.attrs;
  if (in.rank() > 0) c.axis = normalize_axis(a.get_int("axis", 0), in.rank(), node.name);
  int64_t want = a.get_int("group_size", comm.size());
  if (op != "AllReduce" && op != "Broadcast" && want != comm.size())
    fail(ErrorKind::Distributed, "node '", node.name, "' (", op, ") was compiled for ", want, " ranks but runs on ", comm.size(),
         "; rebuild the engine for this world size");
  dist::ReduceOp red = dist::reduce_op_from_name(a.get_string("reduce", "sum"));
  int root = int(a.get_int("root", 0));
  if (op == "AllReduce") comm.all_reduce(in, out, red);
  else if (op == "AllGather") all_gather(c, in, out);
  else if (op == "ReduceScatter") reduce_scatter(c, in, out, red);
  else if (op == "AllToAll") all_to_all(c, in, out);
  else if (op == "RootGather") root_gather(c, in, out, root);
  else if (op == "RootScatter") root_scatter(c, in, out, root);
  else if (op == "Broadcast") {
    std::memcpy(out.raw(), in.raw(), in.nbytes());
    comm.broadcast(out, root);
  } else {
    fail(ErrorKind::Internal, "unknown collective ", op);
  }
}

}  // namespace tessera
