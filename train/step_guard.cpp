#include "train/step_guard.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "model/tensor/error.h"

namespace mlamoe {

std::string SpikeJudge::operator()(double loss) const {
  if (sigma_ <= 0 || recent_.size() < kMinSamples) return "";
  double mean = 0, var = 0;
  for (double l : recent_) mean += l;
  mean /= static_cast<double>(recent_.size());
  for (double l : recent_) var += (l - mean) * (l - mean);
  double sd = std::sqrt(var / static_cast<double>(recent_.size()));
  double limit = mean + std::max(sigma_ * sd, 0.1 * mean);
  if (loss <= limit) return "";
  char msg[160];
  std::snprintf(msg, sizeof msg, "loss spike: %.4f > %.4f (mean %.4f + %.1f std of the last %zu steps)", loss, limit, mean,
                sigma_, recent_.size());
  return msg;
}

void SpikeJudge::accept(double loss) {
  recent_.push_back(loss);
  if (recent_.size() > kWindow) recent_.pop_front();
}

void apply_freezing(DeepSeekModel& model, const TrainConfig& tc) {
  if (tc.train_only.empty() && tc.freeze.empty()) return;
  auto matches = [](const std::string& name, const std::vector<std::string>& pats) {
    for (const auto& p : pats)
      if (name.find(p) != std::string::npos) return true;
    return false;
  };
  std::vector<std::string> names;
  for (const auto& p : model.params.all())
    if (p.trainable) names.push_back(p.name);
  for (const auto& n : names) {
    bool on = (tc.train_only.empty() || matches(n, tc.train_only)) && !matches(n, tc.freeze);
    if (!on) model.params.set_trainable(n, false);
  }
  MLAMOE_CHECK(!model.params.trainable().empty(), "config: train.train_only / train.freeze leave no parameter to train");
}

}  // namespace mlamoe
