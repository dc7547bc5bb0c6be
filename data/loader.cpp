// Training / eval windows over a token dataset: split, epoch shuffle, exact resume (loader.h).
#include "data/loader.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/tensor/error.h"
#include "model/tensor/random.h"

namespace mlamoe {

WindowTargets count_windows_without_targets(const TokenDataset& ds, int64_t first, int64_t count, int64_t seq_len) {
  MLAMOE_CHECK(seq_len >= 1 && first >= 0 && count >= 0 && first + count <= ds.num_tokens(),
               "data file " << ds.path() << ": cannot count windows of seq_len " << seq_len << " in tokens [" << first << ", "
                            << first + count << ") of " << ds.num_tokens());
  WindowTargets wt;
  wt.windows = count > seq_len ? (count - 1) / seq_len : 0;
  if (!ds.has_loss_mask() || wt.windows == 0) return wt;
  // Window k predicts tokens first + k·seq_len + [1, seq_len]: token j (j ≥ 1 from `first`) is
  // a target of window (j − 1) / seq_len. Read the mask in chunks and mark the windows it reaches.
  std::vector<uint8_t> has(static_cast<size_t>(wt.windows), 0);
  const int64_t end = wt.windows * seq_len + 1, chunk = int64_t{1} << 20;
  std::vector<uint8_t> mask;
  for (int64_t at = 1; at < end; at += chunk) {
    int64_t n = std::min(chunk, end - at);
    mask.resize(static_cast<size_t>(n));
    ds.read_mask(first + at, n, mask.data());
    for (int64_t i = 0; i < n; ++i)
      if (mask[i]) has[(at + i - 1) / seq_len] = 1;
  }
  for (uint8_t h : has) wt.without_targets += !h;
  return wt;
}

TokenLoader::TokenLoader(const std::string& path, int64_t seq_len, uint64_t seed, double eval_fraction)
    : dataset_(TokenDataset::open(path)), seq_len_(seq_len), seed_(seed) {
  MLAMOE_CHECK(seq_len >= 1, "data file " << path << ": seq_len must be >= 1, got " << seq_len);
  MLAMOE_CHECK(eval_fraction >= 0.0 && eval_fraction < 1.0,
               "data file " << path << ": eval_fraction must be in [0, 1), got " << eval_fraction);
  const int64_t n = dataset_.num_tokens();
  const int64_t eval_tokens = std::llround(eval_fraction * static_cast<double>(n));
  if (eval_fraction > 0) {
    MLAMOE_CHECK(eval_tokens >= seq_len + 1, "data file " << path << ": eval_fraction " << eval_fraction << " of " << n
                                                          << " tokens holds out " << eval_tokens
                                                          << " tokens, fewer than seq_len + 1 = " << seq_len + 1);
  }
  train_tokens_ = n - eval_tokens;
  // A window needs seq_len + 1 tokens, and window k starts at k * seq_len.
  train_windows_ = train_tokens_ > seq_len ? (train_tokens_ - 1) / seq_len : 0;
  eval_windows_ = eval_tokens > seq_len ? (eval_tokens - 1) / seq_len : 0;
  MLAMOE_CHECK(train_windows_ >= 1,
               "data file " << path << " has " << train_tokens_ << " training tokens, too few for seq_len " << seq_len);
  window_.resize(seq_len + 1);
}

void TokenLoader::read_window(int64_t first_token, int64_t* out) {
  dataset_.read(first_token, seq_len_ + 1, window_.data());
  for (int64_t i = 0; i <= seq_len_; ++i) out[i] = window_[i];
  if (!dataset_.has_loss_mask()) return;
  // SFT data: a token that is context, not a target, is handed on as −(id + 1) (see loader.h).
  mask_.resize(seq_len_ + 1);
  dataset_.read_mask(first_token, seq_len_ + 1, mask_.data());
  for (int64_t i = 0; i <= seq_len_; ++i)
    if (!mask_[i]) out[i] = -out[i] - 1;
}

const std::vector<int64_t>& TokenLoader::permutation(int64_t epoch) {
  if (perm_epoch_ != epoch) {
    // Hash epoch and seed through splitmix64 so that neighbouring epochs (or seeds) get unrelated
    // streams: seeding with seed + epoch would only shift one stream by a step.
    Rng rng(Rng(seed_ ^ Rng(static_cast<uint64_t>(epoch)).next_u64()).next_u64());
    perm_.resize(train_windows_);
    std::iota(perm_.begin(), perm_.end(), int64_t{0});
    // randint's modulo bias is below windows / 2^64: irrelevant here.
    for (int64_t i = train_windows_ - 1; i > 0; --i) std::swap(perm_[i], perm_[rng.randint(0, i + 1)]);
    perm_epoch_ = epoch;
  }
  return perm_;
}

void TokenLoader::next_batch(int64_t n, int64_t* out) { next_batch_slice(n, 0, n, out); }

void TokenLoader::next_batch_slice(int64_t global_n, int64_t begin, int64_t count, int64_t* out) {
  MLAMOE_CHECK(
      global_n >= 0 && begin >= 0 && count >= 0 && begin + count <= global_n,
      "TokenLoader: slice [" << begin << ", " << begin + count << ") is not inside a batch of " << global_n << " windows");
  for (int64_t i = 0; i < global_n; ++i) {
    if (i >= begin && i < begin + count) {
      int64_t w = permutation(state_.epoch)[state_.index];
      read_window(w * seq_len_, out + (i - begin) * (seq_len_ + 1));
    }
    if (++state_.index == train_windows_) {
      ++state_.epoch;
      state_.index = 0;
    }
  }
}

void TokenLoader::set_state(LoaderState s) {
  MLAMOE_CHECK(s.epoch >= 0 && s.index >= 0 && s.index < train_windows_,
               "data file " << dataset_.path() << ": loader position (epoch " << s.epoch << ", index " << s.index
                            << ") is outside its " << train_windows_ << " windows per epoch (was the data file changed?)");
  state_ = s;
}

void TokenLoader::eval_batch(int64_t first_window, int64_t n, int64_t* out) {
  MLAMOE_CHECK(first_window >= 0 && n >= 0 && first_window + n <= eval_windows_,
               "data file " << dataset_.path() << ": eval windows [" << first_window << ", " << first_window + n
                            << ") are outside its " << eval_windows_ << " eval windows");
  for (int64_t i = 0; i < n; ++i) read_window(train_tokens_ + (first_window + i) * seq_len_, out + i * (seq_len_ + 1));
}

}  // namespace mlamoe
