// make_plan: from input shapes to a Plan (see plan.h). Three steps:
//  1. walk the nodes in order: evaluate on the host what only depends on host
//     values (constants, shapes); infer every other node's output types;
//     choose its kernel (CUDA, alias, or the CPU fallback);
//  2. give every activation an arena offset by lifetime (first writer to last
//     reader; views extend the life of the bytes they view);
//  3. bind tensors: arena views, weight views, uploaded host values.
#include <algorithm>
#include <climits>
#include <iostream>

#include "backend/cpu/kernel_registry.h"
#include "backend/cuda/cuda_check.h"
#include "backend/cuda/plan.h"

namespace tessera::cuda {

Plan::~Plan() {
  if (graph) cudaGraphExecDestroy(graph);
  for (Step& s : steps)
    if (s.fallback) {
      for (Tensor& t : s.fallback->host_in) cudaFreeHost(t.raw());
      for (Tensor& t : s.fallback->host_out) cudaFreeHost(t.raw());
    }
  cudaFree(arena);
  cudaFree(uploads);
}

Weights::~Weights() { cudaFree(base); }

namespace {
constexpr size_t kAlign = 256;
size_t aligned(size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

void* device_alloc(size_t bytes, const std::string& what, size_t peak) {
  void* p = nullptr;
  if (cudaMalloc(&p, std::max<size_t>(bytes, kAlign)) != cudaSuccess) {
    cudaGetLastError();
    out_of_memory(bytes, what, peak);
  }
  return p;
}

Tensor pinned(DType dt, const Shape& shape) {
  void* p = nullptr;
  size_t bytes = std::max<size_t>(size_t(numel(shape)) * dtype_size(dt), 1);
  TSR_CUDA(cudaMallocHost(&p, bytes));
  return Tensor::view(dt, shape, p, nullptr);
}
}  // namespace

void upload_weights(const Graph& g, Weights& w, cudaStream_t s) {
  std::vector<std::pair<const Value*, size_t>> off;
  size_t total = 0;
  for (auto& v : g.values())
    if (v->constant) {  // empty ones too: they get a valid (unread) address
      off.push_back({v.get(), total});
      total += aligned(v->constant->nbytes());
    }
  w.bytes = total;
  w.base = device_alloc(total, "the engine's weights", total);
  for (auto& [v, o] : off) {
    char* p = static_cast<char*>(w.base) + o;
    if (v->constant->nbytes()) TSR_CUDA(cudaMemcpyAsync(p, v->constant->raw(), v->constant->nbytes(), cudaMemcpyHostToDevice, s));
    w.dev[v] = Tensor::view(v->constant->dtype(), v->constant->shape(), p, nullptr, Device::cuda);
  }
  TSR_CUDA(cudaStreamSynchronize(s));
}

namespace {

struct Planner {
  const Graph& g;
  const Weights& w;
  Plan& p;
  std::unordered_map<const Value*, TensorType> types;
  std::unordered_map<const Value*, const Value*> alias_of;  // view → the value it views
  std::unordered_map<const Value*, size_t> alias_offset;    // view → its byte offset there (0 if absent)
  struct Life { int first = INT_MAX, last = -1; };
  std::unordered_map<const Value*, Life> life;              // arena values only
  std::vector<const Value*> arena_values, upload_values;
  std::set<const Value*> bound;  // graph inputs at the caller's device address

