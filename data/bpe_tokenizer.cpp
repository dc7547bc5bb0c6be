// Byte-level BPE as HF `tokenizers` runs it: added-token extraction, Split pre-tokenizers through
// Oniguruma (the engine HF uses for them), the GPT-2 byte alphabet, rank-ordered merges. Three parts,
// top to bottom: UTF-8 text (the lossy view the regexes search), the regex (Oniguruma set-up,
// compile, find_iter), the tokenizer (loading, encode, decode).
#include "data/bpe_tokenizer.h"

#include <oniguruma.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "model/config.h"
#include "model/json_parse.h"
#include "model/tensor/error.h"

namespace mlamoe {
namespace {

using json = nlohmann::json;

// ---------------------------------------------------------------------------------------------
// UTF-8 text

unsigned byte_at(std::string_view s, size_t i) { return static_cast<unsigned char>(s[i]); }

// Length of the well-formed UTF-8 sequence at s[i] (1-4; strict, as Rust's from_utf8: no overlongs,
// surrogates or values past U+10FFFF), or 0. Then *bad is the length of the maximal ill-formed subpart
// there (1-3): the bytes one U+FFFD stands for in a lossy decode (Rust's from_utf8_lossy, Python's
// errors="replace").
size_t utf8_len(std::string_view s, size_t i, size_t* bad = nullptr) {
  const unsigned b0 = byte_at(s, i);
  if (b0 < 0x80) return 1;
  size_t need = 0;
  unsigned lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2, lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3, lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
  }
  size_t k = 1;
  for (; k <= need && i + k < s.size(); ++k) {
    const unsigned b = byte_at(s, i + k);
    if (b < lo || b > hi) break;
    lo = 0x80, hi = 0xBF;
  }
  if (need > 0 && k > need) return need + 1;
  if (bad) *bad = k;
  return 0;
}

// The code point of the well-formed sequence of `len` bytes at s[i].
char32_t code_point_at(std::string_view s, size_t i, size_t len) {
  static constexpr unsigned kLeadMask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = byte_at(s, i) & kLeadMask[len];
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (byte_at(s, i + k) & 0x3F);
  return cp;
}

constexpr char32_t kReplacement = 0xFFFD;

// The code points of a text and their byte offsets (offs has one extra entry: the end); each maximal
// ill-formed subpart is one U+FFFD.
struct CodePoints {
  std::vector<char32_t> cps;
  std::vector<size_t> offs;
  size_t size() const { return cps.size(); }
};

CodePoints code_points(std::string_view s) {
  CodePoints t;
  for (size_t i = 0; i < s.size();) {
    size_t bad = 0;
    const size_t n = utf8_len(s, i, &bad);
    t.offs.push_back(i);
    t.cps.push_back(n ? code_point_at(s, i, n) : kReplacement);
    i += n ? n : bad;
  }
  t.offs.push_back(s.size());
  return t;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_len(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

// A text as BPE encodes it (`raw`, any bytes) and as the regexes search it: Oniguruma needs valid
// UTF-8, so when raw is not, `clean` is raw with each maximal ill-formed subpart replaced by U+FFFD
// and raw_at maps each byte offset of clean back to raw. Spans are offsets into regex_text().
struct Subject {
  std::string raw;
  std::string clean;           // only when lossy
  std::vector<size_t> raw_at;  // [clean.size() + 1]; only when lossy
  bool lossy = false;

  const std::string& regex_text() const { return lossy ? clean : raw; }
  size_t to_raw(size_t offset) const { return lossy ? raw_at[offset] : offset; }
  std::string_view raw_piece(std::pair<size_t, size_t> span) const {
    const size_t b = to_raw(span.first);
    return std::string_view(raw).substr(b, to_raw(span.second) - b);
  }

  void assign(std::string_view s) {
    raw.assign(s);
    clean.clear();
    raw_at.clear();
    lossy = !valid_utf8(s);
    if (!lossy) return;
    clean.reserve(s.size() + 8);
    raw_at.reserve(s.size() + 9);
    for (size_t i = 0; i < s.size();) {
      size_t bad = 0;
      const size_t n = utf8_len(s, i, &bad);
      if (n) {
        clean.append(s.substr(i, n));
      } else {
        clean += "\xEF\xBF\xBD";  // U+FFFD
      }
      raw_at.resize(clean.size(), i);  // a character's inner bytes map to its start: never a match boundary
      i += n ? n : bad;
    }
    raw_at.push_back(s.size());
  }
};

// A pattern or a text as it appears in a one-line message: control characters escaped, cut after
// `max` bytes (at a character boundary) with "..." added.
std::string shown(std::string_view s, size_t max) {
  std::string out;
  size_t i = 0;
  for (; i < s.size() && i < max;) {
    const unsigned c = byte_at(s, i);
    size_t bad = 0;
    const size_t n = utf8_len(s, i, &bad);
    char buf[8];
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (n == 0 || c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "\\x%02X", c);
      out += buf;
    } else {
      out.append(s.substr(i, n));
    }
    i += n ? n : 1;
  }
  if (i < s.size()) out += "...";
  return out;
}

// ---------------------------------------------------------------------------------------------
// Regex: Oniguruma, set up once; patterns compiled and searched as the onig crate does for HF.

void onig_setup() {
  static std::once_flag once;
  std::call_once(once, [] {
    OnigEncoding encodings[] = {ONIG_ENCODING_UTF8};
    onig_initialize(encodings, 1);
    // The parser and compiler recurse per nesting level: 1000 levels (about 500 groups) took at most
    // 1.5 MB of stack when measured (nested absent groups (?~..), the deepest), well inside the 8 MB of
    // the main thread; Oniguruma's default, 4096, would allow four times that.
    onig_set_parse_depth_limit(BpeRegex::kParseDepthLimit);
    // Every match attempt initialises every capture slot: bound the work a pattern can add per position.
    onig_set_capture_num_limit(BpeRegex::kCaptureLimit);
    onig_set_retry_limit_in_match(BpeRegex::kRetryLimitInMatch);  // also set per search below
  });
}

std::mutex& onig_new_mutex() {  // the onig crate serialises onig_new too
  static std::mutex m;
  return m;
}

// Oniguruma's message for an error code; control characters (from a quoted part of the pattern)
// become spaces, so the message stays one line.
std::string onig_message(int code, OnigErrorInfo* info = nullptr) {
  OnigUChar buf[ONIG_MAX_ERROR_MESSAGE_LEN];
  if (info) {
    onig_error_code_to_str(buf, code, info);
  } else {
    onig_error_code_to_str(buf, code);
  }
  std::string s(reinterpret_cast<const char*>(buf));
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  return s;
}

std::string regex_name(const std::string& pattern) {
  constexpr size_t kShown = 100;
  return "regex '" + shown(pattern, kShown) + "'" +
         (pattern.size() > kShown ? " (" + std::to_string(pattern.size()) + " bytes)" : "");
}

using Span = std::pair<size_t, size_t>;  // byte offsets [first, second) into a Subject's regex_text()

// Region and match parameters for a run of searches; one per thread at a time.
class Searcher {
 public:
  Searcher() : region_(onig_region_new()), param_(onig_new_match_param()) {
    MLAMOE_CHECK(region_ && param_, "regex: out of memory");
    onig_initialize_match_param(param_);
    onig_set_retry_limit_in_match_of_match_param(param_, BpeRegex::kRetryLimitInMatch);
  }
  ~Searcher() {
    if (region_) onig_region_free(region_, 1);
    if (param_) onig_free_match_param(param_);
  }
  Searcher(const Searcher&) = delete;
  Searcher& operator=(const Searcher&) = delete;

  // The onig crate's find_iter over `subject` (what HF's Split runs on one piece): the leftmost match
  // from the search position, then search on from its end. An empty match is kept (it still splits
  // the text) unless it sits right where the previous match ended; then the search moves on one
  // character. Appends spans offset by `base`.
  void find_matches(const BpeRegex& re, std::string_view subject, size_t base, std::vector<Span>& out);

 private:
  OnigRegion* region_;
  OnigMatchParam* param_;
};

}  // namespace

struct BpeRegex::Compiled {
  regex_t* regex = nullptr;
  ~Compiled() {
    if (regex) onig_free(regex);
  }
};

namespace {

void Searcher::find_matches(const BpeRegex& re, std::string_view subject, size_t base, std::vector<Span>& out) {
  const auto* str = reinterpret_cast<const OnigUChar*>(subject.data());
  const auto* end = str + subject.size();
  size_t from = 0;
  int64_t last_match_end = -1;
  while (from <= subject.size()) {
    const int r = onig_search_with_param(re.compiled().regex, str, end, str + from, end, region_, ONIG_OPTION_NONE, param_);
    if (r == ONIG_MISMATCH) return;
    if (r < 0) {
      std::string why = onig_message(r);
      if (r == ONIGERR_RETRY_LIMIT_IN_MATCH_OVER)
        why += ": more than " + std::to_string(BpeRegex::kRetryLimitInMatch) +
               " backtracking steps in one match attempt (catastrophic backtracking; HF tokenizers gives up there too)";
      throw Error(regex_name(re.pattern()) + ": " + why + ", searching from byte " + std::to_string(from) + " of the " +
                  std::to_string(subject.size()) + "-byte text \"" + shown(subject, 60) + "\"");
    }
    const auto s = static_cast<size_t>(region_->beg[0]), e = static_cast<size_t>(region_->end[0]);
    if (e == s && static_cast<int64_t>(e) == last_match_end) {
      from += from < subject.size() ? utf8_len(subject, from) : 1;
      continue;
    }
    out.push_back({base + s, base + e});
    from = e;
    last_match_end = static_cast<int64_t>(e);
  }
}

// "Isolated": matches and the gaps between them each become a piece; empty ones are dropped.
void split_isolated(const BpeRegex& re, const std::string& text, const std::vector<Span>& in, std::vector<Span>& out,
                    Searcher& searcher, std::vector<Span>& scratch) {
  out.clear();
  for (const Span& piece : in) {
    scratch.clear();
    searcher.find_matches(re, std::string_view(text).substr(piece.first, piece.second - piece.first), piece.first, scratch);
    size_t prev = piece.first;
    for (const Span& m : scratch) {
      if (m.first > prev) out.push_back({prev, m.first});
      if (m.second > m.first) out.push_back(m);
      prev = m.second;
    }
    if (prev < piece.second) out.push_back({prev, piece.second});
  }
}

}  // namespace

BpeRegex::BpeRegex(const std::string& pattern) : pattern_(pattern) {
  onig_setup();
  if (!valid_utf8(pattern)) throw Error(regex_name(pattern) + ": the pattern is not valid UTF-8");
  auto compiled = std::make_shared<Compiled>();
  OnigErrorInfo info{};
  int r = 0;
  {
    std::lock_guard<std::mutex> lock(onig_new_mutex());
    const auto* p = reinterpret_cast<const OnigUChar*>(pattern.data());
    r = onig_new(&compiled->regex, p, p + pattern.size(), ONIG_OPTION_NONE, ONIG_ENCODING_UTF8, ONIG_SYNTAX_RUBY, &info);
  }
  if (r != ONIG_NORMAL) {
    compiled->regex = nullptr;  // onig_new frees it on failure
    std::string why = onig_message(r, &info);
    if (r == ONIGERR_PARSE_DEPTH_LIMIT_OVER)
      why =
          "nested too deeply (" + why + ": at most " + std::to_string(kParseDepthLimit) + " levels, where each group takes two)";
    if (r == ONIGERR_TOO_MANY_CAPTURES) why += " (at most " + std::to_string(kCaptureLimit) + " capture groups)";
    throw Error(regex_name(pattern) + ": " + why);
  }
  compiled_ = std::move(compiled);
}

std::vector<std::pair<size_t, size_t>> BpeRegex::find_all(const std::string& text) const {
  Subject t;
  t.assign(text);
  std::vector<Span> spans;
  Searcher searcher;
  searcher.find_matches(*this, t.regex_text(), 0, spans);
  for (Span& s : spans) s = {t.to_raw(s.first), t.to_raw(s.second)};
  return spans;
}

std::vector<std::string> BpeRegex::split(const std::string& text) const {
  std::vector<std::string> pieces;
  size_t prev = 0;
  for (const auto& [b, e] : find_all(text)) {
    if (b > prev) pieces.push_back(text.substr(prev, b - prev));
    if (e > b) pieces.push_back(text.substr(b, e - b));
    prev = e;
  }
  if (prev < text.size()) pieces.push_back(text.substr(prev));
  return pieces;
}

// ---------------------------------------------------------------------------------------------
// Tokenizer

namespace {

// GPT-2's bytes_to_unicode: printable bytes stand for themselves, the rest move to U+0100 up.
std::array<char32_t, 256> byte_alphabet() {
  std::array<char32_t, 256> a{};
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    a[b] = printable ? static_cast<char32_t>(b) : next++;
  }
  return a;
}

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct AddedToken {
  int32_t id;
  std::string content;
  bool single_word, lstrip, rstrip, normalized, special;
};

// Added-token matcher: a byte trie; the longest token at the leftmost position wins, like HF's
// leftmost-longest Aho-Corasick.
struct Trie {
  std::unordered_map<uint64_t, int32_t> edges;  // (node << 8 | byte) -> node
  std::vector<int32_t> token{-1};               // node -> index into added tokens, or -1
  std::array<bool, 256> first{};                // bytes some token starts with: most text skips the map
  bool needs_text = false;                      // some token has single_word / lstrip / rstrip

