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

#include "train/monitor/step_metrics.h"

namespace mlamoe {

class JsonlWriter;
class ExpertSeriesWriter;
class TensorBoardWriter;

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

class JsonlMetricsSink final : public MetricSink {
 public:
  explicit JsonlMetricsSink(std::unique_ptr<JsonlWriter> out);
  ~JsonlMetricsSink() override;
  void write(const StepMetrics& m) override;

 private:
  std::unique_ptr<JsonlWriter> out_;
};

class ExpertsJsonlSink final : public MetricSink {
 public:
  explicit ExpertsJsonlSink(std::unique_ptr<JsonlWriter> out);
  ~ExpertsJsonlSink() override;
  void write(const StepMetrics& m) override;

 private:
  std::unique_ptr<JsonlWriter> out_;
};

class ExpertSeriesSink final : public MetricSink {
 public:
  explicit ExpertSeriesSink(std::unique_ptr<ExpertSeriesWriter> out);
  ~ExpertSeriesSink() override;
  void write(const StepMetrics& m) override;

 private:
  std::unique_ptr<ExpertSeriesWriter> out_;
};

class TensorBoardSink final : public MetricSink {
 public:
  explicit TensorBoardSink(std::unique_ptr<TensorBoardWriter> out);
  ~TensorBoardSink() override;
  void write(const StepMetrics& m) override;

 private:
  std::unique_ptr<TensorBoardWriter> out_;
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
