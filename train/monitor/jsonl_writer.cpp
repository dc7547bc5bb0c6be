#include "train/monitor/jsonl_writer.h"

#include <cstdio>
#include <vector>

#include "model/json_parse.h"
#include "model/tensor/error.h"

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

}  // namespace mlamoe
