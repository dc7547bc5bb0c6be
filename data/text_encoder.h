// The tokenizer interface of `data prepare`: text to token ids plus the ids the dataset records.
// Two kinds: the byte tokenizer (the default; ids 0..255, EOS 256) and a Hugging Face byte-level
// BPE loaded from tokenizer.json (data/bpe_tokenizer.h), e.g. a DeepSeek tokenizer for fine-tuning
// a converted checkpoint.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace mlamoe {

struct TextEncoder {
  std::string name;  // stored in the dataset: "byte" or the tokenizer.json path
  int64_t vocab_size = 0;
  int64_t eos_id = 0;
  int64_t bos_id = -1;      // -1: no BOS token
  std::string bos_token;    // the BOS and EOS tokens as text ("" for the byte tokenizer, whose EOS is
  std::string eos_token;    // an id with no text)
  bool byte_level = false;  // true: any cut of the text encodes the same (the byte tokenizer)
  std::function<std::vector<int32_t>(const std::string&)> encode;
  std::function<std::string(const std::vector<int32_t>&)> decode;
};

TextEncoder byte_text_encoder();

// "byte", or a path to a Hugging Face tokenizer.json (which must define an end-of-sentence token).
// One-line errors for anything else.
TextEncoder text_encoder(const std::string& spec);

}  // namespace mlamoe
