// Hugging Face byte-level BPE tokenizers (the tokenizer.json of GPT-2, DeepSeek-V2/V3 and the
// like), so released DeepSeek vocabularies can encode fine-tuning data and decode generations.
// Encodes exactly as HF `tokenizers` does (tests/data/test_bpe.cpp compares against it); holds no
// training, no post-processing (encode never adds BOS/EOS: callers prepend bos_id()) and no
// normalizers beyond the empty one.
//
// BpeRegex is the pre-tokenizer regex: Oniguruma, compiled exactly as HF `tokenizers` compiles Split
// and ByteLevel patterns (the onig crate's Regex::new: ONIG_OPTION_NONE, Ruby syntax, UTF-8) and
// searched as its find_iter searches, so a pattern means here what it means there. Bounds: at most
// 10,000,000 backtracking steps per match attempt (Oniguruma's retry-limit-in-match, the limit HF
// runs with: HF panics past it, this throws), and, stricter than HF, nesting depth (parse depth 1000)
// and capture groups (1000), so a hostile tokenizer.json is one error, never a hang or a crash.
// Invalid UTF-8 is kept, not replaced: the regexes see each maximal ill-formed subpart as U+FFFD (the
// text HF would see after a lossy decode), but pieces are cut from the raw bytes and ByteLevel maps
// those, so decode(encode(s)) == s for any bytes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace mlamoe {

class BpeRegex {
 public:
  // Compiles `pattern` (UTF-8) with Oniguruma's Ruby syntax: anything HF accepts (\p{..} classes and
  // scripts, lookahead and lookbehind, (?i), possessive quantifiers, ...). A pattern Oniguruma
  // rejects, or one nested too deeply, throws mlamoe::Error "regex '<pattern>': <why>".
  explicit BpeRegex(const std::string& pattern);

  // Byte spans [begin, end) of the successive leftmost matches in `text`, as HF's Split finds them
  // (the onig crate's find_iter: an empty match right at the previous match's end is skipped).
  // Throws mlamoe::Error naming the pattern and the text when a match attempt exceeds the step limit.
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;
  // HF Split with behavior "Isolated": the matches and the gaps between them, in order, none empty
  // (an empty match still separates the gaps on either side).
  std::vector<std::string> split(const std::string& text) const;

  const std::string& pattern() const { return pattern_; }

  static constexpr unsigned long kRetryLimitInMatch = 10000000;  // backtracking steps per match attempt
  static constexpr unsigned int kParseDepthLimit = 1000;         // Oniguruma's parse depth (a group takes 2)
  static constexpr int kCaptureLimit = 1000;                     // capture groups per pattern

  struct Compiled;  // the Oniguruma regex (bpe_tokenizer.cpp)
  const Compiled& compiled() const { return *compiled_; }

 private:
  std::string pattern_;
  std::shared_ptr<const Compiled> compiled_;
};

class BpeTokenizer {
 public:
  // Reads a tokenizer.json: model BPE (vocab, merges as "a b" or [a, b], ignore_merges, unk_token),
  // added_tokens, normalizer null or an empty Sequence, pre_tokenizer Split(s) ending in ByteLevel
  // (or ByteLevel alone), decoder ByteLevel. Throws mlamoe::Error with one line naming the file
  // and the problem (missing file, bad JSON, unsupported type, a merge naming an unknown token).
  static BpeTokenizer load(const std::string& path);

  // Token ids of `text` (any bytes). Added tokens (special or not) are matched verbatim first,
  // as HF does; nothing is prepended or appended.
  std::vector<int32_t> encode(const std::string& text) const;
  // Bytes of `ids` (ByteLevel inverted; added tokens verbatim). Unlike HF, invalid UTF-8 (a
  // generation cut inside a character) is returned as is, not replaced by U+FFFD, so pieces
  // decoded one at a time concatenate to the whole. Throws on an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const;

  // The pieces BPE sees, before the byte mapping: added tokens and pre-tokenizer splits (for tests).
  std::vector<std::string> pre_tokenize(const std::string& text) const;

  // Largest id + 1 over the model vocab and the added tokens: the rows an embedding table needs.
  int64_t vocab_size() const;
  std::optional<int32_t> token_to_id(const std::string& token) const;  // added tokens, then the vocab
  const std::string& id_to_token(int32_t id) const;                    // "" for ids with no token
  // The added tokens named like DeepSeek's <｜begin▁of▁sentence｜> / <｜end▁of▁sentence｜>, if any.
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;

  struct State;  // vocab, merges, added tokens, pre-tokenizer steps, piece cache (bpe_tokenizer.cpp)

 private:
  BpeTokenizer() = default;  // only load() makes one
  std::shared_ptr<State> state_;
};

}  // namespace mlamoe
