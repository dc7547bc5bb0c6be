// The byte-level tokenizer (the default): token id = byte value. Lossless for any input, UTF-8
// included, and needs no vocabulary file. Token datasets add one end-of-document id after the bytes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

constexpr int64_t kByteVocabSize = 256;     // the byte ids 0..255 (what the smoke model predicts)
constexpr int32_t kByteEosId = 256;         // end of document, appended by `mlamoe data prepare`
constexpr int64_t kByteDatasetVocab = 257;  // bytes + EOS: the vocab_size a byte token dataset records

std::vector<int32_t> byte_encode(const std::string& text);
std::string byte_decode(const std::vector<int32_t>& ids);

// Whole file as bytes; one-line errors for a missing, unreadable or empty file.
std::string read_text_file(const std::string& path);

}  // namespace mlamoe
