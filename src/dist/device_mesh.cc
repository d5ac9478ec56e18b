#include "dist/device_mesh.h"

#include "core/error.h"

namespace tessera::dist {

DeviceMesh::DeviceMesh(int world_size, std::vector<int> shape, std::vector<std::string> names)
    : world_(world_size), shape_(std::move(shape)), names_(std::move(names)) {
  if (shape_.size() != names_.size() || shape_.empty())
    fail(ErrorKind::InvalidArgument, "device mesh: ", shape_.size(), " dims but ", names_.size(), " names");
  int product = 1;
  std::string dims;
  for (size_t i = 0; i < shape_.size(); ++i) {
    if (shape_[i] <= 0) fail(ErrorKind::InvalidArgument, "device mesh: axis '", names_[i], "' has size ", shape_[i]);
    product *= shape_[i];
    dims += (i ? " x " : "") + names_[i] + "=" + std::to_string(shape_[i]);
  }
  if (product != world_size)
    fail(ErrorKind::InvalidArgument, "device mesh ", dims, " needs ", product, " ranks, but the world has ", world_size);
}

int DeviceMesh::axis_index(const std::string& axis) const {
  for (size_t i = 0; i < names_.size(); ++i)
    if (names_[i] == axis) return int(i);
  fail(ErrorKind::InvalidArgument, "device mesh has no axis '", axis, "'");
}

std::vector<int> DeviceMesh::coords(int rank) const {
  std::vector<int> c(shape_.size());
  for (int i = int(shape_.size()) - 1; i >= 0; --i) c[size_t(i)] = rank % shape_[size_t(i)], rank /= shape_[size_t(i)];
  return c;
}

std::vector<std::vector<int>> DeviceMesh::groups(const std::string& axis) const {
  int a = axis_index(axis);
  std::map<std::vector<int>, std::vector<int>> by_rest;  // other coordinates → ranks along the axis
  for (int r = 0; r < world_; ++r) {
    std::vector<int> c = coords(r);
    c[size_t(a)] = -1;
    by_rest[c].push_back(r);
  }
  std::vector<std::vector<int>> out;
  for (auto& [rest, ranks] : by_rest) out.push_back(ranks);
  return out;
}

std::map<std::string, std::shared_ptr<Communicator>> DeviceMesh::split(Communicator& world) const {
  std::map<std::string, std::shared_ptr<Communicator>> out;
  for (const std::string& axis : names_) out[axis] = world.split(groups(axis), "mesh/" + axis);
  return out;
}

}  // namespace tessera::dist