  // Constants carry their own type; everything else was typed by the walk.
  TensorType type_of(const Value* v) const {
    if (v->constant) return {v->constant->dtype(), v->constant->shape(), true};
    auto it = types.find(v);
    if (it == types.end()) fail(ErrorKind::Internal, "[cuda] plan: value '", v->name, "' is read before it is typed");
    return it->second;
  }
  const Tensor* host_of(const Value* v) const {
    if (v->constant) return &*v->constant;
    auto it = p.host.find(v);
    return it == p.host.end() ? nullptr : &it->second;
  }
  bool on_device(const Value* v) const { return !host_of(v) || v->constant; }
  const Value* root(const Value* v) const {
    for (auto it = alias_of.find(v); it != alias_of.end(); it = alias_of.find(v)) v = it->second;
    return v;
  }
  void use(const Value* v, int step) {
    const Value* r = root(v);
    if (r->constant || bound.count(r)) return;
    if (!life.count(r)) {  // a host value that a device step reads
      if (std::find(upload_values.begin(), upload_values.end(), r) == upload_values.end()) upload_values.push_back(r);
      return;
    }
    life[r].last = std::max(life[r].last, step);
  }
  void define(const Value* v, int step) {
    life[v].first = step;
    life[v].last = std::max(life[v].last, step);
    arena_values.push_back(v);
  }

  bool host_evaluable(const Node& n, const KernelInfo* k) const {
    const OpSchema* s = OpRegistry::find(n.op);
    if (s && s->collective) return false;
    if (k && k->host_only) return true;
    for (Value* in : n.inputs)
      if (in && !host_of(in)) return false;
    return true;
  }

  void eval_on_host(const Node& n, const KernelInfo* k) {
    std::vector<Tensor> fakes;
    fakes.reserve(n.inputs.size());
    std::vector<const Tensor*> ins;
    for (Value* in : n.inputs) {
      if (!in) { ins.push_back(nullptr); continue; }
      if (const Tensor* h = host_of(in)) { ins.push_back(h); continue; }
      // Shape/Size read only the type: a data-less view carries it.
      TensorType t = type_of(in);
      fakes.push_back(Tensor::view(t.dtype, t.shape, nullptr, std::make_shared<int>(0)));
      ins.push_back(&fakes.back());
    }
    std::vector<Tensor> outs = cpu::run_node(n, ins);
    for (size_t i = 0; i < n.outputs.size(); ++i)
      if (n.outputs[i]) {
        types[n.outputs[i]] = {outs[i].dtype(), outs[i].shape(), true};
        p.host[n.outputs[i]] = std::move(outs[i]);
      }
  }

  std::vector<TensorType> infer(const Node& n) {
    std::vector<TensorType> tys;
    std::vector<const Tensor*> vals;
    for (Value* in : n.inputs) {
      tys.push_back(in ? type_of(in) : TensorType{});
      vals.push_back(in ? host_of(in) : nullptr);
    }
    std::vector<TensorType> out;
    try {
      out = infer_node(n, std::move(tys), std::move(vals));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::Shape) throw;
      throw DataDependentShape(ErrorKind::Unsupported, e.what());
    }
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      bool known = out[i].rank_known;
      for (int64_t d : out[i].shape) known = known && d >= 0;
      if (n.outputs[i] && !known)
        throw DataDependentShape(ErrorKind::Unsupported, str("node '", n.name, "' (", n.op, "): its output shape depends on values computed on the GPU"));
    }
    return out;
  }

  void plan_node(const Node& n, int index) {
    const KernelInfo* k = KernelRegistry::find(n.op);
    if (host_evaluable(n, k)) return eval_on_host(n, k);
    std::vector<TensorType> outs = infer(n);
    for (size_t i = 0; i < n.outputs.size(); ++i)
      if (n.outputs[i]) types[n.outputs[i]] = outs[i];
    for (Value* in : n.inputs)
      if (in) use(in, int(p.steps.size()));
    if (k && k->view_when && !n.inputs.empty() && n.inputs[0]) {
      TensorType in = type_of(n.inputs[0]);
      std::vector<size_t> offsets;
      if (k->view_when(n, in.shape, outs, dtype_size(in.dtype), offsets)) return plan_views(n, 0, offsets);
    }
    if (k && k->alias_input >= 0) {
      for (size_t i = 1; i < n.outputs.size(); ++i)
        if (n.outputs[i])
          fail(ErrorKind::Unsupported, "node '", n.name, "' (", n.op, "): output ", i, " is not supported on the CUDA backend");
      return plan_views(n, size_t(k->alias_input), {0});
    }
    Step s;
    s.node = &n;
    s.fn = k ? k->fn : nullptr;
    bool in_place = k && k->inplace_input >= 0 && n.attrs.get_int("inplace", 0) == 1 &&
                    bound.count(n.inputs.at(size_t(k->inplace_input)));
    if (in_place) alias_of[n.outputs[0]] = n.inputs[size_t(k->inplace_input)];
    for (size_t i = in_place ? 1 : 0; i < n.outputs.size(); ++i)
      if (n.outputs[i]) define(n.outputs[i], int(p.steps.size()));
    p.steps.push_back(std::move(s));
    (void)index;
  }

