// mlamoe: one binary, git-style subcommands (DESIGN.md "Command line"). Each subcommand lives in its
// own file; this one only dispatches and turns errors into one line and a non-zero exit.
#include <cstdio>
#include <string>
#include <vector>

#include "model/tensor/error.h"
#include "train/smoke.h"

namespace {

const char* kUsage =
    "usage: mlamoe <command> [flags]\n"
    "commands:\n"
    "  smoke    train a one-block byte-level attention LM on a text file (library smoke run)\n"
    "           --text FILE [--steps 1000] [--batch 16] [--seq 128] [--lr 3e-3] [--seed 1]\n"
    "  version  print the build configuration\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (cmd == "smoke") return mlamoe::run_smoke(args);
    if (cmd == "version" || cmd == "--version") return mlamoe::print_version();
    if (cmd == "help" || cmd == "--help" || cmd == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "mlamoe: unknown command '%s' (try: mlamoe help)\n", cmd.c_str());
    return 2;
  } catch (const mlamoe::Error& e) {
    std::fprintf(stderr, "mlamoe: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlamoe: internal error: %s\n", e.what());
    return 1;
  }
}
