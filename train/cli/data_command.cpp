// `mlamoe data prepare --input F1[,F2,...] --output OUT.h5 [--tokenizer byte|tokenizer.json] [--format text|sft]
//  [--chat-template deepseek-v2|deepseek-v3|deepseek-r1] [--seq-len N] [--overwrite]`.
// text: each file one document (pretraining). sft: JSONL conversations with a loss mask on the
// responses (data/sft.h); the default for inputs ending in .jsonl. The chat template defaults to the
// one in the tokenizer_config.json beside tokenizer.json (data/chat_template.h). For sft data it
// reports the share of the windows of --seq-len tokens (the training data.seq_len; default 4096)
// that hold no target token, and warns when it is large: prompts longer than seq_len.
// The work is data/prepare.cpp; this file only reads flags and prints the summary line.
#include "train/cli/data_command.h"

#include <cstdio>
#include <filesystem>

#include "data/chat_template.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/sft.h"
#include "data/text_encoder.h"
#include "model/tensor/error.h"
#include "train/cli/cli_args.h"

namespace mlamoe {

namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = s.find(',', start);
    if (end == std::string::npos) end = s.size();
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

int run_prepare(const std::vector<std::string>& argv) {
  CliArgs args("data prepare", argv, {"overwrite"});
  std::string input = args.get("input", "");
  std::string output = args.get("output", "");
  std::string tokenizer = args.get("tokenizer", "byte");
  std::string format = args.get("format", "");
  std::string chat_template = args.get("chat-template", "");
  int64_t seq_len = args.get_int("seq-len", 4096, 1, int64_t{1} << 30);
  bool seq_len_given = !args.get("seq-len", "").empty();
  bool overwrite = args.has_switch("overwrite");
  args.reject_unknown();
  MLAMOE_CHECK(!input.empty(), "data prepare: --input FILE[,FILE...] is required");
  MLAMOE_CHECK(!output.empty(), "data prepare: --output FILE.h5 is required");

  std::vector<std::string> inputs = split_commas(input);
  // Even with --overwrite, the output must not be one of the inputs (the same file under any name):
  // writing it would destroy the data being read.
  for (const std::string& in : inputs) {
    std::error_code ec;
    MLAMOE_CHECK(!std::filesystem::equivalent(in, output, ec),
                 "data prepare: --output '" << output << "' is the input file '" << in << "'; choose another output path");
  }
  if (format.empty())
    format = !inputs.empty() && inputs[0].size() > 6 && inputs[0].substr(inputs[0].size() - 6) == ".jsonl" ? "sft" : "text";
  MLAMOE_CHECK(format == "text" || format == "sft", "data prepare: --format must be text or sft, got '" << format << "'");
  if (!chat_template.empty()) chat_template_named(chat_template);  // a bad name fails before any work
  MLAMOE_CHECK(chat_template.empty() || format == "sft", "data prepare: --chat-template applies to --format sft only");
  MLAMOE_CHECK(!seq_len_given || format == "sft", "data prepare: --seq-len applies to --format sft only");
  PrepareStats s;
  TextEncoder enc = text_encoder(tokenizer);
  if (format == "sft") {
    ChatFormat chat = chat_format(chat_template, enc);
    std::printf("data prepare: chat template %s (%s)\n", chat_template_name(chat.tmpl).c_str(), chat.origin.c_str());
    s = prepare_sft_dataset(inputs, output, enc, chat, overwrite);
  } else {
    s = prepare_text_dataset(inputs, output, enc, overwrite);
  }
  std::printf("data prepare: %lld docs, %lld tokens, %.2f MB of text in %.2f s -> %s\n", static_cast<long long>(s.docs),
              static_cast<long long>(s.tokens), static_cast<double>(s.bytes) / 1e6, s.seconds, output.c_str());
  if (format == "sft") {
    TokenDataset ds = TokenDataset::open(output);
    WindowTargets wt = count_windows_without_targets(ds, 0, ds.num_tokens(), seq_len);
    if (wt.share_without() >= kWarnShareWithoutTargets)
      std::fprintf(stderr,
                   "warning: %.1f%% of the windows (%lld of %lld) of %lld tokens hold no target token at seq_len %lld: prompts "
                   "longer than seq_len leave windows whose loss is undefined (steps made only of them are skipped)%s\n",
                   100 * wt.share_without(), static_cast<long long>(wt.without_targets), static_cast<long long>(wt.windows),
                   static_cast<long long>(seq_len + 1), static_cast<long long>(seq_len),
                   seq_len_given ? "" : "; pass --seq-len with the training data.seq_len");
    else
      std::printf("data prepare: %lld of %lld windows at seq_len %lld hold no target token\n",
                  static_cast<long long>(wt.without_targets), static_cast<long long>(wt.windows),
                  static_cast<long long>(seq_len));
  }
  return 0;
}

}  // namespace

int run_data_command(const std::vector<std::string>& args) {
  MLAMOE_CHECK(!args.empty(), "data: missing command (supported: prepare)");
  const std::string& cmd = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  MLAMOE_CHECK(cmd == "prepare", "unknown data command '" << cmd << "' (supported: prepare)");
  return run_prepare(rest);
}

}  // namespace mlamoe