  void insert(const std::string& s, int32_t index) {
    int32_t node = 0;
    first[static_cast<unsigned char>(s[0])] = true;
    for (unsigned char b : s) {
      auto [it, fresh] = edges.try_emplace((uint64_t(node) << 8) | b, static_cast<int32_t>(token.size()));
      if (fresh) token.push_back(-1);
      node = it->second;
    }
    token[node] = index;
  }
  // Longest token starting at p (index and length), or {-1, 0}.
  std::pair<int32_t, size_t> longest(std::string_view s, size_t p) const {
    std::pair<int32_t, size_t> best{-1, 0};
    if (!first[static_cast<unsigned char>(s[p])]) return best;
    int32_t node = 0;
    for (size_t i = p; i < s.size(); ++i) {
      auto it = edges.find((uint64_t(node) << 8) | static_cast<unsigned char>(s[i]));
      if (it == edges.end()) break;
      node = it->second;
      if (token[node] >= 0) best = {token[node], i + 1 - p};
    }
    return best;
  }
};

struct Segment {
  size_t begin, end;
  int32_t token;  // index into added tokens, or -1 for text still to pre-tokenize
};

// What HF's added-token matching (Rust's `regex` crate) calls \s and \w: White_Space, and Alphabetic,
// marks, Nd, Pc and Join_Control. Oniguruma's Unicode Space and Word are the same sets less Join_Control.
bool is_space_cp(char32_t c) { return ONIGENC_IS_CODE_CTYPE(ONIG_ENCODING_UTF8, c, ONIGENC_CTYPE_SPACE); }
bool is_word_cp(char32_t c) {
  return c == 0x200C || c == 0x200D || ONIGENC_IS_CODE_CTYPE(ONIG_ENCODING_UTF8, c, ONIGENC_CTYPE_WORD);
}

// A Split step, with the tokenizer.json field it came from for messages.
struct SplitStep {
  std::string field;  // e.g. pre_tokenizer.pretokenizers[2].pattern.Regex
  BpeRegex regex;
};

}  // namespace

