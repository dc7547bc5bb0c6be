// The HTML report (see html_report.h): report_data() turns RunLogs into the embedded JSON, and the
// page's script (report/report.js, embedded at build time) draws everything from it; nothing is
// fetched from outside the file.
#include "train/monitor/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>

#include "model/tensor/error.h"
#include "train/monitor/expert_stats.h"
#include "train/monitor/report_assets.h"
#include "train/monitor/step_metrics.h"

namespace mlamoe {

namespace {

// Embedded-size limits: a 61-layer × 256-expert run at 1000 columns would be 15.6M heatmap cells.
constexpr size_t kMaxHeatCells = 4'000'000;  // one byte each (base64 in the page)
constexpr size_t kMaxBiasValues = 400'000;   // per-expert bias lines; above it only min/mean/max

// The heatmap cell of load ratio r = tokens / mean tokens of the layer in that column, as one byte:
// 0 no data, 1 no token (a dead expert), 2..255 log2(r) over [-3, 3]. The colours saturate at
// ±2, so the byte loses nothing the eye can see; the exact numbers are in the window heatmap.
uint8_t heat_byte(double count, double mean) {
  if (!(mean > 0)) return 0;
  if (count <= 0) return 1;
  double l2 = std::clamp(std::log2(count / mean), -3.0, 3.0);
  return static_cast<uint8_t>(2 + std::lround((l2 + 3.0) / 6.0 * 253.0));
}

std::string base64(const std::vector<uint8_t>& in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    uint32_t v = static_cast<uint32_t>(in[i]) << 16;
    if (i + 1 < in.size()) v |= static_cast<uint32_t>(in[i + 1]) << 8;
    if (i + 2 < in.size()) v |= in[i + 2];
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < in.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < in.size() ? k[v & 63] : '=';
  }
  return out;
}

double short_float(double v) {  // 4 significant digits: bias lines are drawn, not read
  char b[32];
  std::snprintf(b, sizeof b, "%.4g", v);
  return std::strtod(b, nullptr);
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return o;
}

// The last step's figures of one layer, from the log where it has them, else from the counts.
nlohmann::json last_step_json(const LayerStep& s) {
  nlohmann::json j = {{"maxvio", number_or_null(s.maxvio)},
                      {"cv", number_or_null(s.cv)},
                      {"entropy", number_or_null(s.entropy)},
                      {"entropy_max", number_or_null(s.entropy_max)},
                      {"balance_loss", number_or_null(s.balance_loss)},
                      {"ep_max_over_mean", number_or_null(s.ep_max_over_mean)}};
  double total = 0;
  for (double c : s.counts) total += c;
  int64_t zero = std::count(s.counts.begin(), s.counts.end(), 0.0);
  j["tokens"] = s.counts.empty() ? nlohmann::json(nullptr) : nlohmann::json(total);
  j["dead"] = !std::isnan(s.dead) ? number_or_null(s.dead) : s.counts.empty() ? nlohmann::json(nullptr) : nlohmann::json(zero);
  j["dead_source"] = !std::isnan(s.dead) ? "log" : "zero tokens this step";
  if (std::isnan(s.entropy) && total > 0) j["entropy"] = load_entropy(s.counts);
  if (std::isnan(s.entropy_max) && !s.counts.empty()) j["entropy_max"] = std::log(static_cast<double>(s.counts.size()));
  if (!s.bias.empty()) {
    auto [mn, mx] = std::minmax_element(s.bias.begin(), s.bias.end());
    j["bias_min"] = *mn, j["bias_max"] = *mx;
  }
  if (!s.ep_load.empty()) j["ep_load"] = s.ep_load;
  return j;
}

nlohmann::json report_data(const RunLogs& logs) {
  nlohmann::json d;
  d["run"] = logs.run_name();
  d["run_dir"] = logs.run_dir();
  d["summary"] = config_summary(logs.config());
  d["steps_seen"] = logs.steps_seen();
  d["first_step"] = logs.first_step();
  d["last_step"] = logs.steps_seen() ? logs.last().step : 0;
  d["notes"] = logs.notes();

  const auto& names = logs.layer_names();
  std::vector<StepSpan> cols = logs.columns().columns();
  int64_t width = logs.columns().width();
  std::vector<size_t> experts(names.size(), 0);
  for (const auto& c : cols)
    for (size_t l = 0; l < c.layers.size(); ++l)
      experts[l] = std::max({experts[l], c.layers[l].counts.size(), c.layers[l].bias.size()});
  size_t cells_per_col = 0;
  for (size_t e : experts) cells_per_col += e;
  while (cols.size() > 1 && cols.size() * cells_per_col > kMaxHeatCells) {  // coarser columns for very wide models
    std::vector<StepSpan> half;
    for (size_t i = 0; i < cols.size(); i += 2) {
      half.push_back(cols[i]);
      if (i + 1 < cols.size()) half.back().merge(cols[i + 1]);
    }
    cols.swap(half);
    width *= 2;
  }
  bool bias_lines = cols.size() * cells_per_col <= kMaxBiasValues;
  d["column_width"] = width;
  d["columns"] = cols.size();
  nlohmann::json first = nlohmann::json::array(), last = nlohmann::json::array();
  for (const auto& c : cols) first.push_back(c.first_step), last.push_back(c.last_step);
  d["col_first_step"] = first;
  d["col_last_step"] = last;

  StepSpan win = logs.recent_span(logs.window());
  d["window"] = {{"steps", win.steps}, {"first_step", win.first_step}, {"last_step", win.last_step}, {"asked", logs.window()}};

  nlohmann::json layers = nlohmann::json::array();
  for (size_t l = 0; l < names.size(); ++l) {
    const size_t E = experts[l], C = cols.size();
    nlohmann::json L = {{"name", names[l]}, {"experts", E}};
    std::vector<uint8_t> heat(E * C, 0);
    nlohmann::json mv = nlohmann::json::array(), mv_max = nlohmann::json::array(), ep = nlohmann::json::array();
    nlohmann::json bmin = nlohmann::json::array(), bmean = nlohmann::json::array(), bmax = nlohmann::json::array();
    std::vector<nlohmann::json> bias(bias_lines ? E : 0, nlohmann::json::array());
    bool any_ep = false;
    for (size_t c = 0; c < C; ++c) {
      LayerSpan none;
      const LayerSpan& s = l < cols[c].layers.size() ? cols[c].layers[l] : none;
      double total = 0;
      for (double x : s.counts) total += x;
      double mean = s.counts.empty() ? 0.0 : total / static_cast<double>(s.counts.size());
      for (size_t e = 0; e < s.counts.size() && e < E; ++e) heat[e * C + c] = heat_byte(s.counts[e], mean);
      mv.push_back(number_or_null(s.maxvio_mean()));
      mv_max.push_back(s.maxvio_steps ? number_or_null(s.maxvio_max) : nullptr);
      ep.push_back(number_or_null(s.ep_ratio_mean()));
      any_ep = any_ep || s.ep_ratio_steps > 0;
      if (s.bias.empty()) {
        bmin.push_back(nullptr), bmean.push_back(nullptr), bmax.push_back(nullptr);
      } else {
        auto [mn, mx] = std::minmax_element(s.bias.begin(), s.bias.end());
        double sum = 0;
        for (double b : s.bias) sum += b;
        bmin.push_back(*mn), bmax.push_back(*mx), bmean.push_back(sum / static_cast<double>(s.bias.size()));
      }
      for (size_t e = 0; e < bias.size(); ++e)
        bias[e].push_back(e < s.bias.size() ? number_or_null(short_float(s.bias[e])) : nullptr);
    }
    L["heat"] = base64(heat);
    L["maxvio"] = mv;
    L["maxvio_max"] = mv_max;
    L["bias_min"] = bmin, L["bias_mean"] = bmean, L["bias_max"] = bmax;
    if (bias_lines) L["bias"] = bias;
    L["ep_ratio"] = any_ep ? ep : nlohmann::json(nullptr);

    LayerSpan none;
    const LayerSpan& ws = l < win.layers.size() ? win.layers[l] : none;
    if (!ws.counts.empty()) {
      double total = 0;
      for (double x : ws.counts) total += x;
      double mean = total / static_cast<double>(ws.counts.size());
      nlohmann::json load = nlohmann::json::array(), dead = nlohmann::json::array();
      for (size_t e = 0; e < ws.counts.size(); ++e) {
        load.push_back(mean > 0 ? number_or_null(ws.counts[e] / mean) : nullptr);
        if (ws.counts[e] == 0) dead.push_back(e);
      }
      L["window_load"] = load;
      L["window_counts"] = ws.counts;
      L["window_dead"] = dead;
    }
    L["window_maxvio"] = number_or_null(ws.maxvio_mean());
    if (!ws.ep_load.empty() && ws.steps > 0) {
      nlohmann::json per_rank = nlohmann::json::array();
      for (double x : ws.ep_load) per_rank.push_back(x / static_cast<double>(ws.steps));
      L["window_ep_load"] = per_rank;
    }
    const ExpertStep& ls = logs.last();
    L["last"] = l < ls.layers.size() && ls.layers[l].present ? last_step_json(ls.layers[l]) : nlohmann::json(nullptr);
    layers.push_back(std::move(L));
  }
  d["layers"] = layers;

  std::vector<MetricSpan> mcols = logs.metrics().columns();
  nlohmann::json steps = nlohmann::json::array(), fields = nlohmann::json::object();
  for (const auto& c : mcols)
    for (const auto& [k, v] : c.sums) fields[k] = nlohmann::json::array();
  for (const auto& c : mcols) {
    steps.push_back(c.last_step);
    for (auto it = fields.begin(); it != fields.end(); ++it) {
      auto f = c.sums.find(it.key());
      it->push_back(f == c.sums.end() ? nlohmann::json(nullptr)
                                      : number_or_null(f->second.first / static_cast<double>(f->second.second)));
    }
  }
  d["metrics"] = {{"step", steps}, {"fields", fields}, {"column_width", logs.metrics().width()}};
  return d;
}

// The page's head up to its stylesheet; the stylesheet, body and script are the files of report/,
// embedded at build time (report_assets.h).
const char* kHead = R"HTML(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
)HTML";

}  // namespace

void write_html_report(const RunLogs& logs, const std::string& path) {
  // "</" cannot appear inside a <script> block; JSON allows the escaped form.
  std::string data = report_data(logs).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::string safe;
  safe.reserve(data.size());
  for (size_t i = 0; i < data.size(); ++i) {
    safe += data[i];
    if (data[i] == '<' && i + 1 < data.size() && data[i + 1] == '/') safe += '\\';
  }
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    MLAMOE_CHECK(out, "experts: cannot write the report '" << path << "'");
    out << kHead << "<style>\n"
        << kReportCss << "</style>\n<title>Expert load: " << html_escape(logs.run_name()) << "</title>\n"
        << kReportBodyHtml << "<script type=\"application/json\" id=\"report-data\">" << safe << "</script>\n"
        << "<script>\n"
        << kReportJs << "</script>\n</body></html>\n";
    out.close();
    MLAMOE_CHECK(out, "experts: cannot write the report '" << path << "' (disk full?)");
  }
  MLAMOE_CHECK(std::rename(tmp.c_str(), path.c_str()) == 0, "experts: cannot write the report '" << path << "'");
}

}  // namespace mlamoe
