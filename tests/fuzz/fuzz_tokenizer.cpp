// A tokenizer.json as `mlamoe data prepare --tokenizer` reads it: BpeTokenizer::load (vocab,
// merges, added tokens, the pre-tokenizer's Split regexes compiled), then encode, decode and the
// pre-tokenizer pieces of a few short texts, which runs the regex matcher.
//
// Input: the tokenizer.json, optionally followed by a NUL byte and a text of up to 256 bytes that
// is encoded too (so the fuzzer varies the text as well as the patterns).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "data/bpe_tokenizer.h"
#include "tests/data/hand_tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

const char* const kTexts[] = {
    "Hello, world! It's 2024: 12345 tokens.",
    "  leading spaces\n\nand\r\nnewlines\t\ttabs ",
    "你好世界 こんにちは café",
    "bad utf-8: \xff\xfe\xc3 \xe2\x82",
    "<｜begin▁of▁sentence｜>the end",
};

// decode(encode(s)) == s holds for any bytes (bpe_tokenizer.h) when every byte has a token and
// every id one string: the model vocab holds all 256 byte characters, its ids are distinct, an
// added token's id is not another vocab token's, and no added token strips the spaces beside it.
// (Loading refuses two strings for one id since that finding; the checks here keep the condition
// exact for the inputs that load.)
bool round_trips(const std::string& text) {
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object() || !j["model"].contains("vocab") ||
      !j["model"]["vocab"].is_object())
    return false;
  const nlohmann::json& vocab = j["model"]["vocab"];
  for (int b = 0; b < 256; ++b)
    if (!vocab.contains(mlamoe::byte_char(b))) return false;
  std::map<int64_t, std::string> token_of;
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    if (!it.value().is_number_integer() || !token_of.emplace(it.value().get<int64_t>(), it.key()).second) return false;
  }
  std::set<int64_t> added_ids;
  if (j.contains("added_tokens") && j["added_tokens"].is_array()) {
    for (const auto& a : j["added_tokens"]) {
      if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") ||
          !a["content"].is_string())
        return false;
      const int64_t id = a["id"].get<int64_t>();
      auto v = token_of.find(id);
      if (!added_ids.insert(id).second || (v != token_of.end() && v->second != a["content"].get<std::string>())) return false;
      if ((a.contains("lstrip") && a["lstrip"] != false) || (a.contains("rstrip") && a["rstrip"] != false)) return false;
    }
  }
  return true;
}

void check_text(const mlamoe::BpeTokenizer& tok, const std::string& text, bool round_trip) {
  std::vector<int32_t> ids = tok.encode(text);
  (void)tok.pre_tokenize(text);
  std::string back = tok.decode(ids);
  if (round_trip && back != text) {
    std::fprintf(stderr, "fuzz_tokenizer: FINDING: decode(encode(text)) differs from the text (%zu bytes in, %zu out)\n",
                 text.size(), back.size());
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string json = input.substr(0, nul);
  std::string text = nul == std::string::npos ? std::string() : input.substr(nul + 1, 256);
  std::string path = mlamoe::fuzz::write_temp(json, "tokenizer.json");
  mlamoe::fuzz::expect_only_mlamoe_errors("fuzz_tokenizer", [&] {
    mlamoe::BpeTokenizer tok = mlamoe::BpeTokenizer::load(path);
    (void)tok.vocab_size();
    (void)tok.bos_id();
    (void)tok.eos_id();
    const bool round_trip = round_trips(json);
    for (const char* t : kTexts) check_text(tok, t, round_trip);
    if (!text.empty()) check_text(tok, text, round_trip);
  });
  return 0;
}