struct BpeTokenizer::State {
  std::string path;
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;                              // [vocab_size]; "" for holes
  std::vector<std::string> id_to_bytes;                              // [vocab_size]; what decode emits for the id
  std::vector<uint8_t> id_known;                                     // [vocab_size]
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left << 32 | right) -> (rank, new id)
  std::array<int32_t, 256> byte_id{};                                // vocab id of each byte's alphabet character, or -1
  std::array<std::string, 256> byte_char;                            // the alphabet character of each byte, UTF-8
  bool ignore_merges = false;
  int32_t unk_id = -1;
  bool fuse_unk = false;

  std::vector<AddedToken> added;
  std::unordered_map<std::string, int32_t> added_by_content;
  Trie raw_trie, normalized_trie;  // tokens with normalized false / true (matched in that order)

  std::vector<SplitStep> splits;  // the Split steps, in order
  bool add_prefix_space = false;  // ByteLevel's options
  std::optional<BpeRegex> byte_level_regex;
  std::optional<int32_t> bos, eos;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // piece bytes -> ids

  void split_added(std::string_view s, const Trie& trie, std::vector<Segment>& segs) const;
  void pre_tokenize_segment(std::string_view s, Subject& text, std::vector<Span>& pieces) const;
  void bpe(std::string_view piece, std::vector<int32_t>& out) const;
  std::vector<int32_t> merge(std::string_view piece) const;
};