  // Every output of `n` a view of input `input` at its byte offset: no step runs.
  void plan_views(const Node& n, size_t input, const std::vector<size_t>& offsets) {
    const Value* src = n.inputs.at(input);
    if (!on_device(src)) use(src, int(p.steps.size()));
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      if (!n.outputs[i]) continue;
      alias_of[n.outputs[i]] = src;
      alias_offset[n.outputs[i]] = i < offsets.size() ? offsets[i] : 0;
    }
  }

  // Greedy by size: each value takes the lowest offset that overlaps no
  // placed value whose lifetime meets its own.
  size_t place(std::unordered_map<const Value*, size_t>& offset) {
    std::vector<const Value*> order = arena_values;
    auto bytes = [&](const Value* v) {
      TensorType t = type_of(v);
      return aligned(size_t(numel(t.shape)) * dtype_size(t.dtype));
    };
    std::stable_sort(order.begin(), order.end(), [&](const Value* a, const Value* b) { return bytes(a) > bytes(b); });
    std::vector<const Value*> placed;
    size_t peak = 0;
    for (const Value* v : order) {
      size_t need = bytes(v);
      const Life& lv = life.at(v);
      std::vector<std::pair<size_t, size_t>> busy;
      for (const Value* q : placed) {
        const Life& lq = life.at(q);
        if (lq.first <= lv.last && lv.first <= lq.last) busy.push_back({offset[q], offset[q] + bytes(q)});
      }
      std::sort(busy.begin(), busy.end());
      size_t at = 0;
      for (auto& [b, e] : busy) {
        if (at + need <= b) break;
        at = std::max(at, e);
      }
      offset[v] = at;
      peak = std::max(peak, at + need);
      placed.push_back(v);
      p.stats.naive_bytes += need;
    }
    return peak;
  }

  Tensor view_at(const Value* v, void* base) const {
    TensorType t = type_of(v);
    return Tensor::view(t.dtype, t.shape, base, nullptr, Device::cuda);
  }

  void bind(const std::unordered_map<const Value*, size_t>& offset) {
    char* arena = static_cast<char*>(p.arena);
    for (const Value* v : arena_values) p.dev[v] = view_at(v, arena + offset.at(v));
    size_t up = 0;
    for (const Value* v : upload_values) up += aligned(p.host.at(v).nbytes());
    if (up) {
      p.uploads = device_alloc(up, "values computed on the host for this shape", p.stats.arena_bytes);
      char* at = static_cast<char*>(p.uploads);
      for (const Value* v : upload_values) {
        const Tensor& h = p.host.at(v);
        TSR_CUDA(cudaMemcpy(at, h.raw(), h.nbytes(), cudaMemcpyHostToDevice));
        p.dev[v] = Tensor::view(h.dtype(), h.shape(), at, nullptr, Device::cuda);
        at += aligned(h.nbytes());
      }
    }
    for (auto& [v, c] : w.dev) p.dev[v] = c;
    // Views, in graph order so a view of a view finds its source bound.
    for (auto& n : g.nodes())
      for (Value* o : n->outputs) {
        auto it = alias_of.find(o);
        if (it == alias_of.end()) continue;
        const Tensor& src = p.dev.at(it->second);
        auto off = alias_offset.find(o);
        p.dev[o] = view_at(o, static_cast<char*>(src.raw()) + (off == alias_offset.end() ? 0 : off->second));
      }
  }

