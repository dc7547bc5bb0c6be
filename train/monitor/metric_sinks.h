// Where a step's StepMetrics go: the sinks a run registers at start (torchtitan's logger
// container, Megatron's record-then-report), each writing the same record in its own format.
//   metrics.jsonl   JsonlMetricsSink   one line per step (skipped steps too), the held-out loss
//   experts.jsonl   ExpertsJsonlSink   per step and MoE layer: load statistics (+ counts, bias)
//   experts.h5      ExpertSeriesSink   per step: [L, E] counts and biases in binary
//   TensorBoard     TensorBoardSink    scalars and per-layer load histograms (train.tensorboard)
//   stdout          StdoutSink         the progress line every train.log_every steps, alerts
// Rank 0 writes them; every sink has the whole step written (and flushed) when write() returns,
// so a checkpoint taken after it never runs ahead of the logs.
//
// Adding a sink: derive from MetricSink, write what you need of StepMetrics (skipped steps carry
// only step, tokens and the reason), register it where the trainer builds its MetricsLogger
// (train/trainer.cpp, set_up).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "train/monitor/expert_series.h"
#include "train/monitor/jsonl_writer.h"
#include "train/monitor/step_metrics.h"
#include "train/monitor/tensorboard.h"

namespace mlamoe {

class MetricSink {
 public:
  virtual ~MetricSink() = default;
  virtual void write(const StepMetrics& m) = 0;
};

// The sinks of a run, written in registration order.
class MetricsLogger {
 public:
  void add(std::unique_ptr<MetricSink> sink) { sinks_.push_back(std::move(sink)); }
  void write(const StepMetrics& m) {
    for (auto& s : sinks_) s->write(m);
  }
  bool empty() const { return sinks_.empty(); }

 private:
  std::vector<std::unique_ptr<MetricSink>> sinks_;
};

// A sink that owns the writer of its file.
template <class Writer>
class WriterSink : public MetricSink {
 public:
  explicit WriterSink(std::unique_ptr<Writer> out) : out_(std::move(out)) {}

 protected:
  std::unique_ptr<Writer> out_;
};

class JsonlMetricsSink final : public WriterSink<JsonlWriter> {
 public:
  using WriterSink::WriterSink;
  void write(const StepMetrics& m) override;
};

class ExpertsJsonlSink final : public WriterSink<JsonlWriter> {
 public:
  using WriterSink::WriterSink;
  void write(const StepMetrics& m) override;
};

class ExpertSeriesSink final : public WriterSink<ExpertSeriesWriter> {
 public:
  using WriterSink::WriterSink;
  void write(const StepMetrics& m) override;
};

class TensorBoardSink final : public WriterSink<TensorBoardWriter> {
 public:
  using WriterSink::WriterSink;
  void write(const StepMetrics& m) override;
};

// The progress line at the first and last step, every log_every steps and at each evaluation;
// skipped steps and alerts always.
class StdoutSink final : public MetricSink {
 public:
  explicit StdoutSink(int64_t log_every) : log_every_(log_every) {}
  void write(const StepMetrics& m) override;

 private:
  int64_t log_every_;
};

// "1h02m", "3m07s", "12s"; "?" for a negative or non-finite duration.
std::string format_duration(double seconds);

}  // namespace mlamoe
