// One record per step, many sinks: StepMetrics holds everything a step reports (loss parts, lr,
// grad norm, throughput, and the load statistics of every MoE layer); the sinks of
// metric_sinks.h write it to metrics.jsonl, experts.jsonl, experts.h5, TensorBoard and the stdout
// line. The JSON field names of metrics.jsonl and experts.jsonl are spelled here once, in the
// to_json / from_json pairs, which the log reader (run_logs.h) uses too.
//
// Absent figures are NaN in memory and null or missing in JSON: a step with MTP modules but no
// MTP target has no MTP loss (null, never a 0 that reads as a perfect prediction); a line of an
// older or statistics-only log lacks fields, which from_json leaves NaN / empty.
// Legend: E routed experts of a layer, ep expert-parallel ranks (model/modules/moe.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "train/monitor/expert_stats.h"

namespace mlamoe {

// One MoE layer at one step: an entry of experts.jsonl's "layers".
struct LayerLoadRecord {
  std::string layer;            // parameter prefix, e.g. "model.layers.3.mlp"
  LayerLoadStats stats;         // from load_stats() and ExpertMonitor; NaN (dead: -1) where a log lacks it
  std::vector<int64_t> counts;  // [E] tokens per expert; empty when not logged (train.experts_log "stats")
  std::vector<double> bias;     // [E] correction bias; empty when the layer has none or it was not logged
  bool bias_logged = false;     // the line has "bias" (null: the layer has no bias); false: not logged
  double balance_loss = NAN;    // the layer's sequence-wise balance loss this step
};

// full: with the [E] arrays (counts, bias at 7 significant digits). Reading is tolerant: a missing
// or mistyped field stays absent; returns false without a string "layer".
nlohmann::json to_json(const LayerLoadRecord& r, bool full);
bool from_json(const nlohmann::json& j, LayerLoadRecord& r);

struct StepMetrics {
  int64_t step = 0;      // 1-based, the step just taken
  int64_t steps = 0;     // train.steps, for the stdout line and the ETA
  bool skipped = false;  // a step that updated nothing: only step, tokens and the reason are logged
  std::string skip_reason;
  bool bad_step = false;  // skipped for a fault (counts toward train.max_bad_steps), not for a lack of targets
  int64_t bad_in_a_row = 0;
  // Losses over the global batch (token means; see train/train_step.h).
  double loss = NAN, lm_loss = NAN, mtp_loss = NAN, balance_loss = NAN;
  double lr = NAN, grad_norm = NAN, gamma = NAN;  // grad norm before clipping; gamma the bias update speed
  double eval_lm_loss = NAN;                      // held-out lm loss when evaluated at this step
  int64_t tokens = 0;                             // tokens seen by the run so far
  int64_t step_tokens = 0;                        // input tokens of this step
  double step_time_s = NAN, tokens_per_s = NAN, mfu = NAN, eta_s = NAN;
  double tflops = NAN;  // model FLOPs per second of the whole run (all ranks), in TFLOP/s
  // CUDA runs: the most device memory tensors held at once during the step (the caching
  // allocator's peak, model/tensor/cuda/caching_allocator.h), in MB; NaN on the CPU.
  double device_peak_mb = NAN;
  int64_t device_mallocs = -1;  // CUDA runs: memory the allocator took from the driver this step (0 once warm); -1 on the CPU
  double device_time_s = NAN;   // CUDA runs: the step's time on the device (events around it, stream.h); NaN on the CPU
  int64_t ep = 1;
  std::vector<LayerLoadRecord> layers;  // every MoE layer, model order
  bool full_expert_log = true;          // experts.jsonl carries the [E] arrays
  std::vector<std::string> alerts;      // ExpertMonitor's alerts raised at this step
  double maxvio_mean() const;           // mean MaxVio over the layers (0 without MoE layers)
};

// A figure as JSON: null when it is absent (NaN) or not finite.
nlohmann::json number_or_null(double x);

// metrics.jsonl's line of the step (a skipped step: step, skipped, reason, tokens).
nlohmann::json metrics_json(const StepMetrics& m);
// experts.jsonl's line of the step (not written for skipped steps).
nlohmann::json experts_json(const StepMetrics& m);
// Reads a metrics.jsonl line into m (tolerant; returns false without an integer "step").
bool metrics_from_json(const nlohmann::json& j, StepMetrics& m);

}  // namespace mlamoe