// HF AddedVocabulary::find_matches over each text segment, for the tokens of one trie.
void BpeTokenizer::State::split_added(std::string_view s, const Trie& trie, std::vector<Segment>& segs) const {
  if (trie.token.size() == 1) return;
  std::vector<Segment> out;
  for (const Segment& seg : segs) {
    if (seg.token >= 0) {
      out.push_back(seg);
      continue;
    }
    const std::string_view sentence = s.substr(seg.begin, seg.end - seg.begin);
    CodePoints t;
    if (trie.needs_text) t = code_points(sentence);
    // Byte offset -> code point index, for the whitespace and word checks around a match.
    auto cp_at = [&](size_t byte) { return std::lower_bound(t.offs.begin(), t.offs.end(), byte) - t.offs.begin(); };
    size_t start_offset = 0, p = 0;
    while (p < sentence.size()) {
      auto [tok, len] = trie.longest(sentence, p);
      if (tok < 0) {
        ++p;
        continue;
      }
      const AddedToken& a = added[tok];
      size_t start = p, stop = p + len;
      p = stop;
      if (a.single_word) {
        const size_t ci = cp_at(start), ce = cp_at(stop);
        const bool left_ok = ci == 0 || !is_word_cp(t.cps[ci - 1]);
        const bool right_ok = ce == t.size() || !is_word_cp(t.cps[ce]);
        if (!left_ok || !right_ok) continue;
      }
      if (a.lstrip) {
        size_t ci = cp_at(start);
        while (ci > 0 && is_space_cp(t.cps[ci - 1])) --ci;
        start = std::max<size_t>(t.offs[ci], start_offset);
      }
      if (a.rstrip) {
        size_t ce = cp_at(stop);
        while (ce < t.size() && is_space_cp(t.cps[ce])) ++ce;
        stop = t.offs[ce];
        p = stop;
      }
      if (start_offset < start) out.push_back({seg.begin + start_offset, seg.begin + start, -1});
      out.push_back({seg.begin + start, seg.begin + stop, tok});
      start_offset = stop;
    }
    if (start_offset < sentence.size()) out.push_back({seg.begin + start_offset, seg.end, -1});
  }
  segs = std::move(out);
}

