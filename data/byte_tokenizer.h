// The byte-level tokenizer (the default): token id = byte value, vocabulary 256. Lossless for any
// input, UTF-8 included, and needs no vocabulary file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

constexpr int64_t kByteVocabSize = 256;

std::vector<int32_t> byte_encode(const std::string& text);
std::string byte_decode(const std::vector<int32_t>& ids);

// Whole file as bytes; one-line errors for a missing, unreadable or empty file.
std::string read_text_file(const std::string& path);

}  // namespace mlamoe
