// A hand-made byte-level BPE tokenizer.json for the data tests (test_bpe, test_chat): the 256 byte
// characters (id = byte), four merges ("Ġ t", "h e", "Ġt he", "i n"), DeepSeek's BOS (260) and EOS
// (261) as special tokens, DeepSeek-V3's pre-tokenizer.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlamoe {

inline const std::string kBos = "<｜begin▁of▁sentence｜>";
inline const std::string kEos = "<｜end▁of▁sentence｜>";
// DeepSeek-V3's Split patterns (tokenizer.json, JSON escapes decoded).
inline const std::string kDigits = R"(\p{N}{1,3})";
inline const std::string kCjk = "[一-龥\u3040-ゟ゠-ヿ]+";
inline const std::string kWords =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

// GPT-2's byte alphabet, written independently of the library: printable bytes keep their code
// point, the others take U+0100 upward in byte order.
inline std::string byte_char(int b) {
  static std::vector<std::string> table = [] {
    std::vector<std::string> t(256);
    int next = 256;
    for (int c = 0; c < 256; ++c) {
      const bool printable = (c >= 33 && c <= 126) || (c >= 161 && c <= 172) || (c >= 174 && c <= 255);
      const int cp = printable ? c : next++;
      std::string s;
      if (cp < 0x80) {
        s += static_cast<char>(cp);
      } else {
        s += static_cast<char>(0xC0 | (cp >> 6));
        s += static_cast<char>(0x80 | (cp & 0x3F));
      }
      t[c] = s;
    }
    return t;
  }();
  return table[b];
}

inline nlohmann::json hand_tokenizer() {
  using json = nlohmann::json;
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_char(b)] = b;
  const std::string sp = byte_char(' ');  // "Ġ"
  vocab[sp + "t"] = 256, vocab["he"] = 257, vocab[sp + "the"] = 258, vocab["in"] = 259;
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array({{{"id", 260}, {"content", kBos}, {"special", true}, {"normalized", false}},
                                   {{"id", 261}, {"content", kEos}, {"special", true}, {"normalized", false}}});
  j["normalizer"] = {{"type", "Sequence"}, {"normalizers", json::array()}};
  json steps = json::array();
  for (const auto& p : {kDigits, kCjk, kWords})
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", p}}}, {"behavior", "Isolated"}, {"invert", false}});
  steps.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
  j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {
      {"type", "BPE"},        {"dropout", nullptr},
      {"unk_token", nullptr}, {"byte_fallback", false},
      {"vocab", vocab},       {"merges", json::array({json::array({sp, "t"}), "h e", json::array({sp + "t", "he"}), "i n"})}};
  return j;
}

}  // namespace mlamoe
