// The guards of a training step that are policy rather than maths: the loss-spike judge that
// marks a step bad (train.spike_sigma) and the fine-tuning selection that freezes parameters
// (train.train_only, train.freeze).
#pragma once
#include <cstddef>
#include <deque>
#include <string>

#include "model/modules/deepseek_model.h"
#include "train/run_config.h"

namespace mlamoe {

// A step whose loss exceeds the mean of the last kWindow accepted losses by more than sigma
// standard deviations (and by more than 10% of the mean, so a flat, noise-free curve does not trip
// it) is bad. Training hygiene of the trainer, not part of the model's maths.
class SpikeJudge {
 public:
  explicit SpikeJudge(double sigma) : sigma_(sigma) {}
  // Why `loss` is a spike, or "" to accept it (always "" before kMinSamples accepted steps).
  std::string operator()(double loss) const;
  void accept(double loss);

 private:
  static constexpr size_t kWindow = 32, kMinSamples = 16;
  double sigma_;
  std::deque<double> recent_;
};

// Frozen parameters get no gradient and no optimizer state. Decided from names only, so every
// rank agrees. Throws Error when the selection leaves nothing to train.
void apply_freezing(DeepSeekModel& model, const TrainConfig& tc);

}  // namespace mlamoe
