// Reading and folding a run directory's logs (see run_logs.h): lines are parsed one at a time and
// anything unusable becomes a note, never an exception, so a half-written run still shows what it has.
#include "train/monitor/run_logs.h"

#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/h5_util.h"
#include "model/json_parse.h"
#include "train/monitor/expert_stats.h"
#include "train/monitor/step_metrics.h"

namespace fs = std::filesystem;

namespace mlamoe {

namespace {

constexpr size_t kMaxLineNotes = 10;  // a garbled file should not bury the summary in notes

void add_into(std::vector<double>& sum, const std::vector<double>& v) {
  if (sum.size() < v.size()) sum.resize(v.size(), 0.0);
  for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
}

}  // namespace

// experts.h5 (train/monitor/expert_series.h) opened for one refresh(): re-opened on every poll, since the
// trainer appends a step and flushes while we read. Only the `step` column is buffered (a block at a
// time); counts and bias are read one step's [L, E] hyperslab at a time.
struct ExpertsH5 {
  std::string path;
  bool tried = false, ok = false;
  std::string note;  // why it cannot be used
  H5Id file, step_ds, counts_ds, bias_ds;
  int64_t rows = 0, L = 0, E = 0;
  bool has_bias = false;
  std::vector<int64_t> block;  // step values of rows [block_at, block_at + block.size())
  int64_t block_at = 0;

  bool open() {
    if (tried) return ok;
    tried = true;
    if (!fs::exists(path)) return false;  // no note: the steps without counts say it
    h5_silence_errors();
    note = "experts.h5: cannot be read (damaged, or being rewritten?): no per-expert load from it";
    H5Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    // The trainer holds the file open for writing; a reader must not be refused by its lock.
#if (H5_VERS_MAJOR == 1 && H5_VERS_MINOR == 10 && H5_VERS_RELEASE >= 7) || H5_VERSION_GE(1, 12, 1)
    if (fapl.valid()) H5Pset_file_locking(fapl.get(), false, true);
#endif
    file = H5Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.valid() ? fapl.get() : H5P_DEFAULT), H5Fclose);
    if (!file.valid()) return false;
    step_ds = H5Id(H5Dopen2(file.get(), "step", H5P_DEFAULT), H5Dclose);
    counts_ds = H5Id(H5Dopen2(file.get(), "counts", H5P_DEFAULT), H5Dclose);
    if (!step_ds.valid() || !counts_ds.valid()) {
      note = "experts.h5: no \"step\" or \"counts\" dataset: no per-expert load from it";
      return false;
    }
    hsize_t sd[3] = {0, 0, 0}, cd[3] = {0, 0, 0}, bd[3] = {0, 0, 0};
    {
      H5Id sp(H5Dget_space(step_ds.get()), H5Sclose), cp(H5Dget_space(counts_ds.get()), H5Sclose);
      if (!sp.valid() || !cp.valid() || H5Sget_simple_extent_ndims(sp.get()) != 1 || H5Sget_simple_extent_ndims(cp.get()) != 3) {
        note = "experts.h5: \"step\" is not [S] or \"counts\" not [S, L, E]: no per-expert load from it";
        return false;
      }
      H5Sget_simple_extent_dims(sp.get(), sd, nullptr);
      H5Sget_simple_extent_dims(cp.get(), cd, nullptr);
    }
    rows = static_cast<int64_t>(std::min(sd[0], cd[0]));
    L = static_cast<int64_t>(cd[1]), E = static_cast<int64_t>(cd[2]);
    bias_ds = H5Id(H5Dopen2(file.get(), "bias", H5P_DEFAULT), H5Dclose);
    if (bias_ds.valid()) {
      H5Id bp(H5Dget_space(bias_ds.get()), H5Sclose);
      has_bias = bp.valid() && H5Sget_simple_extent_ndims(bp.get()) == 3 &&
                 H5Sget_simple_extent_dims(bp.get(), bd, nullptr) == 3 && bd[0] >= static_cast<hsize_t>(rows) && bd[1] == cd[1] &&
                 bd[2] == cd[2];
    }
    note.clear();
    ok = true;
    return true;
  }

  // The step held in `row` (< rows), or -1 when it cannot be read.
  int64_t step_at(int64_t row) {
    if (row < block_at || row >= block_at + static_cast<int64_t>(block.size())) {
      hsize_t start = static_cast<hsize_t>(row), count = static_cast<hsize_t>(std::min<int64_t>(4096, rows - row));
      block.assign(count, -1);
      block_at = row;
      H5Id fspace(H5Dget_space(step_ds.get()), H5Sclose), ms(H5Screate_simple(1, &count, nullptr), H5Sclose);
      if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr) < 0 ||
          H5Dread(step_ds.get(), H5T_NATIVE_INT64, ms.get(), fspace.get(), H5P_DEFAULT, block.data()) < 0) {
        block.clear();
        return -1;
      }
    }
    return block[static_cast<size_t>(row - block_at)];
  }

  // One step's [L, E] rows of a dataset, converted to `mem_type` (T).
  template <class T>
  bool read_row(hid_t ds, hid_t mem_type, int64_t row, std::vector<T>& out) {
    hsize_t start[3] = {static_cast<hsize_t>(row), 0, 0}, count[3] = {1, static_cast<hsize_t>(L), static_cast<hsize_t>(E)};
    out.assign(static_cast<size_t>(L * E), T{});
    H5Id fspace(H5Dget_space(ds), H5Sclose), ms(H5Screate_simple(3, count, nullptr), H5Sclose);
    return H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start, nullptr, count, nullptr) >= 0 &&
           H5Dread(ds, mem_type, ms.get(), fspace.get(), H5P_DEFAULT, out.data()) >= 0;
  }
};

