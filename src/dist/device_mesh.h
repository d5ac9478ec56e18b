// A device mesh: the world's ranks laid out row-major over named axes, like
// torch's init_device_mesh("cuda", (2, 2), mesh_dim_names=("dp", "tp")).
// Rank r sits at coordinates unravel(r, shape); a group along an axis holds
// the ranks that share every other coordinate.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace tessera::dist {

class DeviceMesh {
 public:
  // Throws InvalidArgument when the product of `shape` is not `world_size`.
  DeviceMesh(int world_size, std::vector<int> shape, std::vector<std::string> names);
  const std::vector<int>& shape() const { return shape_; }
  const std::vector<std::string>& names() const { return names_; }
  std::vector<int> coords(int rank) const;
  // Every group along `axis` (each a list of world ranks, in axis order).
  std::vector<std::vector<int>> groups(const std::string& axis) const;
  // One communicator per axis for this rank, split from `world`; every rank calls it.
  std::map<std::string, std::shared_ptr<Communicator>> split(Communicator& world) const;

 private:
  int axis_index(const std::string& axis) const;
  int world_;
  std::vector<int> shape_;
  std::vector<std::string> names_;
};

}  // namespace tessera::dist