// The Split steps, then ByteLevel's prefix space and GPT-2 regex, over one segment of text.
void BpeTokenizer::State::pre_tokenize_segment(std::string_view s, Subject& text, std::vector<Span>& pieces) const {
  text.assign(s);
  pieces.assign(1, {0, text.regex_text().size()});
  if (s.empty()) pieces.clear();
  std::vector<Span> next, scratch;
  Searcher searcher;
  auto run = [&](const BpeRegex& re, const std::string& field) {
    try {
      split_isolated(re, text.regex_text(), pieces, next, searcher, scratch);
    } catch (const Error& e) {
      throw Error("bpe tokenizer '" + path + "': " + field + ": " + e.what());
    }
    pieces.swap(next);
  };
  for (const SplitStep& step : splits) run(step.regex, step.field);
  if (add_prefix_space) {
    // HF prepends a space to every piece that does not start with one; rebuild the text so each
    // piece is contiguous with its space.
    Subject spaced;
    spaced.lossy = text.lossy;
    std::vector<Span> moved;
    const std::string& from = text.regex_text();
    for (const Span& p : pieces) {
      const size_t first = spaced.regex_text().size();
      const std::string_view raw = text.raw_piece(p);
      if (from[p.first] != ' ') {
        spaced.raw += ' ';
        if (spaced.lossy) spaced.clean += ' ', spaced.raw_at.push_back(spaced.raw.size() - 1);
      }
      if (spaced.lossy) {
        const size_t shift = spaced.raw.size() - text.raw_at[p.first];
        for (size_t i = p.first; i < p.second; ++i) spaced.raw_at.push_back(text.raw_at[i] + shift);
        spaced.clean.append(from, p.first, p.second - p.first);
      }
      spaced.raw.append(raw);
      moved.push_back({first, spaced.regex_text().size()});
    }
    if (spaced.lossy) spaced.raw_at.push_back(spaced.raw.size());
    text = std::move(spaced);
    pieces = std::move(moved);
  }
  if (byte_level_regex) run(*byte_level_regex, "pre_tokenizer ByteLevel (its GPT-2 regex)");
}

// HF's Word::merge_all: apply the lowest-ranked adjacent pair first, leftmost among equals.
std::vector<int32_t> BpeTokenizer::State::merge(std::string_view piece) const {
  if (ignore_merges) {
    std::string chars;
    for (unsigned char b : piece) chars += byte_char[b];
    if (auto it = vocab.find(chars); it != vocab.end()) return {it->second};
  }
  struct Sym {
    int32_t id, prev, next;
    bool alive;
  };
  std::vector<Sym> sym;
  sym.reserve(piece.size());
  bool prev_unk = false;
  for (unsigned char b : piece) {
    const int32_t id = byte_id[b];
    if (id < 0 && unk_id < 0) continue;  // HF drops characters it cannot map when there is no unk
    if (id < 0 && fuse_unk && prev_unk) continue;
    prev_unk = id < 0;
    const int32_t i = static_cast<int32_t>(sym.size());
    sym.push_back({id < 0 ? unk_id : id, i - 1, i + 1, true});
  }
  if (sym.empty()) return {};
  sym.back().next = -1;

  struct Cand {
    int32_t rank, pos, new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<>> queue;
  auto consider = [&](int32_t left) {
    if (left < 0 || sym[left].next < 0) return;
    auto it = merges.find((uint64_t(uint32_t(sym[left].id)) << 32) | uint32_t(sym[sym[left].next].id));
    if (it != merges.end()) queue.push({it->second.first, left, it->second.second});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(sym.size()); ++i) consider(i);
  while (!queue.empty()) {
    const Cand c = queue.top();
    queue.pop();
    Sym& left = sym[c.pos];
    if (!left.alive || left.next < 0) continue;
    const Sym& right = sym[left.next];
    // Stale entry: one side has merged with something else since it was queued.
    auto it = merges.find((uint64_t(uint32_t(left.id)) << 32) | uint32_t(right.id));
    if (it == merges.end() || it->second.second != c.new_id) continue;
    left.id = c.new_id;
    sym[left.next].alive = false;
    left.next = right.next;
    if (left.next >= 0) sym[left.next].prev = c.pos;
    consider(left.prev);
    consider(c.pos);
  }
  std::vector<int32_t> ids;
  for (const Sym& s : sym)
    if (s.alive) ids.push_back(s.id);
  return ids;
}

void BpeTokenizer::State::bpe(std::string_view piece, std::vector<int32_t>& out) const {
  constexpr size_t kMaxCached = 1 << 18;  // entries; the cache is dropped whole when it fills
  std::string key(piece);
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (auto it = cache.find(key); it != cache.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids = merge(piece);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mutex);
  if (cache.size() >= kMaxCached) cache.clear();
  cache.emplace(std::move(key), std::move(ids));
}

namespace {

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : "";
}

bool flag(const json& j, const char* key, bool fallback) {
  return j.contains(key) && !j[key].is_null() ? j[key].get<bool>() : fallback;
}

void check_normalizer(const json& j) {
  if (j.is_null()) return;
  const std::string type = type_of(j);
  MLAMOE_CHECK(type == "Sequence", "unsupported normalizer type '" << type << "' (supported: null, an empty Sequence)");
  for (const json& n : j.at("normalizers")) check_normalizer(n);
}

void check_decoder(const json& j) {
  const std::string type = type_of(j);
  if (type == "Sequence" && j.at("decoders").size() == 1) return check_decoder(j["decoders"][0]);
  MLAMOE_CHECK(type == "ByteLevel", "unsupported decoder type '" << (j.is_null() ? "null" : type) << "' (supported: ByteLevel)");
}

// ASCII letters and digits stand for themselves; every other code point becomes \x{..}, so a
// Split on a literal String reuses the regex path.
std::string escape_literal(const std::string& s) {
  std::string out;
  char buf[16];
  for (char32_t c : code_points(s).cps) {
    if (c < 128 && std::isalnum(static_cast<int>(c))) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(c));
      out += buf;
    }
  }
  return out;
}

