// Reading a run directory's logs (config.json, metrics.jsonl, experts.jsonl, experts.h5) for `mlamoe experts`:
// a JSONL reader that tolerates a cut last line and can be polled while the run appends, and
// RunLogs, which folds the lines into what the terminal summary and the HTML report show. Every
// field but "step" is optional (older logs lack the statistics, large runs the count arrays), so
// nothing here throws on a line: unusable lines become notes. A layer-step without "counts"/"bias"
// takes them from experts.h5 (the same step's [L, E] rows, read one step at a time) when that file
// has them. Not here: drawing or printing.
// Letters (CONTRIBUTING.md "Dimension legend"): E routed experts of a layer, ep expert-parallel ranks.
#pragma once
#include <cmath>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlamoe {

// A JSONL file read incrementally: each poll parses the complete lines appended since the last
// one; an unterminated last line is held back (the writer may be mid-line) and reported by notes().
class JsonlReader {
 public:
  explicit JsonlReader(std::string path);
  // on_line returns "" when it used the object, else why it skipped it. Returns false when the
  // file does not exist. A replaced or shrunk file (a resumed run rewrites its logs) is read again
  // from the top: replaced() says so before the caller polls, so it can drop what it built.
  bool poll(const std::function<std::string(const nlohmann::json&)>& on_line);
  bool replaced() const;
  void restart();
  // "experts.jsonl line 61: cut short (37 bytes, no newline; a run killed while writing?), skipped"
  std::vector<std::string> notes() const;
  int64_t lines_read() const { return lines_; }

 private:
  std::string path_, name_;
  uint64_t offset_ = 0, inode_ = 0;
  int64_t lines_ = 0;
  std::string tail_;  // the unterminated last line, if any
  std::vector<std::string> notes_;
};

// Reads a whole JSONL file: its objects, and notes on the lines skipped. A missing file gives
// exists = false and no notes.
struct JsonlFile {
  bool exists = false;
  std::vector<nlohmann::json> records;
  std::vector<std::string> skipped;
};
JsonlFile read_jsonl(const std::string& path);

// "deepseek_v3, 4 layers (3 MoE) + 1 MTP, 16 routed experts top-4 + 1 shared, ep 1": the fields
// config.json has; "" for a null config.
std::string config_summary(const nlohmann::json& config);

// One MoE layer at one step, as logged; absent numbers are NaN, absent arrays empty.
struct LayerStep {
  std::vector<double> counts;   // [E] tokens per expert (absent in stats-only logs)
  std::vector<double> bias;     // [E] correction bias; empty when logged as null
  std::vector<double> ep_load;  // [ep] tokens per EP rank
  double maxvio = NAN, entropy = NAN, entropy_max = NAN, cv = NAN, balance_loss = NAN, ep_max_over_mean = NAN;
  double dead = NAN;  // the trainer's count (no token for its dead_window steps)
  bool present = false;
};

struct ExpertStep {
  int64_t step = 0, tokens = 0;
  std::vector<LayerStep> layers;  // indexed like RunLogs::layer_names
};

// One layer over a span of steps (a heatmap column, or the terminal's window).
struct LayerSpan {
  int64_t steps = 0;            // steps in which the layer was logged
  std::vector<double> counts;   // [E] summed over the steps that logged counts
  std::vector<double> bias;     // [E] the last bias seen
  std::vector<double> ep_load;  // [ep] summed
  double maxvio_sum = 0, maxvio_max = 0, ep_ratio_sum = 0;
  int64_t maxvio_steps = 0, ep_ratio_steps = 0;
  void add(const LayerStep& s);
  void merge(const LayerSpan& later);
  double maxvio_mean() const { return maxvio_steps ? maxvio_sum / static_cast<double>(maxvio_steps) : NAN; }
  double ep_ratio_mean() const { return ep_ratio_steps ? ep_ratio_sum / static_cast<double>(ep_ratio_steps) : NAN; }
};

// Consecutive steps merged into one column of the report.
struct StepSpan {
  int64_t first_step = 0, last_step = 0, steps = 0;
  std::vector<LayerSpan> layers;
  void add(const ExpertStep& s);
  void merge(const StepSpan& later);
};

// metrics.jsonl over a span of steps: the mean of each numeric field where it was logged.
struct MetricSpan {
  int64_t first_step = 0, last_step = 0, steps = 0;
  std::map<std::string, std::pair<double, int64_t>> sums;  // field -> (sum, lines)
  void add(const nlohmann::json& line);
  void merge(const MetricSpan& later);
};