JsonlReader::JsonlReader(std::string path) : path_(std::move(path)), name_(fs::path(path_).filename().string()) {}

bool JsonlReader::replaced() const {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return offset_ > 0;
  return (inode_ != 0 && static_cast<uint64_t>(st.st_ino) != inode_) || static_cast<uint64_t>(st.st_size) < offset_;
}

void JsonlReader::restart() {
  offset_ = inode_ = 0;
  lines_ = 0;
  tail_.clear();
  notes_.clear();
}

bool JsonlReader::poll(const std::function<std::string(const nlohmann::json&)>& on_line) {
  struct stat st;
  if (::stat(path_.c_str(), &st) != 0) return false;
  std::ifstream in(path_, std::ios::binary);
  if (!in) return false;
  inode_ = static_cast<uint64_t>(st.st_ino);
  in.seekg(static_cast<std::streamoff>(offset_));
  auto note = [&](const std::string& what) {
    if (notes_.size() <= kMaxLineNotes) notes_.push_back(name_ + " line " + std::to_string(lines_) + ": " + what + ", skipped");
  };
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    std::streamsize got = in.gcount();
    if (got <= 0) break;
    offset_ += static_cast<uint64_t>(got);
    const char* p = buf.data();
    const char* end = p + got;
    while (p < end) {
      const char* nl = std::find(p, end, '\n');
      tail_.append(p, nl);
      if (nl == end) break;
      p = nl + 1;
      ++lines_;
      std::string line;
      line.swap(tail_);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j = parse_json_or_discarded(line);
      if (j.is_discarded()) {
        note("not valid JSON");
      } else if (!j.is_object()) {
        note("not a JSON object");
      } else if (std::string why = on_line(j); !why.empty()) {
        note(why);
      }
    }
  }
  return true;
}

std::vector<std::string> JsonlReader::notes() const {
  std::vector<std::string> n(notes_.begin(), notes_.begin() + static_cast<long>(std::min(notes_.size(), kMaxLineNotes)));
  if (notes_.size() > kMaxLineNotes) n.push_back(name_ + ": more lines skipped after those");
  if (tail_.find_first_not_of(" \t\r") != std::string::npos)
    n.push_back(name_ + " line " + std::to_string(lines_ + 1) + ": cut short (" + std::to_string(tail_.size()) +
                " bytes, no newline: a run killed while writing, or a line being written), skipped");
  return n;
}

JsonlFile read_jsonl(const std::string& path) {
  JsonlFile f;
  JsonlReader r(path);
  f.exists = r.poll([&](const nlohmann::json& j) {
    f.records.push_back(j);
    return std::string();
  });
  if (f.exists) f.skipped = r.notes();
  return f;
}

