// BPE merging for Hugging Face vocabularies (see bpe_model.h).
#include "text/bpe_model.h"

#include <queue>

#include "core/error.h"
#include "text/utf8.h"

namespace tessera::text {

BpeModel::BpeModel(std::unordered_map<std::string, int64_t> vocab,
                   const std::vector<std::pair<std::string, std::string>>& merges, std::optional<std::string> unk_token,
                   bool ignore_merges, bool fuse_unk, const std::string& where)
    : vocab_(std::move(vocab)), ignore_merges_(ignore_merges), fuse_unk_(fuse_unk) {
  for (const auto& [tok, id] : vocab_) {
    if (id < 0 || id > (1 << 30)) fail(ErrorKind::Parse, "[tokenizer] ", where, ": token '", tok, "' has id ", id, " out of range");
    if (id >= static_cast<int64_t>(id_to_token_.size())) id_to_token_.resize(id + 1);
    if (!id_to_token_[id].empty()) fail(ErrorKind::Parse, "[tokenizer] ", where, ": id ", id, " given to both '", id_to_token_[id], "' and '", tok, "'");
    id_to_token_[id] = tok;
  }
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = vocab_.find(a), ib = vocab_.find(b), im = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || im == vocab_.end()) {
      const std::string& missing = ia == vocab_.end() ? a : ib == vocab_.end() ? b : a + b;
      fail(ErrorKind::Parse, "[tokenizer] ", where, ": merge ", rank, " ('", a, "' '", b, "') refers to unknown token '", missing, "'");
    }
    // The first occurrence of a pair wins, as in Hugging Face.
    merges_.try_emplace(pair_key(ia->second, ib->second), Merge{static_cast<int32_t>(rank), im->second});
  }
  if (unk_token) {
    auto it = vocab_.find(*unk_token);
    if (it == vocab_.end()) fail(ErrorKind::Parse, "[tokenizer] ", where, ": unk_token '", *unk_token, "' is not in the vocabulary");
    unk_id_ = it->second;
  }
}

std::optional<int64_t> BpeModel::token_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string& BpeModel::token(int64_t id) const {
  static const std::string empty;
  return id >= 0 && id < size() ? id_to_token_[id] : empty;
}

void BpeModel::encode_word(std::string_view word, std::vector<int64_t>& out) const {
  if (ignore_merges_) {
    if (auto id = token_id(word)) {
      out.push_back(*id);
      return;
    }
  }
  std::vector<int64_t> ids;
  for (std::string_view ch : utf8_chars(word)) {
    if (auto id = token_id(ch)) {
      ids.push_back(*id);
    } else if (unk_id_ && !(fuse_unk_ && !ids.empty() && ids.back() == *unk_id_)) {
      ids.push_back(*unk_id_);
    }
    // A character with no token and no unk_token is dropped, as in Hugging Face.
  }
  merge_symbols(ids);
  out.insert(out.end(), ids.begin(), ids.end());
}

// Symbols form a linked list; candidate pairs wait in a min-heap keyed by
// (rank, position). A popped pair is stale if either side changed since.
void BpeModel::merge_symbols(std::vector<int64_t>& ids) const {
  const int n = static_cast<int>(ids.size());
  if (n < 2) return;
  std::vector<int> next(n), prev(n);
  for (int i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? i + 1 : -1;
    prev[i] = i - 1;
  }
  struct Cand {
    int32_t rank;
    int left, right;
    int64_t left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    auto it = merges_.find(pair_key(ids[l], ids[r]));
    if (it != merges_.end()) heap.push({it->second.rank, l, r, ids[l], ids[r]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i, i + 1);
  std::vector<bool> dead(n, false);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (dead[c.left] || dead[c.right] || next[c.left] != c.right || ids[c.left] != c.left_id || ids[c.right] != c.right_id) continue;
    ids[c.left] = merges_.at(pair_key(c.left_id, c.right_id)).merged;
    dead[c.right] = true;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  std::vector<int64_t> merged;
  for (int i = 0; i >= 0; i = next[i]) merged.push_back(ids[i]);
  ids = std::move(merged);
}

}  // namespace tessera::text
