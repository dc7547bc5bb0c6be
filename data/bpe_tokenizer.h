// Hugging Face byte-level BPE tokenizers (the tokenizer.json of GPT-2, DeepSeek-V2/V3 and the
// like), so released DeepSeek vocabularies can encode fine-tuning data and decode generations.
// Encodes exactly as HF `tokenizers` does (tests/data/test_bpe.cpp compares against it); holds no
// training, no post-processing (encode never adds BOS/EOS: callers prepend bos_id()) and no
// normalizers beyond the empty one.
//
// BpeRegex is the pre-tokenizer regex engine: HF runs Split patterns through Oniguruma, whose
// \p{..} classes and lookahead std::regex cannot express, so this is a small backtracking matcher
// for the subset those patterns use, over code points, with Unicode tables from
// data/unicode_tables.h. Invalid UTF-8 is kept, not replaced: each invalid byte is one pseudo code
// point that belongs to no class (only `.` and negated classes match it), and ByteLevel maps the
// raw byte, so decode(encode(s)) == s for any bytes.
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
  // Supported: literals, `.`, `|`, groups `(..)` `(?:..)`, lookahead `(?=..)` `(?!..)`, `^ $ \A \z \Z`,
  // classes `[..]` `[^..]` with ranges, quantifiers `? * + {m} {m,} {m,n}` (and lazy `??` ...),
  // escapes \p{X} \P{X} (general categories, one or two letters, or long names like Letter),
  // \s \S \d \D, \r \n \t \f \v \a \e \xHH \x{H..} \uHHHH. Anything else (\w, lookbehind,
  // (?i), nested classes, possessive quantifiers, \h) throws mlamoe::Error naming the construct.
  explicit BpeRegex(const std::string& pattern);

  // Byte spans [begin, end) of the successive leftmost matches in `text`, as HF's Split finds them
  // (the onig crate's find_iter: an empty match right at the previous match's end is skipped).
  std::vector<std::pair<size_t, size_t>> find_all(const std::string& text) const;
  // HF Split with behavior "Isolated": the matches and the gaps between them, in order, none empty
  // (an empty match still separates the gaps on either side).
  std::vector<std::string> split(const std::string& text) const;

  const std::string& pattern() const { return pattern_; }

  struct Program;  // compiled form (bpe_tokenizer.cpp)
  const Program& program() const { return *program_; }

 private:
  std::string pattern_;
  std::shared_ptr<const Program> program_;
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
