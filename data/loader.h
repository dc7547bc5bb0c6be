// Training and evaluation windows over a token dataset (token_dataset.h).
//
// The token stream is split once: the first tokens train, the last round(eval_fraction * N) are
// held out for evaluation. Inside each part a window is seq_len + 1 consecutive tokens (inputs and
// next-token targets) starting at a multiple of seq_len, so consecutive windows share one token.
// Documents are packed without masking across them (model/README.md §1).
//
// Training order: epoch e visits every train window once, in a Fisher-Yates permutation drawn from
// a splitmix64 stream seeded by (seed, e). The position is (epoch, index), all a checkpoint needs
// to resume exactly. Every data-parallel rank draws the same global sequence and reads its slice.
//
// SFT data (a dataset with a loss_mask): a token whose mask is 0 — prompt or template, context but
// not a training target — comes out as −(id + 1); the model decodes it back to the id as input and does not
// count its prediction (DeepSeekModel::forward). Plain datasets give only ids ≥ 0.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/token_dataset.h"

namespace mlamoe {

// Of the windows the loader cuts from tokens [first, first + count) of `ds` (seq_len + 1 tokens
// starting at each multiple of seq_len from `first`), how many have no target: no loss-mask 1 among
// their seq_len predicted tokens. 0 for a dataset without a loss mask. Streams the mask in chunks.
struct WindowTargets {
  int64_t windows = 0, without_targets = 0;
  double share_without() const { return windows > 0 ? static_cast<double>(without_targets) / static_cast<double>(windows) : 0.0; }
};
// The share of windows without targets from which `data prepare` and `train` warn.
constexpr double kWarnShareWithoutTargets = 0.10;
WindowTargets count_windows_without_targets(const TokenDataset& ds, int64_t first, int64_t count, int64_t seq_len);

struct LoaderState {
  int64_t epoch = 0;
  int64_t index = 0;  // next window of the epoch's permutation, in [0, windows_per_epoch())
};

class TokenLoader {
 public:
  // Throws mlamoe::Error naming the file and the sizes when the train part holds no window, or
  // when eval_fraction > 0 leaves fewer than seq_len + 1 eval tokens. eval_fraction in [0, 1).
  TokenLoader(const std::string& path, int64_t seq_len, uint64_t seed, double eval_fraction);

  int64_t seq_len() const { return seq_len_; }
  int64_t vocab_size() const { return dataset_.vocab_size(); }
  int64_t eos_token_id() const { return dataset_.eos_token_id(); }
  const TokenDataset& dataset() const { return dataset_; }
  int64_t train_tokens() const { return train_tokens_; }
  int64_t eval_tokens() const { return dataset_.num_tokens() - train_tokens_; }
  // The train and held-out windows without any target (SFT data; count_windows_without_targets).
  WindowTargets train_window_targets() const { return count_windows_without_targets(dataset_, 0, train_tokens_, seq_len_); }
  WindowTargets eval_window_targets() const {
    return count_windows_without_targets(dataset_, train_tokens_, eval_tokens(), seq_len_);
  }

  // ---- Training ----
  int64_t windows_per_epoch() const { return train_windows_; }
  // out: [n, seq_len + 1] token ids. Advances by n windows, into the next epoch as needed.
  void next_batch(int64_t n, int64_t* out);
  // The same advance by global_n windows, but reads only windows [begin, begin + count) of them
  // into out: [count, seq_len + 1]. Equals rows [begin, begin + count) of next_batch(global_n).
  void next_batch_slice(int64_t global_n, int64_t begin, int64_t count, int64_t* out);
  LoaderState state() const { return state_; }
  void set_state(LoaderState s);  // throws for a position outside this dataset's epochs

  // ---- Evaluation (held-out tail, in order, no shuffle) ----
  int64_t eval_windows() const { return eval_windows_; }
  // out: [n, seq_len + 1]: eval windows [first_window, first_window + n).
  void eval_batch(int64_t first_window, int64_t n, int64_t* out);

 private:
  void read_window(int64_t first_token, int64_t* out);
  const std::vector<int64_t>& permutation(int64_t epoch);  // train window ids of an epoch

  TokenDataset dataset_;
  int64_t seq_len_;
  uint64_t seed_;
  int64_t train_tokens_ = 0, train_windows_ = 0, eval_windows_ = 0;
  LoaderState state_;
  std::vector<uint8_t> mask_;  // loss mask of the window being read (SFT data)
  std::vector<int64_t> perm_;  // [train_windows_]: the permutation of epoch perm_epoch_
  int64_t perm_epoch_ = -1;
  std::vector<int32_t> window_;  // [seq_len + 1] read buffer
};

}  // namespace mlamoe
