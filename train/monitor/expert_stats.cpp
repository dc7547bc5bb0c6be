#include "train/monitor/expert_stats.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "model/tensor/error.h"

namespace mlamoe {

double max_violation(const std::vector<double>& counts) {
  if (counts.empty()) return 0.0;
  double total = 0, mx = 0;
  for (double c : counts) total += c, mx = std::max(mx, c);
  double mean = total / static_cast<double>(counts.size());
  return mean > 0 ? (mx - mean) / mean : 0.0;
}

double load_entropy(const std::vector<double>& counts) {
  double total = 0, h = 0;
  for (double c : counts) total += c;
  if (total <= 0) return 0.0;
  for (double c : counts)
    if (c > 0) {
      double p = c / total;
      h -= p * std::log(p);
    }
  return h;
}

LayerLoadStats load_stats(const std::vector<int64_t>& counts, int64_t ep) {
  LayerLoadStats s;
  int64_t n = static_cast<int64_t>(counts.size());
  if (n == 0) return s;
  const std::vector<double> c(counts.begin(), counts.end());
  double total = 0, sq = 0;
  s.min = c[0];
  for (double x : c) {
    total += x, sq += x * x;
    s.min = std::min(s.min, x), s.max = std::max(s.max, x);
  }
  s.mean = total / static_cast<double>(n);
  s.std = std::sqrt(std::max(0.0, sq / static_cast<double>(n) - s.mean * s.mean));
  s.entropy_max = std::log(static_cast<double>(n));
  s.maxvio = max_violation(c);
  s.entropy = load_entropy(c);
  if (total > 0) s.cv = s.std / s.mean;
  ep = std::max<int64_t>(1, ep);
  s.ep_load.assign(ep, 0);
  for (int64_t e = 0; e < n; ++e) s.ep_load[e / (n / ep)] += counts[e];
  double ep_mean = total / static_cast<double>(ep), ep_max = 0;
  for (int64_t l : s.ep_load) ep_max = std::max(ep_max, static_cast<double>(l));
  s.ep_max_over_mean = ep_mean > 0 ? ep_max / ep_mean : 0.0;
  return s;
}

ExpertMonitor::ExpertMonitor(std::vector<std::string> names, int64_t ep, int64_t dead_window, double maxvio_alert,
                             int64_t alert_window)
    : names_(std::move(names)), ep_(ep), dead_window_(dead_window), alert_window_(alert_window), maxvio_alert_(maxvio_alert) {
  zero_run_.resize(names_.size());
  high_run_.assign(names_.size(), 0);
}

std::vector<LayerLoadStats> ExpertMonitor::update(const std::vector<std::vector<int64_t>>& counts) {
  MLAMOE_CHECK(counts.size() == names_.size(),
               "expert monitor: counts for " << counts.size() << " layers, expected " << names_.size());
  alerts_.clear();
  std::vector<LayerLoadStats> out;
  for (size_t l = 0; l < counts.size(); ++l) {
    LayerLoadStats s = load_stats(counts[l], ep_);
    auto& run = zero_run_[l];
    run.resize(counts[l].size(), 0);
    for (size_t e = 0; e < counts[l].size(); ++e) {
      run[e] = counts[l][e] == 0 ? run[e] + 1 : 0;
      if (run[e] >= dead_window_) s.dead_ids.push_back(static_cast<int64_t>(e));
      if (run[e] == dead_window_) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "layer %s: expert %zu is dead (no token for %lld steps)", names_[l].c_str(), e,
                      static_cast<long long>(dead_window_));
        alerts_.push_back(msg);
      }
    }
    s.dead = static_cast<int64_t>(s.dead_ids.size());
    if (maxvio_alert_ > 0) {
      high_run_[l] = s.maxvio > maxvio_alert_ ? high_run_[l] + 1 : 0;
      if (high_run_[l] == alert_window_) {
        char msg[200];
        std::snprintf(msg, sizeof msg, "layer %s: MaxVio above %.2f for %lld steps (now %.2f)", names_[l].c_str(), maxvio_alert_,
                      static_cast<long long>(alert_window_), s.maxvio);
        alerts_.push_back(msg);
      }
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace mlamoe
