// Expert-load statistics of one step, per MoE layer (the monitor of issue "expert-load
// monitoring"): MaxVio_batch (model/README.md §4.1), min/max/mean/std and coefficient of variation of
// the tokens per expert, the entropy of the load distribution, dead experts (no token for the last
// `dead_window` steps), the load per expert-parallel rank and its max/mean (the straggler figure),
// and the alerts printed on stdout when a layer's MaxVio stays high or an expert dies.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

struct LayerLoadStats {
  double maxvio = 0;  // (max − mean) / mean
  double min = 0, max = 0, mean = 0, std = 0;
  double cv = 0;           // std / mean
  double entropy = 0;      // −Σ p ln p of p_i = c_i / Σ c, nats
  double entropy_max = 0;  // ln N: perfectly balanced
  int64_t dead = 0;        // experts with no token for dead_window steps in a row
  std::vector<int64_t> dead_ids;
  std::vector<int64_t> ep_load;  // tokens routed to each ep rank's block of experts
  double ep_max_over_mean = 0;   // the straggler figure: the busiest rank against the average
};

// MaxVio_batch = (max_i c_i − c̄) / c̄ with c̄ = Σc / E (model/README.md §4.1); 0 when nothing was
// routed. counts: [E] tokens per expert.
double max_violation(const std::vector<double>& counts);
// The entropy of the load distribution, −Σ p_i ln p_i with p_i = c_i / Σc, in nats (at most ln E,
// perfect balance); 0 when nothing was routed.
double load_entropy(const std::vector<double>& counts);

// One step's statistics from the counts alone (no history): everything but `dead`. The one place
// MaxVio and entropy are computed for the logs (the log reader and the report use the functions
// above for logs that lack them).
LayerLoadStats load_stats(const std::vector<int64_t>& counts, int64_t ep);

class ExpertMonitor {
 public:
  // dead_window: steps without a token before an expert counts as dead. maxvio_alert: a layer whose
  // MaxVio stays above it for alert_window steps in a row raises an alert (0 disables).
  ExpertMonitor(std::vector<std::string> layer_names, int64_t ep, int64_t dead_window, double maxvio_alert, int64_t alert_window);

  // Statistics of this step's counts (per layer, the names' order); updates the history.
  std::vector<LayerLoadStats> update(const std::vector<std::vector<int64_t>>& counts);
  // Alerts raised by the last update (each condition once, when it starts), e.g.
  // "layer model.layers.3.mlp: MaxVio above 1.00 for 20 steps (now 1.42)".
  const std::vector<std::string>& alerts() const { return alerts_; }

 private:
  std::vector<std::string> names_;
  int64_t ep_, dead_window_, alert_window_;
  double maxvio_alert_;
  std::vector<std::vector<int64_t>> zero_run_;  // per layer and expert: steps in a row with no token
  std::vector<int64_t> high_run_;               // per layer: steps in a row with MaxVio above the threshold
  std::vector<std::string> alerts_;
};

}  // namespace mlamoe
