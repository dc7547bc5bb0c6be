// The expert-load time series in HDF5 (RUN_DIR/experts.h5), beside experts.jsonl: per step, the
// tokens per expert (u32) and correction biases (f32) of every MoE layer, as extendible datasets
// `step` [S], `counts` [S, L, E] and `bias` [S, L, E], one chunk per step, deflate-compressed.
// Why: a 61-layer × 256-expert model logged every step for 100k steps needs the counts and biases
// in binary (~125 KB per step raw, less compressed) rather than as JSON text (~390 KB per step);
// experts.jsonl then keeps the per-layer statistics only (train.experts_log "auto").
// Appended and flushed every step, so a killed run keeps all complete steps.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlamoe {

class ExpertSeriesWriter {
 public:
  // Creates the file, or with resume_through_step >= 0 opens it and drops the steps after that one.
  ExpertSeriesWriter(const std::string& path, int64_t layers, int64_t experts, int64_t resume_through_step = -1);
  ~ExpertSeriesWriter();
  // counts/bias: [layers][experts]; a layer without a bias has an empty vector (stored as 0).
  void append(int64_t step, const std::vector<std::vector<int64_t>>& counts, const std::vector<std::vector<double>>& bias);
  int64_t steps() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mlamoe
