// mlamoe: one binary, git-style subcommands (train/README.md "Command line"). Each subcommand lives in its
// own file; this one only dispatches and turns errors into one line and a non-zero exit.
#include <hdf5.h>

#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "model/tensor/error.h"
#include "train/cli/convert_command.h"
#include "train/cli/data_command.h"
#include "train/cli/experts_command.h"
#include "train/cli/generate_command.h"
#include "train/cli/train_command.h"
#include "train/cli/version.h"

namespace {

const char* kUsage =
    "usage: mlamoe <command> [flags]\n"
    "commands:\n"
    "  train     train a model: --config FILE [--set key=value ...] [--resume RUN_DIR | --init-from CKPT]\n"
    "            [--dry-run [--ranks N]] [--profile]\n"
    "            (--dry-run prints parameter counts, FLOPs/token and memory per rank of N ranks, then exits)\n"
    "  data      prepare --input FILE[,FILE...] --output DATA.h5 [--tokenizer byte|tokenizer.json] [--format text|sft]\n"
    "            [--overwrite]   (.jsonl inputs: SFT conversations with a loss mask on the responses)\n"
    "            sft: [--chat-template deepseek-v2|deepseek-v3|deepseek-r1] (default: tokenizer_config.json's)\n"
    "                 [--seq-len N] (warns when many windows of N tokens hold no target; default 4096)\n"
    "  generate  --checkpoint RUN_DIR/weights.h5 --prompt TEXT [--tokens 200] [--tokenizer byte|tokenizer.json] [--verify]\n"
    "            greedy decoding with the absorbed-MLA KV cache\n"
    "  convert   --from-hf DIR --to CKPT.h5 [--overwrite] [--allow-nonfinite]\n"
    "            import a Hugging Face DeepSeek-V2/V3 checkpoint (config.json + *.safetensors; FP8 dequantised)\n"
    "            --from CKPT.h5 --to-hf DIR [--dtype bf16|f32] [--shard-size-mb 4096] [--overwrite]\n"
    "            export to Hugging Face safetensors shards + config.json (other files in DIR are kept)\n"
    "  experts   RUN_DIR [--window 50] [--html FILE] [--follow [--follow-seconds S]]\n"
    "            expert-load summary of a run: worst layers by MaxVio, dead experts, bias, EP; --html writes a\n"
    "            self-contained report; --follow re-reads the logs every second (Ctrl-C stops)\n"
    "  version   print the build configuration\n";

}  // namespace

int main(int argc, char** argv) {
  // HDF5 would otherwise close every file still open at exit from its atexit handler; after a
  // failed write (a full disk) that close crashes (SIGSEGV) and masks the error. Every file is
  // closed by its owner before exit; one left behind by an error is simply dropped.
  H5dont_atexit();
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
    if (cmd == "convert") return mlamoe::run_convert_command(args);
    if (cmd == "experts") return mlamoe::run_experts_command(args);
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
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "mlamoe: error: out of memory (see `mlamoe train --dry-run` for what a config needs)\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mlamoe: internal error: %s\n", e.what());
    return 1;
  }
}
