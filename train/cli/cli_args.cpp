#include "train/cli/cli_args.h"

#include <cstdlib>

#include "model/tensor/error.h"

namespace mlamoe {

CliArgs::CliArgs(const std::string& command, const std::vector<std::string>& args, const std::set<std::string>& switches,
                 const std::set<std::string>& repeatable)
    : command_(command) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    MLAMOE_CHECK(a.rfind("--", 0) == 0 && a.size() > 2, command << ": expected a --flag, got '" << a << "'");
    std::string name = a.substr(2);
    if (switches.count(name)) {
      MLAMOE_CHECK(switches_on_.insert(name).second, command << ": flag " << a << " given twice");
      continue;
    }
    MLAMOE_CHECK(i + 1 < args.size(), command << ": flag " << a << " needs a value");
    if (repeatable.count(name))
      repeated_[name].push_back(args[i + 1]);
    else
      MLAMOE_CHECK(values_.emplace(name, args[i + 1]).second, command << ": flag " << a << " given twice");
    ++i;
  }
}

bool CliArgs::has_switch(const std::string& name) {
  used_.insert(name);
  return switches_on_.count(name) != 0;
}

std::vector<std::string> CliArgs::get_all(const std::string& name) {
  used_.insert(name);
  auto it = repeated_.find(name);
  return it == repeated_.end() ? std::vector<std::string>{} : it->second;
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
  for (const auto& name : switches_on_) MLAMOE_CHECK(used_.count(name), command_ << ": unknown flag --" << name);
  for (const auto& [name, values] : repeated_) MLAMOE_CHECK(used_.count(name), command_ << ": unknown flag --" << name);
}

}  // namespace mlamoe
