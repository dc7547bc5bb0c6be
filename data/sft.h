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
#include <functional>
#include <string>
#include <vector>

#include "data/prepare.h"

namespace mlamoe {

// What the SFT layout needs from a tokenizer (byte-level or a Hugging Face BPE).
struct TextEncoder {
  std::string name;                                         // stored in the dataset ("byte", a tokenizer.json path)
  int64_t vocab_size = 0;
  int64_t eos_id = 0;
  int64_t bos_id = -1;                                      // -1: no BOS token
  std::function<std::vector<int32_t>(const std::string&)> encode;
};

TextEncoder byte_text_encoder();

// Reads the JSONL inputs line by line (streaming) and writes `output` atomically. Throws one line
// naming the file and line for invalid JSON, a missing field, an unknown role, a conversation
// without an assistant turn, an empty corpus; an existing output is kept unless overwrite.
PrepareStats prepare_sft_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                 bool overwrite);

}  // namespace mlamoe