// `field` is where j sits in tokenizer.json (pre_tokenizer.pretokenizers[1]), for messages.
void add_pre_tokenizer(const json& j, const std::string& field, BpeTokenizer::State& st, bool& seen_byte_level) {
  const std::string type = type_of(j);
  MLAMOE_CHECK(!seen_byte_level, "pre_tokenizer: ByteLevel must be the last step, found '" << type << "' after it");
  if (type == "Sequence") {
    const json& steps = j.at("pretokenizers");
    for (size_t i = 0; i < steps.size(); ++i)
      add_pre_tokenizer(steps[i], field + ".pretokenizers[" + std::to_string(i) + "]", st, seen_byte_level);
  } else if (type == "Split") {
    const json& pat = j.at("pattern");
    const std::string behavior = j.at("behavior").get<std::string>();
    MLAMOE_CHECK(behavior == "Isolated", "pre_tokenizer Split: unsupported behavior '" << behavior << "' (supported: Isolated)");
    MLAMOE_CHECK(!flag(j, "invert", false), "pre_tokenizer Split: invert true is not supported");
    const bool is_regex = pat.contains("Regex");
    const std::string where = field + (is_regex ? ".pattern.Regex" : ".pattern.String");
    try {
      st.splits.push_back(
          {where, BpeRegex(is_regex ? pat["Regex"].get<std::string>() : escape_literal(pat.at("String").get<std::string>()))});
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  } else if (type == "ByteLevel") {
    st.add_prefix_space = flag(j, "add_prefix_space", true);
    if (flag(j, "use_regex", true)) st.byte_level_regex.emplace(kGpt2Pattern);
    seen_byte_level = true;
  } else {
    MLAMOE_CHECK(false, "unsupported pre_tokenizer type '" << (j.is_null() ? "null" : type)
                                                           << "' (supported: Sequence, Split, ByteLevel)");
  }
}

// A token id from tokenizer.json: an integer (not 1.5, not "7") in [0, ModelLimits::vocab_size),
// so that the id tables sized from the largest id stay bounded (2e9 would allocate gigabytes).
int32_t token_id(const json& v, const std::string& what) {
  MLAMOE_CHECK(v.is_number_integer(), what << ": id must be an integer, got " << brief(v));
  MLAMOE_CHECK(!v.is_number_unsigned() || v.get<uint64_t>() < uint64_t(ModelLimits::vocab_size),
               what << ": id " << brief(v) << " is out of range [0, " << ModelLimits::vocab_size << ")");
  const int64_t id = v.get<int64_t>();
  MLAMOE_CHECK(id >= 0 && id < ModelLimits::vocab_size,
               what << ": id " << id << " is out of range [0, " << ModelLimits::vocab_size << ")");
  return static_cast<int32_t>(id);
}

void load_model(const json& m, BpeTokenizer::State& st) {
  const std::string type = type_of(m);
  MLAMOE_CHECK(type == "BPE" || (type.empty() && m.contains("merges")),
               "unsupported model type '" << type << "' (supported: BPE)");
  MLAMOE_CHECK(!flag(m, "byte_fallback", false), "model: byte_fallback true is not supported (byte-level BPE needs none)");
  MLAMOE_CHECK(!m.contains("dropout") || m["dropout"].is_null() || m["dropout"].get<double>() == 0.0,
               "model: BPE dropout is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"})
    MLAMOE_CHECK(!m.contains(key) || m[key].is_null() || m[key].get<std::string>().empty(),
                 "model: " << key << " is not supported");
  st.ignore_merges = flag(m, "ignore_merges", false);
  st.fuse_unk = flag(m, "fuse_unk", false);

  MLAMOE_CHECK(m.contains("vocab") && m.at("vocab").is_object(), "model: 'vocab' must be an object of token: id");
  for (const auto& [token, id] : m.at("vocab").items())
    st.vocab[token] = token_id(id, "vocab: token '" + token.substr(0, 60) + "'");
  if (m.contains("unk_token") && !m["unk_token"].is_null()) {
    const std::string unk = m["unk_token"].get<std::string>();
    auto it = st.vocab.find(unk);
    MLAMOE_CHECK(it != st.vocab.end(), "model: unk_token '" << unk << "' is not in the vocab");
    st.unk_id = it->second;
  }

  const json& merges = m.at("merges");
  st.merges.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& e = merges[rank];
    std::string a, b;
    if (e.is_string()) {
      const std::string line = e.get<std::string>();
      const size_t sp = line.find(' ');
      MLAMOE_CHECK(sp != std::string::npos && line.find(' ', sp + 1) == std::string::npos,
                   "merge " << rank << " '" << line << "' is not two tokens separated by one space");
      a = line.substr(0, sp), b = line.substr(sp + 1);
    } else {
      MLAMOE_CHECK(e.is_array() && e.size() == 2, "merge " << rank << " is neither \"a b\" nor [a, b]");
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    }
    auto ia = st.vocab.find(a), ib = st.vocab.find(b), iab = st.vocab.find(a + b);
    MLAMOE_CHECK(ia != st.vocab.end(), "merge " << rank << " '" << a << " " << b << "' names unknown token '" << a << "'");
    MLAMOE_CHECK(ib != st.vocab.end(), "merge " << rank << " '" << a << " " << b << "' names unknown token '" << b << "'");
    MLAMOE_CHECK(iab != st.vocab.end(),
                 "merge " << rank << " '" << a << " " << b << "': merged token '" << a + b << "' is not in the vocab");
    // A repeated pair keeps its last rank, as HF's map construction does.
    st.merges[(uint64_t(uint32_t(ia->second)) << 32) | uint32_t(ib->second)] = {static_cast<int32_t>(rank), iab->second};
  }
}

}  // namespace

