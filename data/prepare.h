// `mlamoe data prepare`: text files to a token dataset (token_dataset.h). Each input file is one
// document, ended with the tokenizer's EOS; the byte tokenizer maps bytes to ids 0..255 (EOS 256),
// a Hugging Face tokenizer.json gives its BPE ids (text_encoder.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

struct PrepareStats {
  int64_t docs = 0;
  int64_t tokens = 0;  // EOS included
  int64_t bytes = 0;   // of input text
  double seconds = 0;
};

// Streams every input in 1 MiB pieces (memory does not grow with file size) and publishes `output`
// atomically: on any error it is left as it was. Throws mlamoe::Error for no inputs, an unknown
// tokenizer, a missing or unreadable input, an existing output without overwrite, an empty corpus.
PrepareStats prepare_text_dataset(const std::vector<std::string>& inputs, const std::string& output, const std::string& tokenizer,
                                  bool overwrite);
// The same with an encoder already loaded. A BPE text is cut into pieces at line starts that no
// pre-tokenizer piece can span (after "\n", before an ASCII letter or digit), so the ids equal
// those of encoding the whole file at once. A text with no such point in max_pending_bytes (one
// enormous line) is cut at a space instead, with a warning, so memory stays bounded.
struct TextEncoder;
PrepareStats prepare_text_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                  bool overwrite, size_t max_pending_bytes = size_t{64} << 20);

}  // namespace mlamoe
