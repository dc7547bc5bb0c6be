// One optimizer step, the unit every layout must reproduce: forward and backward over the step's
// micro-batches (gradients accumulate), global-norm clipping, AdamW, then the aux-loss-free bias
// update from the expert counts of the whole step (model/README.md §4.1: after the step, never within
// it).
// The lm and MTP losses are token-level over the global batch: Σ nll over every target token of
// every micro-batch on every dp rank / the number of those targets (each loss its own count), so
// that loss-masked (SFT) batches give the same loss and gradient however they are split. The
// targets are counted first (one small all-reduce over dp); a step whose global batch holds no
// target at all is skipped. The balance losses are per-sequence means over all tokens, weighted
// 1/(micro-batches · dp) as before.
// A bad step (NaN/Inf loss or gradient norm, or one the judge rejects) changes nothing: weights,
// optimizer state and biases stay as they were.
#pragma once
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "model/modules/deepseek_model.h"
#include "parallel/grad_sync.h"
#include "parallel/mesh.h"
#include "train/optimizer.h"

namespace mlamoe {

struct StepStats {
  double loss = 0, lm_loss = 0, mtp_loss = 0, balance_loss = 0;  // over the global batch (see above)
  int64_t lm_targets = 0, mtp_targets = 0;                       // target tokens of the global batch (MTP: all depths)
  bool has_mtp = false;                                          // D > 0 and some MTP target: mtp_loss means something
  double grad_norm = 0;                                          // before clipping
  double lr = 0, gamma = 0;
  int64_t tokens = 0;                        // input tokens of the step
  std::vector<std::vector<int64_t>> counts;  // per MoE layer, summed over micro-batches
  std::vector<double> layer_balance;         // per MoE layer: balance loss, mean over micro-batches
  // Wall time of the step's phases, seconds (pipeline: forward and backward interleaved by 1F1B).
  double t_forward = 0, t_backward = 0, t_pipeline = 0, t_sync = 0, t_optimizer = 0;
  double device_time_s = NAN;  // the trainer's: the step's time on a CUDA device (events), NaN otherwise
  bool skipped = false;        // a bad step: nothing was updated
  bool no_targets = false;     // skipped because no window of the step has a target
  std::string skip_reason;
};

struct StepSettings {
  double lr = 0;
  double grad_clip = 0;  // 0 disables
  double gamma = 0;      // bias update speed for this step (0 when frozen)
  // Bad-step guard: given the step's global loss, returns why it must be skipped ("" to accept).
  // A non-finite loss or gradient norm is always skipped. Every rank sees the same global values,
  // so every rank decides alike.
  std::function<std::string(double loss)> judge = nullptr;
  bool inject_nan = false;  // tests: a NaN in this rank's gradients (fault.h)
};

// The distributed runtime of a step: the mesh and the gradient reducer (null: one process).
struct ParallelContext {
  Mesh* mesh = nullptr;
  GradSync* sync = nullptr;
};

// micro_batches: this rank's token windows [b, T+1] each, all of the same shape. With a parallel
// context, losses, counts and the gradient norm are global (over every rank), so every rank returns
// the same StepStats and applies the same bias update.
StepStats train_step(DeepSeekModel& model, AdamW& opt, const std::vector<Tensor>& micro_batches, const StepSettings& s,
                     const ParallelContext& par = {});

// Sum of per-layer expert counts: into += add.
void add_counts(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& add);

}  // namespace mlamoe