std::string config_summary(const nlohmann::json& c) {
  if (!c.is_object()) return "";
  auto num = [&](const char* k) -> std::string {
    auto it = c.find(k);
    return it != c.end() && it->is_number_integer() ? std::to_string(it->get<int64_t>()) : "?";
  };
  std::string s = c.contains("model_type") && c["model_type"].is_string() ? c["model_type"].get<std::string>() : "model";
  s += ", " + num("num_hidden_layers") + " layers (first " + num("first_k_dense_replace") + " dense)";
  if (num("num_nextn_predict_layers") != "?" && num("num_nextn_predict_layers") != "0")
    s += " + " + num("num_nextn_predict_layers") + " MTP";
  s += ", " + num("n_routed_experts") + " routed experts top-" + num("num_experts_per_tok") + " + " + num("n_shared_experts") +
       " shared";
  auto par = c.find("parallel");
  if (par != c.end() && par->is_object()) {
    for (const char* k : {"pp", "ep"}) {
      auto it = par->find(k);
      if (it != par->end() && it->is_number_integer()) s += std::string(", ") + k + " " + std::to_string(it->get<int64_t>());
    }
  }
  return s;
}

void LayerSpan::add(const LayerStep& s) {
  if (!s.present) return;
  ++steps;
  add_into(counts, s.counts);
  if (!s.bias.empty()) bias = s.bias;
  add_into(ep_load, s.ep_load);
  if (!std::isnan(s.maxvio)) maxvio_sum += s.maxvio, maxvio_max = std::max(maxvio_max, s.maxvio), ++maxvio_steps;
  double ep_ratio = s.ep_max_over_mean;
  if (std::isnan(ep_ratio) && s.ep_load.size() > 1) ep_ratio = max_violation(s.ep_load) + 1.0;
  if (!std::isnan(ep_ratio)) ep_ratio_sum += ep_ratio, ++ep_ratio_steps;
}

void LayerSpan::merge(const LayerSpan& later) {
  steps += later.steps;
  add_into(counts, later.counts);
  if (!later.bias.empty()) bias = later.bias;
  add_into(ep_load, later.ep_load);
  maxvio_sum += later.maxvio_sum, maxvio_steps += later.maxvio_steps;
  if (later.maxvio_steps) maxvio_max = std::max(maxvio_max, later.maxvio_max);
  ep_ratio_sum += later.ep_ratio_sum, ep_ratio_steps += later.ep_ratio_steps;
}

void StepSpan::add(const ExpertStep& s) {
  if (steps++ == 0) first_step = s.step;
  last_step = s.step;
  if (layers.size() < s.layers.size()) layers.resize(s.layers.size());
  for (size_t i = 0; i < s.layers.size(); ++i) layers[i].add(s.layers[i]);
}

void StepSpan::merge(const StepSpan& later) {
  if (later.steps == 0) return;
  if (steps == 0) first_step = later.first_step;
  steps += later.steps;
  last_step = later.last_step;
  if (layers.size() < later.layers.size()) layers.resize(later.layers.size());
  for (size_t i = 0; i < later.layers.size(); ++i) layers[i].merge(later.layers[i]);
}

void MetricSpan::add(const nlohmann::json& line) {
  int64_t step = line.at("step").get<int64_t>();
  if (steps++ == 0) first_step = step;
  last_step = step;
  for (auto it = line.begin(); it != line.end(); ++it) {
    if (it.key() == "step" || !it->is_number()) continue;
    auto& [sum, n] = sums[it.key()];
    sum += it->get<double>(), ++n;
  }
}

void MetricSpan::merge(const MetricSpan& later) {
  if (later.steps == 0) return;
  if (steps == 0) first_step = later.first_step;
  steps += later.steps;
  last_step = later.last_step;
  for (const auto& [k, v] : later.sums) sums[k].first += v.first, sums[k].second += v.second;
}

RunLogs::RunLogs(std::string run_dir, int64_t window)
    : dir_(std::move(run_dir)),
      window_(std::max<int64_t>(1, window)),
      experts_reader_((fs::path(dir_) / "experts.jsonl").string()),
      metrics_reader_((fs::path(dir_) / "metrics.jsonl").string()) {}

