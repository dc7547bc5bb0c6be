// Instruction data for fine-tuning: JSONL files of conversations to a token dataset with a loss
// mask (token_dataset.h), so that only the responses are trained on.
//
// One JSON object per line, either
//   {"prompt": "...", "response": "...", "system": "..." (optional)}
// or
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
// Each line is one document, laid out with DeepSeek's chat template in plain text:
//   [BOS] [system "\n\n"] "User: " user "\n\n" "Assistant: " response EOS  (turns repeat)
// The mask is 1 on every assistant response and the EOS that closes it, 0 on everything else.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "data/text_encoder.h"

namespace mlamoe {

// Reads the JSONL inputs line by line (streaming) and writes `output` atomically. Throws one line
// naming the file and line for invalid JSON, a missing field, an unknown role, a conversation
// without an assistant turn, an empty corpus; an existing output is kept unless overwrite.
PrepareStats prepare_sft_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                 bool overwrite);

}  // namespace mlamoe