  void bind_steps() {
    auto device_of = [&](const Value* v) -> const Tensor* {
      auto it = p.dev.find(v);
      return it == p.dev.end() ? nullptr : &it->second;
    };
    for (Step& s : p.steps) {
      for (Value* in : s.node->inputs) s.ins.push_back({in ? device_of(in) : nullptr, in ? host_of(in) : nullptr});
      for (Value* o : s.node->outputs) s.outs.push_back(o ? &p.dev.at(o) : nullptr);
      if (s.fn) continue;
      s.fallback = std::make_unique<Fallback>();
      for (auto& slot : s.ins)
        s.fallback->host_in.push_back(slot.device && !slot.host ? pinned(slot.device->dtype(), slot.device->shape()) : Tensor());
      for (Tensor* o : s.outs) s.fallback->host_out.push_back(o ? pinned(o->dtype(), o->shape()) : Tensor());
      ++p.stats.fallback_steps;
    }
    p.stats.steps = p.steps.size();
  }
};

}  // namespace

std::set<std::string> inplace_inputs(const Graph& g) {
  std::map<const Value*, int> readers;
  for (auto& n : g.nodes())
    for (Value* in : n->inputs)
      if (in) ++readers[in];
  std::set<std::string> out;
  for (auto& n : g.nodes()) {
    const KernelInfo* k = KernelRegistry::find(n->op);
    if (!k || k->inplace_input < 0 || n->attrs.get_int("inplace", 0) != 1 || size_t(k->inplace_input) >= n->inputs.size()) continue;
    const Value* v = n->inputs[size_t(k->inplace_input)];
    bool is_input = std::find(g.inputs.begin(), g.inputs.end(), v) != g.inputs.end();
    bool is_output = std::find(g.outputs.begin(), g.outputs.end(), v) != g.outputs.end();
    if (v && is_input && !is_output && readers[v] == 1) out.insert(v->name);
  }
  return out;
}

std::unique_ptr<Plan> make_plan(const Graph& g, const Weights& w, const std::map<std::string, Tensor>& inputs,
                                const std::set<std::string>& bound, bool verbose) {
  auto p = std::make_unique<Plan>();
  Planner pl{g, w, *p};
  for (Value* in : g.inputs) {
    const Tensor& t = inputs.at(in->name);
    p->key[in->name] = t.shape();
    pl.types[in] = {t.dtype(), t.shape(), true};
    if (bound.count(in->name)) {
      if (t.device() != Device::cuda) fail(ErrorKind::Internal, "[cuda] plan: input '", in->name, "' is bound but on the host");
      pl.bound.insert(in);
      p->bound[in->name] = t.raw();
      p->dev[in] = t;  // the caller's buffer (the tensor keeps it alive while the plan holds it)
      continue;
    }
    pl.define(in, -1);
  }
  int index = 0;
  for (auto& n : g.nodes()) pl.plan_node(*n, index++);
  for (Value* o : g.outputs)
    if (!pl.host_of(o)) {
      const Value* r = pl.root(o);
      if (pl.life.count(r)) pl.life[r].last = INT_MAX;
    }
  std::unordered_map<const Value*, size_t> offset;
  p->stats.arena_bytes = pl.place(offset);
  p->stats.weight_bytes = w.bytes;
  p->arena = device_alloc(p->stats.arena_bytes, "the activation arena", p->stats.arena_bytes);
  pl.bind(offset);
  pl.bind_steps();
  for (Value* in : g.inputs)
    if (!pl.bound.count(in)) p->inputs.push_back({in, &p->dev.at(in)});
  if (verbose)
    std::cerr << "[cuda] plan: " << p->stats.steps << " steps (" << p->stats.fallback_steps << " on the CPU fallback), arena "
              << p->stats.arena_bytes << " bytes (" << p->stats.naive_bytes << " without reuse)\n";
  return p;
}

}  // namespace tessera::cuda
