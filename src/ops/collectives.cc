// Collective ops: graph nodes that exchange data between ranks (DESIGN.md §4).
//
//   AllReduce      reduce=sum|avg|max|min                  same shape
//   AllGather      axis, group_size                        shape[axis] * group_size
//   ReduceScatter  axis, group_size, reduce                shape[axis] / group_size
//   AllToAll       axis, group_size                        same shape; chunk j of `axis` goes to rank j
//   RootGather     axis, group_size, root                  shape[axis] * group_size (zeros off the root)
//   RootScatter    axis, group_size, root                  shape[axis] / group_size
//   Broadcast      root                                    same shape
//
// Every op also has an async form: `XStart` (same inference, returns while the
// collective proceeds) and `CollectiveWait` (identity on the started value).
// The split_collectives pass makes pairs so independent compute can overlap;
// fuse_distributed_ops fuses a pair with nothing between back into X.
// `group` names the communicator ("" = world; "tp"/"dp" = a mesh axis).
#include "ir/op_registry.h"

namespace tessera {
namespace {

int64_t group_size(const InferContext& c) {
  int64_t g = c.attrs().get_int("group_size", 0);
  if (g <= 0) c.error("attribute group_size must be a positive rank count, got ", g);
  return g;
}

std::vector<TensorType> scaled(const InferContext& c, bool grow) {
  TensorType t = c.input(0);
  if (!t.rank_known) return {t};
  int64_t axis = normalize_axis(c.attrs().get_int("axis", 0), int64_t(t.shape.size()), c.node().name);
  int64_t g = group_size(c), &d = t.shape[size_t(axis)];
  if (d < 0) return {t};
  if (grow) {
    d *= g;
  } else {
    if (d % g) c.error("dim ", axis, " of ", to_string(t.shape), " does not divide by the group size ", g);
    d /= g;
  }
  return {t};
}

std::vector<TensorType> same(const InferContext& c) { return {c.input(0)}; }
std::vector<TensorType> grow(const InferContext& c) { return scaled(c, true); }
std::vector<TensorType> shrink(const InferContext& c) { return scaled(c, false); }
std::vector<TensorType> all_to_all(const InferContext& c) {
  scaled(c, false);  // checks divisibility
  return {c.input(0)};
}

struct Registrar {
  Registrar() {
    const std::pair<const char*, InferFn> ops[] = {{"AllReduce", same},   {"AllGather", grow},  {"ReduceScatter", shrink},
                                                   {"AllToAll", all_to_all}, {"RootGather", grow}, {"RootScatter", shrink},
                                                   {"Broadcast", same}};
    for (auto& [name, fn] : ops) {
      OpRegistry::add({name, 1, 1, 1, 1, fn, true});
      OpRegistry::add({std::string(name) + "Start", 1, 1, 1, 1, fn, true});
    }
    OpRegistry::add({"CollectiveWait", 1, 1, 1, 1, same, true});
  }
} registrar;

}  // namespace

bool is_collective_start(const std::string& op) { return op.size() > 5 && op.ends_with("Start"); }

}  // namespace tessera
