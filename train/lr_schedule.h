// Learning-rate schedules (model/README.md §7): linear warmup from 0 to the peak, then
//   cosine:   min_lr + ½(peak − min_lr)(1 + cos(π·progress)) over the remaining steps;
//   step:     DeepSeek-V2's staircase, the peak times `decay_factor` after each fraction of the
//             run in `decay_at` (V2: ×0.316 at 60% and 90%; V2-Lite: 80% and 90%);
//   constant: the peak.
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

struct LrSchedule {
  std::string kind = "cosine";  // "cosine", "step" or "constant"
  double peak = 3e-4;
  double min_lr = 3e-5;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;
  std::vector<double> decay_at = {0.8, 0.9};  // step schedule: fractions of total_steps
  double decay_factor = 0.316;

  double at(int64_t step) const;  // lr of 0-based step `step`
};

}  // namespace mlamoe
