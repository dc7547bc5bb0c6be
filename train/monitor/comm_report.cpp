#include "train/monitor/comm_report.h"

#include <algorithm>
#include <cstdio>
#include <vector>

#include "parallel/watchdog.h"

namespace mlamoe {

void CommReport::add_step(const CommStepTimes& t, double step_seconds) {
  for (int k = 0; k < kCommProfileKinds; ++k) {
    auto& sum = total_.kind[k];
    const auto& add = t.kind[k];
    sum.calls += add.calls, sum.bytes += add.bytes, sum.host_wait_s += add.host_wait_s;
    sum.device_wait_s += add.device_wait_s, sum.device_busy_s += add.device_busy_s;
  }
  ++steps_;
  step_seconds_ += step_seconds;
  worst_step_exposed_s_ = std::max(worst_step_exposed_s_, t.exposed_s());
}

void CommReport::print(Communicator* world, int rank) const {
  // Per kind: calls, bytes, host wait, device wait, device busy; then the rank's exposed total
  // and its step time. Summed over ranks (the mean) and maxed (the busiest rank).
  constexpr int kFields = 5;
  std::vector<double> sum;
  for (const auto& k : total_.kind) sum.insert(sum.end(), {k.calls, k.bytes, k.host_wait_s, k.device_wait_s, k.device_busy_s});
  sum.push_back(total_.exposed_s());
  sum.push_back(step_seconds_);
  std::vector<double> max = sum;
  max.push_back(worst_step_exposed_s_);
  double ranks = 1;
  if (world) {
    world->all_reduce(sum.data(), static_cast<int64_t>(sum.size()), DType::F64, ReduceOp::Sum);
    world->all_reduce(max.data(), static_cast<int64_t>(max.size()), DType::F64, ReduceOp::Max);
    ranks = world->size();
  }
  if (rank != 0 || steps_ == 0) return;
  double calls = 0;
  for (int k = 0; k < kCommProfileKinds; ++k) calls += sum[k * kFields];
  if (calls == 0) {  // one process: nothing to report
    std::printf("  exposed communication: none (no communication in the steps)\n");
    std::fflush(stdout);
    return;
  }
  double per = 1.0 / (static_cast<double>(steps_) * ranks);  // mean over steps and ranks
  double steps = static_cast<double>(steps_);
  std::printf(
      "  exposed communication (the step waited for it; nothing hid it), per step: mean over %lld steps and %.0f ranks "
      "[busiest rank]\n  %-8s %9s %11s %22s %22s %22s\n",
      static_cast<long long>(steps_), ranks, "group", "calls", "MB sent", "host wait ms", "device wait ms", "on comm stream ms");
  auto cell = [&](int i, double scale, char* out, size_t n) {
    std::snprintf(out, n, "%.3f [%.3f]", sum[i] * per * scale, max[i] / steps * scale);
  };
  for (int k = 0; k < kCommProfileKinds; ++k) {
    const double* s = &sum[k * kFields];
    if (s[0] == 0) continue;  // a group this run did not use
    char host[48], dev[48], busy[48];
    cell(k * kFields + 2, 1e3, host, sizeof host);
    cell(k * kFields + 3, 1e3, dev, sizeof dev);
    cell(k * kFields + 4, 1e3, busy, sizeof busy);
    std::printf("  %-8s %9.1f %11.4g %22s %22s %22s\n", comm_kind_name(static_cast<uint32_t>(k)), s[0] * per, s[1] * per / 1e6,
                host, dev, busy);
  }
  int at = kCommProfileKinds * kFields;
  double exposed = sum[at] * per, step = sum[at + 1] * per;
  std::printf(
      "  exposed in all: %.3f ms per step [busiest rank %.3f ms], %.1f%% of the mean step (%.3f ms); worst single step "
      "on any rank %.3f ms\n",
      exposed * 1e3, max[at] / steps * 1e3, step > 0 ? 100 * exposed / step : 0.0, step * 1e3, max[at + 2] * 1e3);
  std::fflush(stdout);
}

}  // namespace mlamoe
