// Run logs (DESIGN.md "Logs"): metrics.jsonl (one line per step, plus eval lines) and experts.jsonl
// (per step and MoE layer: tokens per expert, correction bias, MaxVio_batch), appended and flushed
// line by line so a killed run leaves at most one partial last line. Also the MFU denominator.
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mlamoe {

class JsonlWriter {
 public:
  explicit JsonlWriter(const std::string& path);  // creates or truncates
  // Resuming: keeps the lines whose "step" is at most `through_step` (a line half-written by a
  // killed run, or steps after the checkpoint being resumed, are dropped), then appends.
  JsonlWriter(const std::string& path, int64_t through_step);
  ~JsonlWriter();
  JsonlWriter(const JsonlWriter&) = delete;
  JsonlWriter& operator=(const JsonlWriter&) = delete;
  void write(const nlohmann::json& line);

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
};

// MaxVio_batch = (max_i c_i − c̄) / c̄ with c̄ = Σc / N (MODEL_SPEC §4.1); 0 when nothing was routed.
double max_violation(const std::vector<int64_t>& counts);

// The machine's single-precision GEMM rate in GFLOP/s, measured with the library's own matmul on
// all threads (the best of a few 1024³ products): the "named peak" MFU is reported against.
double measure_sgemm_gflops();

// "1h02m", "3m07s", "12s"
std::string format_duration(double seconds);

}  // namespace mlamoe
