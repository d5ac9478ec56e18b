// Data-parallel splitting with the semantics of Hugging Face Accelerate's
// `split_between_processes`: n items over w ranks go in contiguous chunks in
// rank order, and when w does not divide n the first n % w ranks take one
// more. With `apply_padding` every rank gets ceil(n / w) items: a short chunk
// repeats its last item, and the part records how many rows are such copies
// so that they can be dropped after the results are gathered.
//
// One choice goes beyond Accelerate (which fails there): when n < w, a rank
// whose chunk is empty pads with copies of the input's last item.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace tessera::parallel {

// One rank's part: original items [begin, end), then `padding` copies of item
// end - 1 (for an empty chunk begin == end == n, so that is the last item).
struct Part {
  int64_t begin = 0, end = 0, padding = 0;
  int64_t real() const { return end - begin; }
  int64_t rows() const { return end - begin + padding; }
};

// Rank `rank`'s part of n items. Throws InvalidArgument naming the bad value
// when world <= 0, rank is outside [0, world) or n < 0.
Part split_range(int64_t n, int rank, int world, bool apply_padding);
// Every rank's part, in rank order.
std::vector<Part> split_ranges(int64_t n, int world, bool apply_padding);

// Rows [begin, end) of t along dim 0 followed by `repeat_last` copies of row
// end - 1, as a new contiguous tensor. `what` names t in errors.
Tensor take_rows(const Tensor& t, int64_t begin, int64_t end, int64_t repeat_last, const std::string& what);
// The part's rows of t (dim 0 must be the n the part was split from).
Tensor take_part(const Tensor& t, const Part& p, const std::string& what);
// Concatenation along dim 0 (dtypes and trailing dims must agree).
Tensor concat_rows(const std::vector<Tensor>& parts, const std::string& what);

// Rank's part of t along dim 0 (the batch).
Tensor split_tensor(const Tensor& t, int rank, int world, bool apply_padding, const std::string& what);

// The dim 0 every array shares. Throws InvalidArgument naming `what` and the
// arrays: a scalar, or arrays whose dim 0 disagree.
int64_t batch_size(const std::map<std::string, Tensor>& arrays, const std::string& what);

// Every array split along dim 0 (an .npz batch, or a run's named inputs).
struct BatchPart {
  std::map<std::string, Tensor> arrays;
  Part part;
};
BatchPart split_batch(const std::map<std::string, Tensor>& arrays, int rank, int world, bool apply_padding,
                      const std::string& what);
// read_npz(path), then split_batch; errors name the file.
BatchPart split_npz(const std::string& path, int rank, int world, bool apply_padding);

// Lines (a prompts file: one item per line).
std::vector<std::string> split_lines(const std::vector<std::string>& lines, int rank, int world, bool apply_padding);
// The file's lines without their '\n' (and a '\r' before it); a final newline
// does not start another item.
std::vector<std::string> read_lines(const std::string& path);

}  // namespace tessera::parallel
