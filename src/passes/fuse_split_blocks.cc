// See fuse_split_blocks.h.
#include "passes/fuse_split_blocks.h"

#include "ops/fused_elementwise.h"
#include "passes/pass_manager.h"
#include "passes/uses.h"

namespace tessera {
namespace {

bool is_fused_elementwise(const Node& n) { return n.op == "FusedElementwise" && n.domain.empty(); }

// Whether every output of `sp` is read, and only by FusedElementwise nodes that read it whole.
bool only_fused_readers(const Node& sp, const Uses& u) {
  for (const Value* part : sp.outputs) {
    if (u.outputs.count(part)) return false;
    auto it = u.readers.find(part);
    if (it == u.readers.end()) continue;  // an unread part
    for (const Node* r : it->second) {
      if (!is_fused_elementwise(*r)) return false;
      FusedProgram p = get_fused_program(*r);
      for (size_t k = 0; k < r->inputs.size(); ++k)
        if (r->inputs[k] == part && !p.blocks[k].whole()) return false;
    }
  }
  return true;
}

bool fuse_split(Node& sp, const Uses& u) {
  if (!splits_last_axis(sp) || !only_fused_readers(sp, u)) return false;
  int64_t col = 0;
  for (const Value* part : sp.outputs) {
    const int64_t width = part->shape.back();
    auto it = u.readers.find(part);
    for (Node* r : it == u.readers.end() ? std::vector<Node*>{} : it->second) {
      FusedProgram p = get_fused_program(*r);
      for (size_t k = 0; k < r->inputs.size(); ++k)
        if (r->inputs[k] == part) {
          r->inputs[k] = sp.inputs[0];
          p.blocks[k] = {col, width};
        }
      set_fused_program(r->attrs, p);
    }
    col += width;
  }
  sp.outputs.clear();  // eliminate_dead_code removes it
  return true;
}

}  // namespace

void fuse_split_blocks(Graph& g) {
  if (!rewrite_each(g, "Split", [&](Node& sp, const Uses& u) { return fuse_split(sp, u); })) return;
  eliminate_dead_code(g);
}

}  // namespace tessera
