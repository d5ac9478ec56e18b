#include "ir/graph.h"

#include <functional>
#include <unordered_set>

#include "core/error.h"

namespace tessera {

Value* Graph::add_value(const std::string& name, DType dtype, const Shape& shape) {
  TSR_CHECK(!name.empty() && !by_name_.count(name), ErrorKind::Internal, "value name '", name, "' is empty or already used");
  auto v = std::make_unique<Value>();
  v->name = name;
  v->dtype = dtype;
  v->shape = shape;
  v->dim_names.assign(shape.size(), "");
  Value* raw = v.get();
  by_name_[name] = raw;
  values_.push_back(std::move(v));
  return raw;
}

Value* Graph::add_constant(const std::string& name, Tensor t) {
  Value* v = add_value(name, t.dtype(), t.shape());
  v->constant = std::move(t);
  return v;
}

Node* Graph::add_node(const std::string& op, const std::string& name, std::vector<Value*> inputs,
                      std::vector<Value*> outputs, Attributes attrs) {
  auto n = std::make_unique<Node>();
  n->op = op;
  n->name = name.empty() ? unique_name(op) : name;
  n->inputs = std::move(inputs);
  n->outputs = std::move(outputs);
  n->attrs = std::move(attrs);
  for (Value* o : n->outputs)
    if (o) o->producer = n.get();  // an omitted optional output is null
  nodes_.push_back(std::move(n));
  return nodes_.back().get();
}

std::string Graph::unique_name(const std::string& hint) {
  std::string name;
  do name = hint + "_" + std::to_string(next_id_++);
  while (by_name_.count(name));
  return name;
}

Value* Graph::find_value(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

void Graph::remove_nodes_if(const std::function<bool(const Node&)>& dead) {
  std::erase_if(nodes_, [&](const std::unique_ptr<Node>& n) {
    if (!dead(*n)) return false;
    for (Value* o : n->outputs)
      if (o) o->producer = nullptr;
    return true;
  });
  remove_unused_values();
}

void Graph::remove_unused_values() {
  std::unordered_set<const Value*> used(inputs.begin(), inputs.end());
  used.insert(outputs.begin(), outputs.end());
  for (auto& n : nodes_) {
    used.insert(n->inputs.begin(), n->inputs.end());
    used.insert(n->outputs.begin(), n->outputs.end());
  }
  std::erase_if(values_, [&](const std::unique_ptr<Value>& v) {
    if (used.count(v.get())) return false;
    by_name_.erase(v->name);
    return true;
  });
}

void Graph::replace_all_uses(Value* from, Value* to) {
  for (auto& n : nodes_)
    for (Value*& in : n->inputs)
      if (in == from) in = to;
  for (Value*& o : outputs)
    if (o == from) o = to;
}

void Graph::toposort() {
  std::unordered_map<const Value*, Node*> producer;
  for (auto& n : nodes_)
    for (Value* o : n->outputs)
      if (o) producer[o] = n.get(), o->producer = n.get();
  std::unordered_map<const Node*, int> state;  // 1 visiting, 2 done
  std::vector<std::unique_ptr<Node>> order;
  std::unordered_map<const Node*, std::unique_ptr<Node>*> slot;
  for (auto& n : nodes_) slot[n.get()] = &n;
  std::function<void(Node*)> visit = [&](Node* n) {
    int& s = state[n];
    if (s == 2) return;
    TSR_CHECK(s != 1, ErrorKind::Parse, "graph has a cycle through node '", n->name, "'");
    s = 1;
    for (Value* in : n->inputs)
      if (in && producer.count(in)) visit(producer[in]);
    s = 2;
    order.push_back(std::move(*slot[n]));
  };
  for (auto& n : nodes_)
    if (n) visit(n.get());
  nodes_ = std::move(order);
}

size_t Graph::constant_bytes() const {
  size_t total = 0;
  for (auto& v : values_)
    if (v->constant) total += v->constant->nbytes();
  return total;
}

}  // namespace tessera
