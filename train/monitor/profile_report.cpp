#include "train/monitor/profile_report.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <vector>

#include "model/autograd/node.h"
#include "model/ops/ops.h"

namespace mlamoe {

void print_profile(const std::map<std::string, double>& phase, double total, const HostAllocatorStats& after_first_step) {
  std::printf("profile: %.2f s of training\n  %-44s %9s %6s\n", total, "phase", "seconds", "%");
  double accounted = 0;
  for (const auto& [name, sec] : phase) {
    if (sec <= 0) continue;
    accounted += sec;
    std::printf("  %-44s %9.3f %5.1f%%\n", name.c_str(), sec, 100 * sec / total);
  }
  std::printf("  %-44s %9.3f %5.1f%%\n", "logs, evaluation, checkpoints (the rest)", total - accounted,
              100 * (total - accounted) / total);
  auto table = [](const char* title, const char* column, std::vector<std::pair<std::string, std::pair<double, int64_t>>> rows) {
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    double sum = 0;
    for (const auto& n : rows) sum += n.second.first;
    if (rows.empty()) return;
    std::printf("  %s (%.3f s):\n  %-44s %9s %6s %9s\n", title, sum, column, "seconds", "%", "calls");
    for (size_t i = 0; i < rows.size() && i < 16; ++i)
      std::printf("  %-44s %9.3f %5.1f%% %9lld\n", rows[i].first.c_str(), rows[i].second.first, 100 * rows[i].second.first / sum,
                  static_cast<long long>(rows[i].second.second));
  };
  // Forward: each op with the module code since the previous op (router bookkeeping, permutation).
  table("forward by op family (each op with the code since the previous op)", "op", forward_profile(true));
  table("backward by op family", "node", backward_profile(true));
  // The steady state should take its large buffers from the cache, not from the system.
  HostAllocatorStats now = host_allocator_stats();
  int64_t hits = now.hits - after_first_step.hits, misses = now.misses - after_first_step.misses;
  std::printf(
      "  host memory after the first step: %lld of %lld buffers >= 64 KiB reused from the cache, %lld from the system; "
      "peak live %.0f MB, cached %.0f MB\n",
      static_cast<long long>(hits), static_cast<long long>(hits + misses), static_cast<long long>(misses),
      now.peak_live_bytes / 1048576.0, now.cached_bytes / 1048576.0);
  std::fflush(stdout);
}

}  // namespace mlamoe
