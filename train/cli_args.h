// Command-line flags of one subcommand: "--name value" pairs, each read at most once, and an error
// for any flag left unread (a typo is an error, not a silent default).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mlamoe {

class CliArgs {
 public:
  // args: everything after the subcommand. Throws mlamoe::Error on a malformed list.
  CliArgs(const std::string& command, const std::vector<std::string>& args);

  std::string get(const std::string& name, const std::string& fallback);
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max);
  double get_double(const std::string& name, double fallback, double min, double max);
  // Call after reading every known flag: throws naming the first unknown one.
  void reject_unknown() const;

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::set<std::string> used_;
};

}  // namespace mlamoe