// Bounded memory for runs of any length: at most max_columns spans; when full, neighbours merge
// pairwise and each span covers twice as many steps.
template <class Span>
class Downsampled {
 public:
  explicit Downsampled(size_t max_columns = 1000) : max_(max_columns) {}
  template <class Item>
  void add(const Item& x) {
    pending_.add(x);
    if (++pending_n_ < width_) return;
    full_.push_back(std::move(pending_));
    pending_ = Span(), pending_n_ = 0;
    if (full_.size() < max_) return;
    for (size_t i = 0; i < full_.size() / 2; ++i) {
      Span s = std::move(full_[2 * i]);
      s.merge(full_[2 * i + 1]);
      full_[i] = std::move(s);
    }
    full_.resize(full_.size() / 2);
    width_ *= 2;
  }
  std::vector<Span> columns() const {
    std::vector<Span> c = full_;
    if (pending_n_ > 0) c.push_back(pending_);
    return c;
  }
  int64_t width() const { return width_; }  // steps per column (the last may hold fewer)

 private:
  size_t max_;
  int64_t width_ = 1, pending_n_ = 0;
  std::vector<Span> full_;
  Span pending_;
};

// Everything `mlamoe experts` shows, built from a run directory and kept up to date by refresh().
struct ExpertsH5;  // run_logs.cpp: experts.h5 opened for one refresh()

class RunLogs {
 public:
  RunLogs(std::string run_dir, int64_t window);
  // Reads what the logs gained since the last call; returns true when new expert steps arrived.
  bool refresh();

  const std::string& run_dir() const { return dir_; }
  std::string run_name() const;
  const nlohmann::json& config() const { return config_; }  // null when config.json is missing or unreadable
  bool has_experts_file() const { return has_experts_; }
  bool has_metrics_file() const { return has_metrics_; }
  const std::vector<std::string>& layer_names() const { return names_; }
  int64_t steps_seen() const { return steps_seen_; }
  int64_t first_step() const { return first_step_; }
  const ExpertStep& last() const { return recent_.back(); }  // steps_seen() > 0
  // The last n steps before the most recent `skip` ones, merged (fewer when the run is younger).
  StepSpan recent_span(int64_t n, int64_t skip = 0) const;
  int64_t window() const { return window_; }
  const Downsampled<StepSpan>& columns() const { return columns_; }
  const Downsampled<MetricSpan>& metrics() const { return metrics_; }
  const nlohmann::json& last_metrics() const { return last_metrics_; }  // null before the first line
  double last_eval_lm_loss() const { return last_eval_; }
  int64_t trainer_skipped_steps() const { return trainer_skipped_; }
  // What could not be shown: missing files, skipped lines, steps the trainer skipped.
  std::vector<std::string> notes() const;

 private:
  void reset_experts();
  std::string take_expert_line(const nlohmann::json& j);
  std::string take_metric_line(const nlohmann::json& j);
  // Fills the layers (by position in the line, the order of experts.h5) that lack counts or bias.
  void fill_from_h5(ExpertStep& s, const std::vector<std::pair<size_t, size_t>>& missing, const std::vector<bool>& want_bias);

  std::string dir_;
  int64_t window_;
  nlohmann::json config_;
  bool has_experts_ = false, has_metrics_ = false, config_read_ = false;
  std::string config_note_;
  JsonlReader experts_reader_, metrics_reader_;
  std::vector<std::string> names_;
  std::map<std::string, size_t> index_;
  int64_t steps_seen_ = 0, first_step_ = 0, steps_without_counts_ = 0;
  ExpertsH5* h5_ = nullptr;        // set during refresh(); opened when a line first needs it
  int64_t h5_row_ = 0;             // experts.h5 rows before it hold steps already taken
  std::string h5_note_;            // why experts.h5 could not be used, "" when it could (or was not needed)
  std::deque<ExpertStep> recent_;  // the last 2 × window steps: window and trend
  Downsampled<StepSpan> columns_;
  Downsampled<MetricSpan> metrics_;
  nlohmann::json last_metrics_;
  double last_eval_ = NAN;
  int64_t trainer_skipped_ = 0, last_metric_step_ = -1;
  std::string last_skip_;
};

}  // namespace mlamoe
