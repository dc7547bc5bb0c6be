// The writer of the run's JSONL logs (metrics.jsonl, experts.jsonl; train/README.md "Logs"):
// appended and flushed line by line, so a killed run leaves at most one partial last line, and
// rewritten up to the checkpoint's step when a run resumes.
#pragma once
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

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

}  // namespace mlamoe
