#include "data/text_encoder.h"

#include <filesystem>
#include <memory>

#include "data/bpe_tokenizer.h"
#include "data/byte_tokenizer.h"
#include "model/tensor/error.h"

namespace mlamoe {

TextEncoder byte_text_encoder() {
  TextEncoder e;
  e.name = "byte";
  e.vocab_size = kByteDatasetVocab;
  e.eos_id = kByteEosId;
  e.byte_level = true;
  e.encode = [](const std::string& s) { return byte_encode(s); };
  e.decode = [](const std::vector<int32_t>& ids) {
    std::vector<int32_t> bytes;
    for (int32_t id : ids)
      if (id < 256) bytes.push_back(id);
    return byte_decode(bytes);
  };
  return e;
}

TextEncoder text_encoder(const std::string& spec) {
  if (spec == "byte") return byte_text_encoder();
  std::error_code ec;
  MLAMOE_CHECK(spec.size() > 5 && spec.substr(spec.size() - 5) == ".json",
               "unknown tokenizer '" << spec << "' (supported: byte, or a Hugging Face tokenizer.json path)");
  MLAMOE_CHECK(std::filesystem::exists(spec, ec), "tokenizer file '" << spec << "' does not exist");
  auto tok = std::make_shared<BpeTokenizer>(BpeTokenizer::load(spec));
  MLAMOE_CHECK(tok->eos_id().has_value(),
               "tokenizer '" << spec << "' defines no end-of-sentence token (needed between documents)");
  TextEncoder e;
  e.name = spec;
  e.vocab_size = tok->vocab_size();
  e.eos_id = *tok->eos_id();
  e.bos_id = tok->bos_id() ? *tok->bos_id() : -1;
  e.eos_token = tok->decode({*tok->eos_id()});
  if (tok->bos_id()) e.bos_token = tok->decode({*tok->bos_id()});
  e.encode = [tok](const std::string& s) { return tok->encode(s); };
  e.decode = [tok](const std::vector<int32_t>& ids) { return tok->decode(ids); };
  return e;
}

}  // namespace mlamoe
