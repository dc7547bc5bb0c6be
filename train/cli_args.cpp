#include "train/cli_args.h"

#include <cstdlib>

#include "model/tensor/error.h"

namespace mlamoe {

CliArgs::CliArgs(const std::string& command, const std::vector<std::string>& args) : command_(command) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    MLAMOE_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, command << ": expected a --flag, got '" << a << "'");
    MLAMOE_CHECK(i + 1 < args.size(), command << ": flag " << a << " needs a value");
    MLAMOE_CHECK(values_.emplace(a.substr(2), args[i + 1]).second, command << ": flag " << a << " given twice");
    ++i;
  }
}

std::string CliArgs::get(const std::string& name, const std::string& fallback) {
  used_.insert(name);
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second;
}

int64_t CliArgs::get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max) {
  std::string s = get(name, "");
  if (s.empty()) return fallback;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  MLAMOE_CHECK(end && *end == '\0', command_ << ": --" << name << " expects an integer, got '" << s << "'");
  MLAMOE_CHECK(v >= min && v <= max, command_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << v);
  return v;
}

double CliArgs::get_double(const std::string& name, double fallback, double min, double max) {
  std::string s = get(name, "");
  if (s.empty()) return fallback;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  MLAMOE_CHECK(end && *end == '\0', command_ << ": --" << name << " expects a number, got '" << s << "'");
  MLAMOE_CHECK(v >= min && v <= max, command_ << ": --" << name << " must be in [" << min << ", " << max << "], got " << v);
  return v;
}

void CliArgs::reject_unknown() const {
  for (const auto& [name, value] : values_) MLAMOE_CHECK(used_.count(name), command_ << ": unknown flag --" << name);
}

}  // namespace mlamoe
