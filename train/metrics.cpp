#include "train/metrics.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/json_parse.h"
#include "model/ops/ops.h"

namespace mlamoe {

JsonlWriter::JsonlWriter(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "w")) {
  MLAMOE_CHECK(f_ != nullptr, "cannot create log file '" << path << "'");
}

JsonlWriter::JsonlWriter(const std::string& path, int64_t through_step) : path_(path) {
  std::vector<std::string> keep;
  if (std::FILE* in = std::fopen(path.c_str(), "r")) {
    std::string line;
    int c;
    auto flush_line = [&]() {
      try {
        auto j = parse_json(line, path);
        if (j.contains("step") && j["step"].get<int64_t>() <= through_step) keep.push_back(line);
      } catch (const std::exception&) {
        // a partial line from a killed writer
      }
      line.clear();
    };
    while ((c = std::fgetc(in)) != EOF) {
      if (c == '\n')
        flush_line();
      else
        line.push_back(static_cast<char>(c));
    }
    std::fclose(in);
  }
  // The kept lines go to a new file that replaces the old one by rename: a run killed right here
  // still finds its log whole on the next resume.
  std::string tmp = path + ".tmp";
  std::FILE* out = std::fopen(tmp.c_str(), "w");
  MLAMOE_CHECK(out != nullptr, "cannot create log file '" << tmp << "'");
  for (const auto& l : keep) std::fprintf(out, "%s\n", l.c_str());
  bool ok = std::fflush(out) == 0;
  ok = std::fclose(out) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error("cannot rewrite log file '" + path + "' (disk full?)");
  }
  f_ = std::fopen(path.c_str(), "a");
  MLAMOE_CHECK(f_ != nullptr, "cannot open log file '" << path << "'");
}

JsonlWriter::~JsonlWriter() {
  if (f_) std::fclose(f_);
}

void JsonlWriter::write(const nlohmann::json& line) {
  std::string s = line.dump();
  s.push_back('\n');
  MLAMOE_CHECK(std::fwrite(s.data(), 1, s.size(), f_) == s.size() && std::fflush(f_) == 0,
               "cannot write to log file '" << path_ << "' (disk full?)");
}

double max_violation(const std::vector<int64_t>& counts) {
  if (counts.empty()) return 0.0;
  double total = 0, mx = 0;
  for (int64_t c : counts) total += static_cast<double>(c), mx = std::max(mx, static_cast<double>(c));
  double mean = total / static_cast<double>(counts.size());
  return mean > 0 ? (mx - mean) / mean : 0.0;
}

double measure_sgemm_gflops() {
  NoGrad ng;
  const int64_t n = 1024;
  Rng rng(1);
  Tensor a = Tensor::randn({n, n}, rng), b = Tensor::randn({n, n}, rng);
  // The best of many repeats over a quarter of a second: the peak is what the machine can do, and a
  // shared machine's noise only ever slows a repeat down, but a slow stretch can last a while.
  // (The first repeat also pays for OpenBLAS's buffers and page faults.)
  double best = 1e30;
  auto start = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 64; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor c = matmul(a, b);
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    if (rep >= 8 && std::chrono::duration<double>(t1 - start).count() > 0.25) break;
  }
  return 2.0 * n * n * n / best / 1e9;
}

std::string format_duration(double s) {
  char buf[32];
  if (!std::isfinite(s) || s < 0) return "?";
  long t = std::lround(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace mlamoe