BpeTokenizer BpeTokenizer::load(const std::string& path) {
  BpeTokenizer tok;
  tok.state_ = std::make_shared<State>();
  State& st = *tok.state_;
  st.path = path;
  const std::string where = "bpe tokenizer '" + path + "': ";
  try {
    std::error_code ec;
    MLAMOE_CHECK(!std::filesystem::is_directory(path, ec), "is a directory, expected a tokenizer.json file");
    std::ifstream f(path, std::ios::binary);
    MLAMOE_CHECK(f.good(), "cannot open file");
    std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    json j = parse_json(text, "JSON");  // depth-limited; "bpe tokenizer 'PATH': JSON: ..." once prefixed
    MLAMOE_CHECK(j.is_object(), "invalid JSON: the top level is not an object");
    load_model(j.at("model"), st);
    check_normalizer(j.value("normalizer", json()));
    bool seen_byte_level = false;
    add_pre_tokenizer(j.value("pre_tokenizer", json()), "pre_tokenizer", st, seen_byte_level);
    MLAMOE_CHECK(seen_byte_level, "pre_tokenizer must end with ByteLevel (only byte-level BPE is supported)");
    check_decoder(j.value("decoder", json()));

    for (const json& a : j.value("added_tokens", json::array())) {
      MLAMOE_CHECK(a.is_object() && a.contains("id") && a.contains("content") && a.at("content").is_string(),
                   "added_tokens: each entry needs an integer 'id' and a string 'content'");
      AddedToken t{token_id(a.at("id"), "added token '" + a.at("content").get<std::string>().substr(0, 60) + "'"),
                   a.at("content").get<std::string>(),
                   flag(a, "single_word", false),
                   flag(a, "lstrip", false),
                   flag(a, "rstrip", false),
                   flag(a, "normalized", true),
                   flag(a, "special", false)};
      MLAMOE_CHECK(t.id >= 0 && !t.content.empty(), "added token '" << t.content << "' has id " << t.id);
      const auto index = static_cast<int32_t>(st.added.size());
      st.added_by_content[t.content] = t.id;
      Trie& trie = t.normalized ? st.normalized_trie : st.raw_trie;
      trie.insert(t.content, index);
      trie.needs_text = trie.needs_text || t.single_word || t.lstrip || t.rstrip;
      if (!st.bos && t.content.find("begin▁of▁sentence") != std::string::npos) st.bos = t.id;
      if (!st.eos && t.content.find("end▁of▁sentence") != std::string::npos) st.eos = t.id;
      st.added.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    throw Error(where + one_line(e.what()));
  } catch (const Error& e) {
    throw Error(where + one_line(e.what()));
  }

  int32_t max_id = -1;
  for (const auto& [t, id] : st.vocab) max_id = std::max(max_id, id);
  for (const AddedToken& a : st.added) max_id = std::max(max_id, a.id);
  st.id_to_token.assign(max_id + 1, "");
  st.id_known.assign(max_id + 1, 0);
  // One string per id: a second string for an id would make decoding pick one of them and
  // encode(decode(ids)) differ from ids. An added token may repeat its vocab entry (same text).
  for (const auto& [t, id] : st.vocab) {
    MLAMOE_CHECK(!st.id_known[id], where << "model.vocab gives id " << id << " to two tokens, '"
                                         << st.id_to_token[id].substr(0, 60) << "' and '" << t.substr(0, 60) << "'");
    st.id_to_token[id] = t, st.id_known[id] = 1;
  }
  for (const AddedToken& a : st.added) {
    MLAMOE_CHECK(!st.id_known[a.id] || st.id_to_token[a.id] == a.content, where << "added token '" << a.content.substr(0, 60)
                                                                                << "' has id " << a.id << ", which is already '"
                                                                                << st.id_to_token[a.id].substr(0, 60) << "'");
    st.id_to_token[a.id] = a.content, st.id_known[a.id] = 1;
  }

  // ByteLevel decoding, per token as HF's decoder does it: a token whose characters are all in the
  // byte alphabet becomes those bytes; any other (special tokens) is emitted as its own text.
  const auto alphabet = byte_alphabet();
  std::unordered_map<char32_t, unsigned char> inverse;
  for (int b = 0; b < 256; ++b) {
    inverse[alphabet[b]] = static_cast<unsigned char>(b);
    append_utf8(st.byte_char[b], alphabet[b]);
    auto it = st.vocab.find(st.byte_char[b]);
    st.byte_id[b] = it == st.vocab.end() ? -1 : it->second;
  }
  st.id_to_bytes.assign(max_id + 1, "");
  for (int32_t id = 0; id <= max_id; ++id) {
    const std::string& token = st.id_to_token[id];
    std::string bytes;
    bool all_bytes = true;
    for (char32_t c : code_points(token).cps) {
      auto it = inverse.find(c);
      if (it == inverse.end()) {
        all_bytes = false;
        break;
      }
      bytes += static_cast<char>(it->second);
    }
    st.id_to_bytes[id] = all_bytes ? bytes : token;
  }
  return tok;
}

std::vector<std::string> BpeTokenizer::pre_tokenize(const std::string& text) const {
  const State& st = *state_;
  std::vector<Segment> segs{{0, text.size(), -1}};
  st.split_added(text, st.raw_trie, segs);
  st.split_added(text, st.normalized_trie, segs);
  std::vector<std::string> out;
  Subject t;
  std::vector<Span> pieces;
  for (const Segment& s : segs) {
    if (s.token >= 0) {
      out.push_back(text.substr(s.begin, s.end - s.begin));
      continue;
    }
    st.pre_tokenize_segment(std::string_view(text).substr(s.begin, s.end - s.begin), t, pieces);
    for (const Span& p : pieces) out.emplace_back(t.raw_piece(p));
  }
  return out;
}

std::vector<int32_t> BpeTokenizer::encode(const std::string& text) const {
  const State& st = *state_;
  std::vector<Segment> segs{{0, text.size(), -1}};
  st.split_added(text, st.raw_trie, segs);
  st.split_added(text, st.normalized_trie, segs);
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3);
  Subject t;
  std::vector<Span> pieces;
  for (const Segment& s : segs) {
    if (s.token >= 0) {
      ids.push_back(st.added[s.token].id);
      continue;
    }
    st.pre_tokenize_segment(std::string_view(text).substr(s.begin, s.end - s.begin), t, pieces);
    for (const Span& p : pieces) st.bpe(t.raw_piece(p), ids);
  }
  return ids;
}

std::string BpeTokenizer::decode(const std::vector<int32_t>& ids) const {
  const State& st = *state_;
  std::string out;
  for (int32_t id : ids) {
    MLAMOE_CHECK(id >= 0 && id < static_cast<int64_t>(st.id_known.size()) && st.id_known[id],
                 "bpe tokenizer '" << st.path << "': decode: id " << id << " is not in the vocabulary");
    out += st.id_to_bytes[id];
  }
  return out;
}

int64_t BpeTokenizer::vocab_size() const { return static_cast<int64_t>(state_->id_to_token.size()); }

std::optional<int32_t> BpeTokenizer::token_to_id(const std::string& token) const {
  if (auto it = state_->added_by_content.find(token); it != state_->added_by_content.end()) return it->second;
  if (auto it = state_->vocab.find(token); it != state_->vocab.end()) return it->second;
  return std::nullopt;
}

const std::string& BpeTokenizer::id_to_token(int32_t id) const {
  static const std::string empty;
  return id >= 0 && id < vocab_size() ? state_->id_to_token[id] : empty;
}

std::optional<int32_t> BpeTokenizer::bos_id() const { return state_->bos; }
std::optional<int32_t> BpeTokenizer::eos_id() const { return state_->eos; }

}  // namespace mlamoe
