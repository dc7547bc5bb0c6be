// Command-line flags of one subcommand: "--name value" pairs, switches ("--dry-run", declared by
// the command, no value) and repeatable flags ("--set a=1 --set b=2", declared too); any other
// flag given twice, or left unread, is an error (a typo is an error, not a silent default).
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

namespace mlamoe {

class CliArgs {
 public:
  // args: everything after the subcommand. Throws mlamoe::Error on a malformed list.
  CliArgs(const std::string& command, const std::vector<std::string>& args, const std::set<std::string>& switches = {},
          const std::set<std::string>& repeatable = {});

  std::string get(const std::string& name, const std::string& fallback);
  bool has_switch(const std::string& name);                   // a declared switch
  std::vector<std::string> get_all(const std::string& name);  // a declared repeatable flag, in order
  int64_t get_int(const std::string& name, int64_t fallback, int64_t min, int64_t max);
  double get_double(const std::string& name, double fallback, double min, double max);
  // Call after reading every known flag: throws naming the first unknown one.
  void reject_unknown() const;

 private:
  std::string command_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> repeated_;
  std::set<std::string> switches_on_;
  std::set<std::string> used_;
};

}  // namespace mlamoe
