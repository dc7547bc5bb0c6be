// mlamoe: one binary, git-style subcommands (DESIGN.md "Command line"). Each subcommand lives in its
// own file; this one only dispatches and turns errors into one line and a non-zero exit.
#include <cstdio>
#include <string>
#include <vector>

#include "model/tensor/error.h"
#include "train/data_command.h"
#include "train/generate_command.h"
#include "train/trainer.h"
#include "train/version.h"

namespace {

const char* kUsage =
    "usage: mlamoe <command> [flags]\n"
    "commands:\n"
    "  train     train a model: --config FILE [--set key=value ...] [--dry-run [--ranks N]]\n"
    "            (--dry-run prints parameter counts, FLOPs/token and memory per rank of N ranks, then exits)\n"
    "  data      prepare --input FILE[,FILE...] --output DATA.h5 [--tokenizer byte] [--overwrite]\n"
    "  generate  --checkpoint RUN_DIR/weights.h5 --prompt TEXT [--tokens 200] [--verify]\n"
    "            greedy decoding with the absorbed-MLA KV cache\n"
    "  version   print the build configuration\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  std::string cmd = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (cmd == "train") return mlamoe::run_train_command(args);
    if (cmd == "data") return mlamoe::run_data_command(args);
    if (cmd == "generate") return mlamoe::run_generate_command(args);
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
