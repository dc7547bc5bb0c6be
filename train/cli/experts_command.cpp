// `mlamoe experts`: argument checks, the terminal summary and the --follow loop (see experts_command.h).
// The numbers come from RunLogs (run_logs.h); the page from write_html_report (html_report.h).
#include "train/cli/experts_command.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <thread>

#include "model/tensor/error.h"
#include "train/cli/cli_args.h"
#include "train/monitor/html_report.h"
#include "train/monitor/run_logs.h"

namespace fs = std::filesystem;

namespace mlamoe {

namespace {

const char* kUsage = "usage: mlamoe experts RUN_DIR [--window 50] [--html FILE] [--follow [--follow-seconds S]]";

volatile std::sig_atomic_t g_stop = 0;
extern "C" void on_sigint(int) { g_stop = 1; }

// "0,3-5,9", shortened with a count when long: a 256-expert layer can have many dead experts.
std::string id_ranges(const std::vector<int64_t>& ids) {
  std::string s;
  for (size_t i = 0; i < ids.size();) {
    size_t j = i;
    while (j + 1 < ids.size() && ids[j + 1] == ids[j] + 1) ++j;
    if (s.size() > 28) return s + " +" + std::to_string(ids.size() - i) + " more";
    if (!s.empty()) s += ",";
    s += std::to_string(ids[i]);
    if (j > i) s.append("-").append(std::to_string(ids[j]));
    i = j + 1;
  }
  return s;
}

std::string fmt(const char* f, double v) {
  if (std::isnan(v)) return "-";
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

std::string si(double v) {  // 1.7K, 2.3M
  if (std::isnan(v)) return "-";
  const char* unit = "";
  for (const char* u : {"K", "M", "G"})
    if (v >= 1000) v /= 1000, unit = u;
  return fmt("%.1f", v) + unit;
}

double metric(const nlohmann::json& m, const char* k) {
  if (!m.is_object()) return NAN;
  auto it = m.find(k);
  return it != m.end() && it->is_number() ? it->get<double>() : NAN;
}

void print_summary(const RunLogs& logs) {
  std::printf("run %s (%s)\n", logs.run_name().c_str(), logs.run_dir().c_str());
  if (std::string c = config_summary(logs.config()); !c.empty()) std::printf("model: %s\n", c.c_str());
  const ExpertStep& last = logs.last();
  std::printf("steps seen %lld (steps %lld..%lld)\n", static_cast<long long>(logs.steps_seen()),
              static_cast<long long>(logs.first_step()), static_cast<long long>(last.step));
  const nlohmann::json& m = logs.last_metrics();
  if (m.is_object())  // metrics.jsonl is written just after experts.jsonl: while following it may lag a step
    std::printf("metrics at step %s: loss %s, lr %s, %s tok/s, last eval lm loss %s\n", fmt("%.0f", metric(m, "step")).c_str(),
                fmt("%.4f", metric(m, "loss")).c_str(), fmt("%.2e", metric(m, "lr")).c_str(),
                si(metric(m, "tokens_per_s")).c_str(), fmt("%.4f", logs.last_eval_lm_loss()).c_str());

  int64_t w = logs.window();
  StepSpan win = logs.recent_span(w), prev = logs.recent_span(w, win.steps);
  std::printf("window: the last %lld steps (%lld..%lld)", static_cast<long long>(win.steps),
              static_cast<long long>(win.first_step), static_cast<long long>(win.last_step));
  if (prev.steps)
    std::printf("; trend against the %lld before (%lld..%lld)", static_cast<long long>(prev.steps),
                static_cast<long long>(prev.first_step), static_cast<long long>(prev.last_step));
  std::printf("\n\n");

  const auto& names = logs.layer_names();
  std::vector<size_t> order(names.size());
  std::iota(order.begin(), order.end(), 0);
  auto win_mv = [&](size_t l) {
    double v = l < win.layers.size() ? win.layers[l].maxvio_mean() : NAN;
    return std::isnan(v) ? -1.0 : v;
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return win_mv(a) > win_mv(b); });
  size_t nw = 19;
  for (const auto& n : names) nw = std::max(nw, n.size());
  std::printf(
      "MaxVio: the last step, the window's mean, trend = its change from the previous window; dead: no token in the window\n");
  std::printf("%-*s  %7s %7s %7s    %-10s %-10s %-7s %s\n", static_cast<int>(nw), "layer (worst first)", "MaxVio", "window",
              "trend", "bias min", "bias max", "EP max/", "dead experts");
  std::printf("%-*s  %7s %7s %7s    %-10s %-10s %-7s\n", static_cast<int>(nw), "", "last", "mean", "", "", "", "mean");
  for (size_t l : order) {
    LayerSpan none;
    const LayerSpan& ws = l < win.layers.size() ? win.layers[l] : none;
    const LayerSpan& ps = l < prev.layers.size() ? prev.layers[l] : none;
    const LayerStep* ls = l < last.layers.size() && last.layers[l].present ? &last.layers[l] : nullptr;
    double trend = ws.maxvio_mean() - ps.maxvio_mean();
    const char* arrow = std::isnan(trend) ? " " : trend > 0.01 ? "↑" : trend < -0.01 ? "↓" : "→";
    std::string dead = "-";
    if (!ws.counts.empty()) {
      std::vector<int64_t> ids;
      for (size_t e = 0; e < ws.counts.size(); ++e)
        if (ws.counts[e] == 0) ids.push_back(static_cast<int64_t>(e));
      dead = ids.empty() ? "0" : std::to_string(ids.size()) + ": " + id_ranges(ids);
    } else if (ls && !std::isnan(ls->dead)) {
      dead = fmt("%.0f", ls->dead) + " (trainer's count)";
    }
    double bmin = NAN, bmax = NAN;
    if (ls && !ls->bias.empty())
      bmin = *std::min_element(ls->bias.begin(), ls->bias.end()), bmax = *std::max_element(ls->bias.begin(), ls->bias.end());
    std::printf("%-*s  %7s %7s %7s %s  %-10s %-10s %-7s %s\n", static_cast<int>(nw), names[l].c_str(),
                fmt("%.3f", ls ? ls->maxvio : NAN).c_str(), fmt("%.3f", ws.maxvio_mean()).c_str(), fmt("%+.3f", trend).c_str(),
                arrow, fmt("%+.2e", bmin).c_str(), fmt("%+.2e", bmax).c_str(), fmt("%.3f", ws.ep_ratio_mean()).c_str(),
                dead.c_str());
  }
  std::vector<std::string> notes = logs.notes();
  std::printf("\nskipped: %s\n", notes.empty() ? "nothing" : "");
  for (const auto& n : notes) std::printf("  %s\n", n.c_str());
  std::fflush(stdout);
}

void write_report(const RunLogs& logs, const std::string& html) {
  write_html_report(logs, html);
  std::printf("wrote %s\n", html.c_str());
  std::fflush(stdout);
}

// Re-reads the logs every second; reprints (and rewrites the report) when steps arrived. Stops on
// Ctrl-C or after `seconds` (> 0).
int follow(RunLogs& logs, const std::string& html, double seconds) {
  g_stop = 0;
  auto old = std::signal(SIGINT, on_sigint);
  auto t0 = std::chrono::steady_clock::now();
  bool changed = true, waiting_said = false;
  bool tty = ::isatty(STDOUT_FILENO);
  while (!g_stop) {
    if (changed && logs.steps_seen() > 0) {
      if (tty) std::printf("\033[H\033[2J");  // refresh in place on a terminal; a pipe gets one summary after another
      print_summary(logs);
      if (!html.empty()) write_report(logs, html);
      std::printf("following %s (Ctrl-C stops)\n\n", logs.run_dir().c_str());
      std::fflush(stdout);
    } else if (logs.steps_seen() == 0 && !waiting_said) {
      std::printf("waiting for the first step in %s/experts.jsonl (Ctrl-C stops)\n", logs.run_dir().c_str());
      std::fflush(stdout);
      waiting_said = true;
    }
    for (int i = 0; i < 10 && !g_stop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (seconds > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() >= seconds) break;
    changed = logs.refresh();
  }
  std::signal(SIGINT, old);
  return 0;
}

}  // namespace

int run_experts_command(const std::vector<std::string>& args) {
  MLAMOE_CHECK(!args.empty() && args[0].rfind("--", 0) != 0, "experts: RUN_DIR is required; " << kUsage);
  std::string dir = args[0];
  CliArgs a("experts", std::vector<std::string>(args.begin() + 1, args.end()), {"follow"}, {});
  std::string html = a.get("html", "");
  int64_t window = a.get_int("window", 50, 1, int64_t{1} << 30);
  bool following = a.has_switch("follow");
  double seconds = a.get_double("follow-seconds", 0, 0, 1e9);
  a.reject_unknown();
  MLAMOE_CHECK(following || seconds == 0, "experts: --follow-seconds needs --follow");
  MLAMOE_CHECK(fs::is_directory(dir), "experts: run directory '" << dir << "' does not exist");

  RunLogs logs(dir, window);
  logs.refresh();
  if (following) return follow(logs, html, seconds);
  MLAMOE_CHECK(logs.has_experts_file(),
               "experts: '" << dir << "' has no experts.jsonl (not a run directory, or no step finished yet)");
  if (logs.steps_seen() == 0) {
    std::string why;
    for (const auto& n : logs.notes())
      if (n.rfind("experts.jsonl", 0) == 0) why += "; " + n;
    MLAMOE_CHECK(false, "experts: " << (fs::path(dir) / "experts.jsonl").string() << " holds no complete step" << why);
  }
  if (!logs.has_metrics_file())
    std::fprintf(stderr, "mlamoe experts: warning: %s missing: no loss, lr or throughput\n",
                 (fs::path(dir) / "metrics.jsonl").string().c_str());
  print_summary(logs);
  if (!html.empty()) write_report(logs, html);
  return 0;
}

}  // namespace mlamoe
