// Instruction data for fine-tuning: JSONL files of conversations to a token dataset with a loss
// mask (token_dataset.h), so that only the responses are trained on.
//
// One JSON object per line, either
//   {"prompt": "...", "response": "...", "system": "..." (optional)}
// or
//   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
// Each line is one document, laid out with the chat template of the model family
// (data/chat_template.h: deepseek-v2, deepseek-v3 or deepseek-r1, as Hugging Face's
// apply_chat_template writes them; chosen by --chat-template, else by the chat_template of the
// tokenizer_config.json beside tokenizer.json, else deepseek-v2 for the byte tokenizer, whose EOS
// is id 256 and which has no BOS) and tokenized as one text, so the ids at turn boundaries are
// those the model sees at inference. The mask is 1 on a token when any of its bytes belongs to an
// assistant response (so "Ġthe", whose space ends "Assistant: ", is trained on) and on the
// end-of-sentence token that closes each response; 0 on BOS, system, user turns and role markers.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/chat_template.h"
#include "data/prepare.h"
#include "data/text_encoder.h"

namespace mlamoe {

// Reads the JSONL inputs line by line (streaming) and writes `output` atomically. `chat` comes from
// chat_format(). Throws one line naming the file and line for invalid JSON, a missing field, an
// unknown role, a conversation without an assistant turn, an empty corpus; an existing output is
// kept unless overwrite.
PrepareStats prepare_sft_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                 const ChatFormat& chat, bool overwrite);

}  // namespace mlamoe
