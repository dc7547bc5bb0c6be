#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

namespace mlamoe {

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps) return peak * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (kind == "constant") return peak;
  if (kind == "step") {
    double lr = peak, frac = static_cast<double>(step) / static_cast<double>(total_steps);
    for (double at : decay_at)
      if (frac >= at) lr *= decay_factor;
    return lr;
  }
  double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(std::max<int64_t>(1, total_steps - warmup_steps));
  progress = std::min(progress, 1.0);
  return min_lr + 0.5 * (peak - min_lr) * (1 + std::cos(3.141592653589793 * progress));
}

}  // namespace mlamoe