std::string RunLogs::run_name() const {
  std::error_code ec;
  fs::path p = fs::absolute(dir_, ec).lexically_normal();  // "." names the directory it stands for
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

void RunLogs::reset_experts() {
  names_.clear();
  index_.clear();
  recent_.clear();
  columns_ = Downsampled<StepSpan>();
  steps_seen_ = first_step_ = 0;
  steps_without_counts_ = 0;
  h5_row_ = 0;
}

bool RunLogs::refresh() {
  if (!config_read_) {  // read once it is whole; a run that is starting may not have written it yet
    std::ifstream in(fs::path(dir_) / "config.json");
    if (!in) {
      config_note_ = "config.json missing: no model summary";
    } else {
      std::stringstream ss;
      ss << in.rdbuf();
      config_ = parse_json_or_discarded(ss.str());
      config_read_ = !config_.is_discarded() && config_.is_object();
      config_note_ = config_read_ ? "" : "config.json is not a whole JSON object: no model summary";
      if (!config_read_) config_ = nullptr;
    }
  }
  bool changed = false;
  if (experts_reader_.replaced()) {
    experts_reader_.restart();
    reset_experts();
    changed = true;
  }
  int64_t before = steps_seen_;
  ExpertsH5 h5;
  h5.path = (fs::path(dir_) / "experts.h5").string();
  h5_ = &h5;
  has_experts_ = experts_reader_.poll([this](const nlohmann::json& j) { return take_expert_line(j); });
  h5_ = nullptr;
  if (h5.tried) h5_note_ = h5.note;
  if (metrics_reader_.replaced()) {
    metrics_reader_.restart();
    metrics_ = Downsampled<MetricSpan>();
    last_metrics_ = nullptr;
    last_eval_ = NAN;
    trainer_skipped_ = 0, last_metric_step_ = -1;
  }
  has_metrics_ = metrics_reader_.poll([this](const nlohmann::json& j) { return take_metric_line(j); });
  return changed || steps_seen_ != before;
}

std::string RunLogs::take_expert_line(const nlohmann::json& j) {
  auto step_it = j.find("step");
  if (step_it == j.end() || !step_it->is_number_integer()) return "no integer \"step\"";
  auto layers_it = j.find("layers");
  if (layers_it == j.end() || !layers_it->is_array()) return "no \"layers\" list";
  ExpertStep s;
  s.step = step_it->get<int64_t>();
  if (!recent_.empty() && s.step <= recent_.back().step)
    return "step " + std::to_string(s.step) + " does not follow step " + std::to_string(recent_.back().step);
  auto tok = j.find("tokens");
  s.tokens = tok != j.end() && tok->is_number_integer() ? tok->get<int64_t>() : 0;
  std::vector<std::pair<size_t, size_t>> missing;  // (position in the line, layer index) lacking counts or bias
  std::vector<bool> want_bias;
  size_t pos = 0;
  for (const auto& l : *layers_it) {
    size_t at = pos++;
    LayerLoadRecord rec;
    if (!from_json(l, rec)) continue;
    auto [it, added] = index_.emplace(rec.layer, names_.size());
    if (added) names_.push_back(rec.layer);
    if (s.layers.size() < names_.size()) s.layers.resize(names_.size());
    LayerStep& ls = s.layers[it->second];
    ls.present = true;
    ls.counts.assign(rec.counts.begin(), rec.counts.end());
    ls.bias = rec.bias;
    ls.ep_load.assign(rec.stats.ep_load.begin(), rec.stats.ep_load.end());
    ls.maxvio = rec.stats.maxvio;
    if (std::isnan(ls.maxvio) && !ls.counts.empty()) ls.maxvio = max_violation(ls.counts);
    ls.entropy = rec.stats.entropy;
    ls.entropy_max = rec.stats.entropy_max;
    ls.cv = rec.stats.cv;
    ls.balance_loss = rec.balance_loss;
    ls.ep_max_over_mean = rec.stats.ep_max_over_mean;
    ls.dead = rec.stats.dead >= 0 ? static_cast<double>(rec.stats.dead) : NAN;
    bool no_bias = !rec.bias_logged;
    if (ls.counts.empty() || no_bias) missing.emplace_back(at, it->second), want_bias.push_back(no_bias);
  }
  if (s.layers.empty()) return "no usable entry in \"layers\"";
  if (!missing.empty() && h5_) fill_from_h5(s, missing, want_bias);
  for (const auto& [at, li] : missing) {
    LayerStep& ls = s.layers[li];
    if (std::isnan(ls.maxvio) && !ls.counts.empty()) ls.maxvio = max_violation(ls.counts);
    if (ls.counts.empty()) ++steps_without_counts_;
  }
  if (steps_seen_++ == 0) first_step_ = s.step;
  recent_.push_back(std::move(s));
  while (static_cast<int64_t>(recent_.size()) > 2 * window_) recent_.pop_front();
  columns_.add(recent_.back());
  return "";
}

void RunLogs::fill_from_h5(ExpertStep& s, const std::vector<std::pair<size_t, size_t>>& missing,
                           const std::vector<bool>& want_bias) {
  ExpertsH5& h5 = *h5_;
  if (!h5.open()) return;
  if (h5_row_ > h5.rows) h5_row_ = 0;  // the file was rewritten shorter
  // Rows hold increasing steps (a resumed run truncates, then appends): skip those before this step.
  int64_t step = -1;
  while (h5_row_ < h5.rows && (step = h5.step_at(h5_row_)) >= 0 && step < s.step) ++h5_row_;
  if (h5_row_ >= h5.rows || step != s.step) return;  // not (yet) in experts.h5
  std::vector<uint32_t> counts;
  std::vector<float> bias;
  bool counts_ok = h5.read_row(h5.counts_ds.get(), H5T_NATIVE_UINT32, h5_row_, counts);
  bool bias_ok = h5.has_bias && h5.read_row(h5.bias_ds.get(), H5T_NATIVE_FLOAT, h5_row_, bias);
  if (!counts_ok) h5.note = "experts.h5: a step's counts cannot be read (damaged?): no per-expert load from it for that step";
  for (size_t i = 0; i < missing.size(); ++i) {
    auto [at, li] = missing[i];
    if (static_cast<int64_t>(at) >= h5.L) continue;
    LayerStep& ls = s.layers[li];
    size_t base = at * static_cast<size_t>(h5.E);
    if (counts_ok && ls.counts.empty()) {
      ls.counts.assign(counts.begin() + static_cast<long>(base), counts.begin() + static_cast<long>(base + h5.E));
    }
    if (bias_ok && want_bias[i] && ls.bias.empty()) {
      auto b = bias.begin() + static_cast<long>(base), e = b + h5.E;
      if (std::any_of(b, e, [](float x) { return x != 0.0f; }))  // all zeros: a layer without a correction bias
        ls.bias.assign(b, e);
    }
  }
}

std::string RunLogs::take_metric_line(const nlohmann::json& j) {
  StepMetrics m;
  if (!metrics_from_json(j, m)) return "no integer \"step\"";
  if (m.step < last_metric_step_)
    return "step " + std::to_string(m.step) + " goes back from step " + std::to_string(last_metric_step_);
  if (m.skipped) {  // the trainer dropped a bad step
    ++trainer_skipped_;
    last_skip_ = "step " + std::to_string(m.step) + (m.skip_reason.empty() ? "" : ": " + m.skip_reason);
    last_metric_step_ = m.step;
    return "";
  }
  metrics_.add(j);
  if (m.step != last_metric_step_ || !last_metrics_.is_object()) last_metrics_ = nlohmann::json::object();
  for (auto it = j.begin(); it != j.end(); ++it) last_metrics_[it.key()] = *it;  // an eval line may share its step
  if (!std::isnan(m.eval_lm_loss)) last_eval_ = m.eval_lm_loss;
  last_metric_step_ = m.step;
  return "";
}

StepSpan RunLogs::recent_span(int64_t n, int64_t skip) const {
  StepSpan span;
  int64_t end = static_cast<int64_t>(recent_.size()) - skip;
  for (int64_t i = std::max<int64_t>(0, end - n); i < end; ++i) span.add(recent_[static_cast<size_t>(i)]);
  return span;
}

std::vector<std::string> RunLogs::notes() const {
  std::vector<std::string> n;
  if (!has_experts_) n.push_back("experts.jsonl missing: no expert load to show");
  if (!has_metrics_) n.push_back("metrics.jsonl missing: no loss, lr or throughput");
  if (!config_note_.empty()) n.push_back(config_note_);
  for (const auto& s : experts_reader_.notes()) n.push_back(s);
  for (const auto& s : metrics_reader_.notes()) n.push_back(s);
  if (!h5_note_.empty()) n.push_back(h5_note_);
  if (steps_without_counts_ > 0)
    n.push_back("experts.jsonl: " + std::to_string(steps_without_counts_) +
                " layer-steps carry no \"counts\" (a statistics-only log, train.experts_log) and experts.h5 " +
                (fs::exists(fs::path(dir_) / "experts.h5") ? "does not hold them" : "is missing") +
                ": no per-expert load for them");
  if (trainer_skipped_ > 0)
    n.push_back("the trainer skipped " + std::to_string(trainer_skipped_) + " bad step(s) (last: " + last_skip_ + ")");
  return n;
}

}  // namespace mlamoe
