#include "dist/communicator.h"

#include "core/error.h"

namespace tessera::dist {

ReduceOp reduce_op_from_name(const std::string& name) {
  if (name == "sum") return ReduceOp::sum;
  if (name == "avg" || name == "mean") return ReduceOp::avg;
  if (name == "max") return ReduceOp::max;
  if (name == "min") return ReduceOp::min;
  fail(ErrorKind::InvalidArgument, "unknown reduction '", name, "' (sum, avg, max, min)");
}

const char* reduce_op_name(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum: return "sum";
    case ReduceOp::avg: return "avg";
    case ReduceOp::max: return "max";
    case ReduceOp::min: return "min";
  }
  return "?";
}

void Communicator::collective_failed(const char* what, const std::string& cause) const {
  std::string who = probe_ ? probe_() : "";
  fail(ErrorKind::Distributed, "rank ", rank(), ": ", what, " over ", size(), " ranks (", backend(), ") failed",
       who.empty() ? "" : ": " + who, " [", cause, "]");
}

}  // namespace tessera::dist
