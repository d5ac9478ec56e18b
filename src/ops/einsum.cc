// Einsum: the equation parser (einsum.h) and the op's schema. Kernels:
// backend/*/kernels/einsum.*.
#include "ops/einsum.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "ops/shape_rules.h"

namespace tessera::rules {
namespace {

// One side of the equation split into terms of subscripts; -1 marks "...".
struct Terms {
  std::vector<std::vector<int>> lhs;
  std::vector<int> rhs;
  bool explicit_rhs = false;
};

std::vector<int> parse_term(const std::string& term, const std::string& what) {
  std::vector<int> out;
  bool seen_ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    char ch = term[i];
    if (ch == '.') {
      if (term.compare(i, 3, "...") != 0 || seen_ellipsis) fail(ErrorKind::Shape, what, ": bad ellipsis in '", term, "'");
      seen_ellipsis = true;
      out.push_back(-1);
      i += 2;
    } else if (std::isalpha(static_cast<unsigned char>(ch))) {
      out.push_back(ch);
    } else {
      fail(ErrorKind::Shape, what, ": unexpected character '", ch, "' in term '", term, "'");
    }
  }
  return out;
}

Terms split_equation(const std::string& equation, const std::string& what) {
  std::string eq;
  for (char ch : equation)
    if (!std::isspace(static_cast<unsigned char>(ch))) eq += ch;
  Terms t;
  size_t arrow = eq.find("->");
  std::string lhs = eq.substr(0, arrow);
  if (arrow != std::string::npos) {
    t.explicit_rhs = true;
    t.rhs = parse_term(eq.substr(arrow + 2), what);
  }
  size_t from = 0;
  while (true) {
    size_t comma = lhs.find(',', from);
    t.lhs.push_back(parse_term(lhs.substr(from, comma - from), what));
    if (comma == std::string::npos) break;
    from = comma + 1;
  }
  return t;
}

// Merge an operand's extent into a label's: equal, unknown, or (ellipsis only) 1.
int64_t merge_extent(int64_t have, int64_t d, bool ellipsis, char label, const std::string& what) {
  if (have < 0 || have == d) return d < 0 ? have : d;
  if (d < 0) return have;
  if (ellipsis && (d == 1 || have == 1)) return std::max(have, d);
  fail(ErrorKind::Shape, what, ": subscript '", ellipsis ? std::string("...") : std::string(1, label), "' has extents ",
       have, " and ", d);
}

// Ellipsis dims of each operand (its rank minus its letters).
std::vector<int64_t> ellipsis_dims(const Terms& t, const std::vector<Shape>& inputs, const std::string& what) {
  std::vector<int64_t> n_ell(inputs.size(), 0);
  for (size_t i = 0; i < inputs.size(); ++i) {
    int64_t letters = int64_t(std::count_if(t.lhs[i].begin(), t.lhs[i].end(), [](int s) { return s >= 0; }));
    bool has_ell = letters != int64_t(t.lhs[i].size());
    n_ell[i] = int64_t(inputs[i].size()) - letters;
    if (n_ell[i] < 0 || (!has_ell && n_ell[i] != 0))
      fail(ErrorKind::Shape, what, ": operand ", i, " has rank ", inputs[i].size(), ", its term has ", letters, " subscripts");
  }
  return n_ell;
}

// Label ids: 0..max_ell-1 for the ellipsis dims, then one per letter in order of appearance.
struct Labeler {
  EinsumSpec spec;
  std::map<int, int> letter_id, uses;  // std::map keeps letters sorted for the implicit output
  int max_ell = 0;

  void add_operand(const std::vector<int>& term, int64_t n_ell, const Shape& shape, const std::string& what) {
    std::vector<int>& labels = spec.operand_labels.emplace_back();
    std::string chars;  // the subscript of each dim, for errors
    for (int s : term) {
      if (s < 0) {
        for (int64_t e = max_ell - n_ell; e < max_ell; ++e) labels.push_back(int(e));
        chars.append(size_t(n_ell), '.');
        continue;
      }
      chars += char(s);
      if (!letter_id.count(s)) {
        letter_id[s] = int(spec.extent.size());
        spec.extent.push_back(kUnknownDim);
      }
      labels.push_back(letter_id[s]);
      ++uses[s];
    }
    for (size_t d = 0; d < labels.size(); ++d) {
      int64_t& ext = spec.extent[size_t(labels[d])];
      ext = merge_extent(ext, shape[d], labels[d] < max_ell, chars[d], what);
    }
  }

  void set_output(const Terms& t, const std::string& what) {
    if (!t.explicit_rhs) {  // implicit: ellipsis dims, then letters used once, sorted
      for (int e = 0; e < max_ell; ++e) spec.output_labels.push_back(e);
      for (auto [s, n] : uses)
        if (n == 1) spec.output_labels.push_back(letter_id[s]);
      return;
    }
    for (int s : t.rhs) {
      if (s < 0) {
        for (int e = 0; e < max_ell; ++e) spec.output_labels.push_back(e);
        continue;
      }
      if (!letter_id.count(s)) fail(ErrorKind::Shape, what, ": output subscript '", char(s), "' is not in any input");
      if (std::count(t.rhs.begin(), t.rhs.end(), s) > 1) fail(ErrorKind::Shape, what, ": output subscript '", char(s), "' is repeated");
      spec.output_labels.push_back(letter_id[s]);
    }
  }
};

}  // namespace

EinsumSpec parse_einsum(const std::string& equation, const std::vector<Shape>& inputs, const std::string& what) {
  Terms t = split_equation(equation, what);
  if (t.lhs.size() != inputs.size())
    fail(ErrorKind::Shape, what, ": equation '", equation, "' has ", t.lhs.size(), " operands, the node has ", inputs.size(), " inputs");
  std::vector<int64_t> n_ell = ellipsis_dims(t, inputs, what);
  Labeler lab;
  lab.max_ell = n_ell.empty() ? 0 : int(*std::max_element(n_ell.begin(), n_ell.end()));
  lab.spec.extent.assign(size_t(lab.max_ell), kUnknownDim);
  for (size_t i = 0; i < inputs.size(); ++i) lab.add_operand(t.lhs[i], n_ell[i], inputs[i], what);
  lab.set_output(t, what);
  EinsumSpec& spec = lab.spec;
  for (int l = 0; l < int(spec.extent.size()); ++l)
    if (std::find(spec.output_labels.begin(), spec.output_labels.end(), l) == spec.output_labels.end())
      spec.reduced_labels.push_back(l);
  return spec;
}

}  // namespace tessera::rules

namespace tessera {
namespace {

std::vector<TensorType> einsum(const InferContext& c) {
  if (!c.attrs().has("equation")) c.error("attribute 'equation' is required");
  std::vector<Shape> shapes;
  DType dt = c.input(0).dtype;
  for (size_t i = 0; i < c.num_inputs(); ++i) {
    if (c.input(i).dtype != dt) c.error("input ", i, " is ", dtype_name(c.input(i).dtype), ", input 0 is ", dtype_name(dt));
    if (!c.input(i).rank_known) return {rules::unknown_rank(dt)};
    shapes.push_back(c.input(i).shape);
  }
  rules::EinsumSpec spec = rules::parse_einsum(c.attrs().get_string("equation", ""), shapes, rules::node_label(c.node()));
  Shape out;
  for (int l : spec.output_labels) out.push_back(spec.extent[size_t(l)]);
  return {{dt, out, true}};
}

TESSERA_REGISTER_OP({"Einsum", 1, 64, 1, 1, einsum});

}  // namespace
}  // namespace tessera
