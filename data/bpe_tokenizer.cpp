// Byte-level BPE as HF `tokenizers` runs it: added-token extraction, Split pre-tokenizers through
// the regex matcher below, the GPT-2 byte alphabet, rank-ordered merges. Three parts, top to
// bottom: Unicode text (UTF-8 decoding, category bits), the regex (parser, compiler, backtracking
// VM with Oniguruma's leftmost-first semantics), the tokenizer (loading, encode, decode).
#include "data/bpe_tokenizer.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <queue>
#include <string_view>
#include <unordered_map>

#include "data/unicode_tables.h"
#include "model/tensor/error.h"

namespace mlamoe {
namespace {

using json = nlohmann::json;
namespace uc = unicode;

// ---------------------------------------------------------------------------------------------
// Unicode text

// An invalid UTF-8 byte b decodes to kRawByteBase + b: outside Unicode, so no \p class holds it,
// and encoding keeps the byte itself (see the header).
constexpr char32_t kRawByteBase = 0x110000;
// Property bits of a code point: bit c for general category c, plus White_Space. Raw bytes get 0.
constexpr uint32_t kWhiteSpaceBit = 1u << 30;

uint32_t category_bit_slow(char32_t cp) {
  const uint32_t key = (static_cast<uint32_t>(cp) << 5) | 31u;
  const uint32_t* end = uc::kCategoryRuns + std::size(uc::kCategoryRuns);
  const uint32_t* it = std::upper_bound(uc::kCategoryRuns, end, key);
  return 1u << (it[-1] & 31u);
}

uint32_t props_slow(char32_t cp) {
  if (cp >= kRawByteBase) return 0;
  uint32_t p = category_bit_slow(cp);
  for (const auto& r : uc::kWhiteSpace)
    if (cp >= r[0] && cp <= r[1]) p |= kWhiteSpaceBit;
  return p;
}

// Text is mostly BMP; a direct table keeps the binary search off the hot path.
uint32_t props_of(char32_t cp) {
  static const std::vector<uint32_t> bmp = [] {
    std::vector<uint32_t> t(0x10000);
    for (char32_t c = 0; c < 0x10000; ++c) t[c] = props_slow(c);
    return t;
  }();
  return cp < 0x10000 ? bmp[cp] : props_slow(cp);
}

// UTF-8 text as code points, their property bits and byte offsets (offs has one extra entry: the
// end), so regex spans over code points map back to bytes.
struct Text {
  std::string bytes;
  std::vector<char32_t> cps;
  std::vector<uint32_t> props;
  std::vector<uint32_t> offs;

  void clear() {
    bytes.clear();
    cps.clear();
    props.clear();
    offs.clear();
  }
  void push(char32_t cp, std::string_view raw) {
    offs.push_back(static_cast<uint32_t>(bytes.size()));
    bytes.append(raw);
    cps.push_back(cp);
    props.push_back(props_of(cp));
  }
  void finish() { offs.push_back(static_cast<uint32_t>(bytes.size())); }
  size_t size() const { return cps.size(); }
};

// Strict decoding (no overlongs, surrogates or values past U+10FFFF, as Rust's from_utf8); each
// byte of an invalid sequence becomes one raw-byte code point.
void decode_utf8(std::string_view s, Text& t) {
  t.clear();
  t.cps.reserve(s.size());
  t.props.reserve(s.size());
  t.offs.reserve(s.size() + 1);
  t.bytes.reserve(s.size());
  auto cont = [&](size_t i, unsigned lo, unsigned hi) {
    if (i >= s.size()) return false;
    unsigned b = static_cast<unsigned char>(s[i]);
    return b >= lo && b <= hi;
  };
  size_t i = 0;
  while (i < s.size()) {
    const unsigned b0 = static_cast<unsigned char>(s[i]);
    size_t len = 0;
    char32_t cp = 0;
    if (b0 < 0x80) {
      len = 1, cp = b0;
    } else if (b0 >= 0xC2 && b0 <= 0xDF && cont(i + 1, 0x80, 0xBF)) {
      len = 2, cp = b0 & 0x1F;
    } else if (b0 >= 0xE0 && b0 <= 0xEF && cont(i + 1, b0 == 0xE0 ? 0xA0 : 0x80, b0 == 0xED ? 0x9F : 0xBF) &&
               cont(i + 2, 0x80, 0xBF)) {
      len = 3, cp = b0 & 0x0F;
    } else if (b0 >= 0xF0 && b0 <= 0xF4 && cont(i + 1, b0 == 0xF0 ? 0x90 : 0x80, b0 == 0xF4 ? 0x8F : 0xBF) &&
               cont(i + 2, 0x80, 0xBF) && cont(i + 3, 0x80, 0xBF)) {
      len = 4, cp = b0 & 0x07;
    }
    if (len == 0) {
      t.push(kRawByteBase + b0, s.substr(i, 1));
      ++i;
      continue;
    }
    for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    t.push(cp, s.substr(i, len));
    i += len;
  }
  t.finish();
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

// ---------------------------------------------------------------------------------------------
// Regex: pattern -> AST -> instructions for a backtracking VM.

// A character class. Property masks make \p{L} one AND; ASCII, the bulk of most text, is a bitmap.
struct CharClass {
  bool negated = false;
  uint32_t props = 0;               // matches when the code point's property bits meet this mask
  std::vector<uint32_t> not_props;  // \P{X}, \S inside [..]: matches when the bits miss the mask
  std::vector<std::pair<char32_t, char32_t>> ranges;
  std::array<uint64_t, 2> ascii{};

  bool slow_match(char32_t cp, uint32_t p) const {
    bool in = (p & props) != 0;
    for (uint32_t m : not_props) in = in || (p & m) == 0;
    for (const auto& r : ranges) in = in || (cp >= r.first && cp <= r.second);
    return in != negated;
  }
  void finish() {
    for (char32_t c = 0; c < 128; ++c)
      if (slow_match(c, props_of(c))) ascii[c >> 6] |= uint64_t{1} << (c & 63);
  }
  bool match(char32_t cp, uint32_t p) const { return cp < 128 ? (ascii[cp >> 6] >> (cp & 63)) & 1 : slow_match(cp, p); }
};

enum class Op : uint8_t {
  kClass,    // x: class index; consumes one code point
  kSplit,    // try x, on failure y
  kJmp,      // x
  kMatch,    //
  kLook,     // x: program index; zero-width, atomic as in Oniguruma
  kNegLook,  // x: program index
  kBol,      // ^ (Ruby syntax: start of the subject or after \n)
  kEol,      // $ (end of the subject or before \n)
  kBos,      // \A
  kEos,      // \z
  kEosOrNl,  // \Z (end, or before a final \n)
};

struct Inst {
  Op op;
  int32_t x = 0, y = 0;
};

struct Node {
  enum Kind { kAtom, kConcat, kAlt, kRepeat, kLook, kAssert } kind = kConcat;
  int32_t cls = -1;  // kAtom: class index
  Op assert_op = Op::kBol;
  std::vector<Node> kids;
  int min = 0, max = -1;  // kRepeat; max -1 is unbounded
  bool greedy = true;
  bool negative = false;  // kLook
};

}  // namespace

struct BpeRegex::Program {
  std::vector<CharClass> classes;
  std::vector<std::vector<Inst>> code;  // [0] the pattern, then one per lookahead
};

namespace {

constexpr int kMaxRepeat = 1000;  // bounds the copies that {m,n} expands to

struct PropertyName {
  const char* code;
  const char* name;  // long name, lower case, no separators
  uint32_t mask;
};

uint32_t cat_mask(std::initializer_list<uc::Category> cats) {
  uint32_t m = 0;
  for (auto c : cats) m |= 1u << c;
  return m;
}

const std::vector<PropertyName>& property_names() {
  using namespace uc;
  static const std::vector<PropertyName> names = {
      {"l", "letter", cat_mask({kLu, kLl, kLt, kLm, kLo})},
      {"m", "mark", cat_mask({kMn, kMc, kMe})},
      {"n", "number", cat_mask({kNd, kNl, kNo})},
      {"p", "punctuation", cat_mask({kPc, kPd, kPs, kPe, kPi, kPf, kPo})},
      {"s", "symbol", cat_mask({kSm, kSc, kSk, kSo})},
      {"z", "separator", cat_mask({kZs, kZl, kZp})},
      {"c", "other", cat_mask({kCc, kCf, kCs, kCo, kCn})},
      {"lu", "uppercaseletter", 1u << kLu},
      {"ll", "lowercaseletter", 1u << kLl},
      {"lt", "titlecaseletter", 1u << kLt},
      {"lm", "modifierletter", 1u << kLm},
      {"lo", "otherletter", 1u << kLo},
      {"mn", "nonspacingmark", 1u << kMn},
      {"mc", "spacingmark", 1u << kMc},
      {"me", "enclosingmark", 1u << kMe},
      {"nd", "decimalnumber", 1u << kNd},
      {"nl", "letternumber", 1u << kNl},
      {"no", "othernumber", 1u << kNo},
      {"pc", "connectorpunctuation", 1u << kPc},
      {"pd", "dashpunctuation", 1u << kPd},
      {"ps", "openpunctuation", 1u << kPs},
      {"pe", "closepunctuation", 1u << kPe},
      {"pi", "initialpunctuation", 1u << kPi},
      {"pf", "finalpunctuation", 1u << kPf},
      {"po", "otherpunctuation", 1u << kPo},
      {"sm", "mathsymbol", 1u << kSm},
      {"sc", "currencysymbol", 1u << kSc},
      {"sk", "modifiersymbol", 1u << kSk},
      {"so", "othersymbol", 1u << kSo},
      {"zs", "spaceseparator", 1u << kZs},
      {"zl", "lineseparator", 1u << kZl},
      {"zp", "paragraphseparator", 1u << kZp},
      {"cc", "control", 1u << kCc},
      {"cf", "format", 1u << kCf},
      {"cs", "surrogate", 1u << kCs},
      {"co", "privateuse", 1u << kCo},
      {"cn", "unassigned", 1u << kCn},
  };
  return names;
}

class Parser {
 public:
  Parser(const std::string& pattern, BpeRegex::Program& prog) : src_(pattern), prog_(prog) {
    Text t;
    decode_utf8(pattern, t);
    for (char32_t c : t.cps)
      if (c >= kRawByteBase) fail("pattern is not valid UTF-8");
    p_ = t.cps;
  }

  Node parse() {
    Node n = alternation();
    if (i_ < p_.size()) fail("unbalanced ')'");
    return n;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error("regex '" + src_ + "': " + what + " (at code point " + std::to_string(i_) + ")");
  }
  bool at_end() const { return i_ >= p_.size(); }
  char32_t peek(size_t k = 0) const { return i_ + k < p_.size() ? p_[i_ + k] : 0; }
  char32_t next() {
    if (at_end()) fail("unexpected end of pattern");
    return p_[i_++];
  }

  int32_t add_class(CharClass c) {
    c.finish();
    prog_.classes.push_back(std::move(c));
    return static_cast<int32_t>(prog_.classes.size() - 1);
  }
  Node atom_of(CharClass c) {
    Node n;
    n.kind = Node::kAtom;
    n.cls = add_class(std::move(c));
    return n;
  }
  static CharClass single(char32_t c) {
    CharClass k;
    k.ranges.push_back({c, c});
    return k;
  }

  Node alternation() {
    Node alt;
    alt.kind = Node::kAlt;
    alt.kids.push_back(sequence());
    while (!at_end() && peek() == '|') {
      ++i_;
      alt.kids.push_back(sequence());
    }
    return alt.kids.size() == 1 ? std::move(alt.kids[0]) : alt;
  }

  Node sequence() {
    Node seq;
    seq.kind = Node::kConcat;
    while (!at_end() && peek() != '|' && peek() != ')') seq.kids.push_back(quantified(atom()));
    return seq;
  }

  // Parses {m}, {m,}, {m,n}, {,n} at i_; false (i_ unchanged) when it is not one, and then
  // Oniguruma reads the '{' as a literal.
  bool interval(int& lo, int& hi) {
    size_t j = i_ + 1;
    auto number = [&](int& v) {
      size_t start = j;
      long long acc = 0;
      while (j < p_.size() && p_[j] >= '0' && p_[j] <= '9') acc = std::min<long long>(acc * 10 + (p_[j++] - '0'), 1 << 30);
      v = static_cast<int>(acc);
      return j > start;
    };
    int a = 0, b = -1;
    bool has_a = number(a);
    if (j < p_.size() && p_[j] == ',') {
      ++j;
      if (!number(b)) b = -1;
      if (!has_a && b < 0) return false;
    } else {
      if (!has_a) return false;
      b = a;
    }
    if (j >= p_.size() || p_[j] != '}') return false;
    i_ = j + 1;
    lo = a, hi = b;
    return true;
  }

  Node quantified(Node atom) {
    for (;;) {
      if (at_end()) return atom;
      int lo = 0, hi = -1;
      char32_t c = peek();
      if (c == '?') {
        lo = 0, hi = 1, ++i_;
      } else if (c == '*') {
        lo = 0, hi = -1, ++i_;
      } else if (c == '+') {
        lo = 1, hi = -1, ++i_;
      } else if (c == '{' && interval(lo, hi)) {
        if (hi >= 0 && hi < lo) fail("interval {m,n} with n < m");
        if (lo > kMaxRepeat || hi > kMaxRepeat) fail("repetition count above " + std::to_string(kMaxRepeat));
      } else {
        return atom;
      }
      if (atom.kind == Node::kAssert || atom.kind == Node::kLook) fail("quantifier after an assertion");
      Node rep;
      rep.kind = Node::kRepeat;
      rep.min = lo, rep.max = hi;
      if (!at_end() && peek() == '?') {
        rep.greedy = false, ++i_;
      } else if (!at_end() && peek() == '+' && c != '{') {
        fail("possessive quantifiers are not supported");
      }
      rep.kids.push_back(std::move(atom));
      atom = std::move(rep);
    }
  }

  Node assertion(Op op) {
    Node n;
    n.kind = Node::kAssert;
    n.assert_op = op;
    return n;
  }

  Node atom() {
    const char32_t c = next();
    switch (c) {
      case '(':
        return group();
      case '[':
        return atom_of(bracket());
      case '.': {
        CharClass k = single('\n');
        k.negated = true;
        return atom_of(std::move(k));
      }
      case '^':
        return assertion(Op::kBol);
      case '$':
        return assertion(Op::kEol);
      case '\\':
        return escape_atom();
      case '*':
      case '+':
      case '?':
        fail("quantifier with nothing to repeat");
      default:
        return atom_of(single(c));
    }
  }

  Node group() {
    Node look;
    bool is_look = false;
    if (peek() == '?') {
      const char32_t k = peek(1);
      if (k == ':') {
        i_ += 2;
      } else if (k == '=' || k == '!') {
        i_ += 2;
        is_look = true;
        look.kind = Node::kLook;
        look.negative = k == '!';
      } else if (k == '<' && (peek(2) == '=' || peek(2) == '!')) {
        fail("lookbehind is not supported");
      } else if (k == '<' || k == '\'') {  // named group: only the grouping matters here
        const char32_t close = k == '<' ? '>' : '\'';
        i_ += 2;
        while (!at_end() && peek() != close) ++i_;
        next();
      } else {
        fail("group option (?" + std::string(1, static_cast<char>(k < 128 ? k : '?')) + " is not supported");
      }
    }
    Node inner = alternation();
    if (at_end() || next() != ')') fail("missing ')'");
    if (!is_look) return inner;
    look.kids.push_back(std::move(inner));
    return look;
  }

  // The code point of a hex escape body (after \x or \u).
  char32_t hex(size_t min_digits, size_t max_digits, bool braced) {
    char32_t v = 0;
    size_t n = 0;
    while (n < max_digits && !at_end() && std::isxdigit(static_cast<int>(peek() < 128 ? peek() : 0))) {
      const char32_t d = next();
      v = v * 16 + (d <= '9' ? d - '0' : (d | 0x20) - 'a' + 10);
      ++n;
    }
    if (n < min_digits) fail("bad hex escape");
    if (braced && next() != '}') fail("missing '}' in \\x{..}");
    if (v > 0x10FFFF) fail("code point above U+10FFFF");
    return v;
  }

  // \p{..} / \P{..}: the property mask and whether it is negated.
  std::pair<uint32_t, bool> property(bool upper) {
    if (next() != '{') fail("\\p must be followed by {name}");
    bool neg = upper;
    if (peek() == '^') neg = !neg, ++i_;
    std::string name;
    while (!at_end() && peek() != '}') {
      const char32_t ch = next();
      if (ch == ' ' || ch == '_' || ch == '-') continue;
      name += static_cast<char>(ch < 128 ? std::tolower(static_cast<int>(ch)) : '?');
    }
    next();
    for (const auto& pn : property_names())
      if (name == pn.code || name == pn.name) return {pn.mask, neg};
    fail("unsupported property \\p{" + name + "} (general categories only)");
  }

  // An escape that stands for a set of code points, or a single one. Returns false for a single
  // code point (in `cp`), true for a set (in `set`).
  bool escape_item(char32_t& cp, CharClass& set) {
    static constexpr std::pair<char32_t, char32_t> kControls[] = {{'n', '\n'}, {'r', '\r'}, {'t', '\t'}, {'f', '\f'},
                                                                  {'v', '\v'}, {'a', 0x07}, {'e', 0x1B}};
    const char32_t c = next();
    for (const auto& [name, value] : kControls) {
      if (c == name) {
        cp = value;
        return false;
      }
    }
    switch (c) {
      case 'p':
      case 'P': {
        auto [mask, neg] = property(c == 'P');
        if (neg) {
          set.not_props.push_back(mask);
        } else {
          set.props |= mask;
        }
        return true;
      }
      case 's':
      case 'S':
      case 'd':
      case 'D': {
        const uint32_t mask = (c | 0x20) == 's' ? kWhiteSpaceBit : 1u << uc::kNd;  // Oniguruma's \d is Nd
        if (c == 's' || c == 'd') {
          set.props |= mask;
        } else {
          set.not_props.push_back(mask);
        }
        return true;
      }
      case 'w':
      case 'W':
      case 'b':
      case 'B':
        fail("\\w and \\b are not supported (they need the Alphabetic property)");
      case 'h':
      case 'H':
        fail("\\h is not supported");
      case 'x':
        if (peek() == '{') {
          ++i_;
          cp = hex(1, 8, true);
        } else {
          cp = hex(1, 2, false);
        }
        return false;
      case 'u':
        cp = hex(4, 4, false);
        return false;
      default:
        if (c < 128 && std::isalnum(static_cast<int>(c))) fail(std::string("unsupported escape \\") + static_cast<char>(c));
        cp = c;  // escaped punctuation or any non-ASCII code point is itself
        return false;
    }
  }

  Node escape_atom() {
    switch (peek()) {
      case 'A':
        ++i_;
        return assertion(Op::kBos);
      case 'z':
        ++i_;
        return assertion(Op::kEos);
      case 'Z':
        ++i_;
        return assertion(Op::kEosOrNl);
      default:
        break;
    }
    char32_t cp = 0;
    CharClass set;
    if (escape_item(cp, set)) return atom_of(std::move(set));
    return atom_of(single(cp));
  }

  // [..] after the '['.
  CharClass bracket() {
    CharClass k;
    if (peek() == '^') k.negated = true, ++i_;
    bool first = true;
    for (;;) {
      if (at_end()) fail("missing ']'");
      char32_t c = peek();
      if (c == ']' && !first) {
        ++i_;
        break;
      }
      first = false;
      if (c == '[') fail("nested classes and [:posix:] brackets are not supported");
      if (c == '&' && peek(1) == '&') fail("class intersection && is not supported");
      char32_t lo = 0;
      ++i_;
      if (c == '\\') {
        if (escape_item(lo, k)) continue;
      } else {
        lo = c;
      }
      // A range lo-hi, unless the '-' is the last thing in the class.
      if (peek() == '-' && peek(1) != ']' && i_ + 1 < p_.size()) {
        ++i_;
        char32_t hi = next();
        if (hi == '\\') {
          CharClass dummy;
          if (escape_item(hi, dummy)) fail("a class escape cannot end a range");
        } else if (hi == '[') {
          fail("nested classes are not supported");
        }
        if (hi < lo) fail("range out of order in class");
        k.ranges.push_back({lo, hi});
      } else {
        k.ranges.push_back({lo, lo});
      }
    }
    return k;
  }

  const std::string& src_;
  BpeRegex::Program& prog_;
  std::vector<char32_t> p_;
  size_t i_ = 0;
};

bool nullable(const Node& n) {
  switch (n.kind) {
    case Node::kAtom:
      return false;
    case Node::kConcat:
      return std::all_of(n.kids.begin(), n.kids.end(), nullable);
    case Node::kAlt:
      return std::any_of(n.kids.begin(), n.kids.end(), nullable);
    case Node::kRepeat:
      return n.min == 0 || nullable(n.kids[0]);
    default:
      return true;
  }
}

void emit(const Node& n, std::vector<Inst>& out, BpeRegex::Program& prog, const std::string& src) {
  auto at = [&] { return static_cast<int32_t>(out.size()); };
  switch (n.kind) {
    case Node::kAtom:
      out.push_back({Op::kClass, n.cls});
      return;
    case Node::kAssert:
      out.push_back({n.assert_op});
      return;
    case Node::kConcat:
      for (const Node& k : n.kids) emit(k, out, prog, src);
      return;
    case Node::kAlt: {
      std::vector<int32_t> jumps;
      for (size_t k = 0; k < n.kids.size(); ++k) {
        const bool last = k + 1 == n.kids.size();
        const int32_t split = at();
        if (!last) out.push_back({Op::kSplit, split + 1, 0});
        emit(n.kids[k], out, prog, src);
        if (!last) {
          jumps.push_back(at());
          out.push_back({Op::kJmp});
          out[split].y = at();
        }
      }
      for (int32_t j : jumps) out[j].x = at();
      return;
    }
    case Node::kLook: {
      std::vector<Inst> sub;
      emit(n.kids[0], sub, prog, src);
      sub.push_back({Op::kMatch});
      prog.code.push_back(std::move(sub));
      out.push_back({n.negative ? Op::kNegLook : Op::kLook, static_cast<int32_t>(prog.code.size() - 1)});
      return;
    }
    case Node::kRepeat: {
      const Node& body = n.kids[0];
      for (int r = 0; r < n.min; ++r) emit(body, out, prog, src);
      auto split_to = [&](int32_t split, int32_t body_pc, int32_t exit_pc) {
        out[split].x = n.greedy ? body_pc : exit_pc;
        out[split].y = n.greedy ? exit_pc : body_pc;
      };
      if (n.max < 0) {
        // An unbounded loop over something that can match empty would spin; Oniguruma stops such
        // loops, but no tokenizer pattern needs that, so it is refused.
        if (nullable(body)) throw Error("regex '" + src + "': unbounded repetition of an expression that can match empty");
        const int32_t split = at();
        out.push_back({Op::kSplit});
        emit(body, out, prog, src);
        out.push_back({Op::kJmp, split});
        split_to(split, split + 1, at());
      } else {
        std::vector<int32_t> splits;
        for (int r = n.min; r < n.max; ++r) {
          splits.push_back(at());
          out.push_back({Op::kSplit});
          emit(body, out, prog, src);
        }
        for (int32_t s : splits) split_to(s, s + 1, at());
      }
      return;
    }
  }
}

// Runs a program on code points [begin, end) of one subject: Oniguruma sees each pre-tokenizer
// piece as its own string, so anchors and lookahead stop at the piece's ends.
class Vm {
 public:
  Vm(const BpeRegex::Program& p, const Text& t, size_t begin, size_t end, std::vector<std::pair<int32_t, size_t>>& stack)
      : p_(p), cps_(t.cps.data()), props_(t.props.data()), begin_(begin), end_(end), stack_(stack) {}

  // End of the first match at `start` in priority order (leftmost-first alternation, greedy or lazy
  // repetition), or -1.
  int64_t run(size_t prog, size_t start) {
    const Inst* code = p_.code[prog].data();
    const size_t base = stack_.size();
    stack_.push_back({0, start});
    while (stack_.size() > base) {
      auto [pc, pos] = stack_.back();
      stack_.pop_back();
      for (bool alive = true; alive;) {
        const Inst& in = code[pc];
        switch (in.op) {
          case Op::kClass:
            alive = pos < end_ && p_.classes[in.x].match(cps_[pos], props_[pos]);
            ++pos, ++pc;
            break;
          case Op::kSplit:
            stack_.push_back({in.y, pos});
            pc = in.x;
            break;
          case Op::kJmp:
            pc = in.x;
            break;
          case Op::kMatch:
            stack_.resize(base);
            return static_cast<int64_t>(pos);
          case Op::kLook:
          case Op::kNegLook:
            alive = (run(in.x, pos) >= 0) == (in.op == Op::kLook);
            ++pc;
            break;
          case Op::kBol:
            alive = pos == begin_ || cps_[pos - 1] == '\n';
            ++pc;
            break;
          case Op::kEol:
            alive = pos == end_ || cps_[pos] == '\n';
            ++pc;
            break;
          case Op::kBos:
            alive = pos == begin_;
            ++pc;
            break;
          case Op::kEos:
            alive = pos == end_;
            ++pc;
            break;
          case Op::kEosOrNl:
            alive = pos == end_ || (pos + 1 == end_ && cps_[pos] == '\n');
            ++pc;
            break;
        }
      }
    }
    return -1;
  }

 private:
  const BpeRegex::Program& p_;
  const char32_t* cps_;
  const uint32_t* props_;
  size_t begin_, end_;
  std::vector<std::pair<int32_t, size_t>>& stack_;
};

using Span = std::pair<size_t, size_t>;  // code point indices [first, second)

// The onig crate's find_iter over one subject (what HF's Split runs): the leftmost match from the
// search position, then search on from its end. An empty match is kept (it still splits the
// text) unless it sits right where the previous match ended; then the search moves one code point.
void find_matches(const BpeRegex::Program& p, const Text& t, Span subject, std::vector<Span>& out,
                  std::vector<std::pair<int32_t, size_t>>& stack) {
  Vm vm(p, t, subject.first, subject.second, stack);
  size_t from = subject.first;
  int64_t last_end = -1;
  while (from <= subject.second) {
    size_t s = from;
    int64_t e = -1;
    for (; s <= subject.second && (e = vm.run(0, s)) < 0; ++s) {
    }
    if (e < 0) return;
    if (static_cast<size_t>(e) == s && e == last_end) {
      ++from;
      continue;
    }
    out.push_back({s, static_cast<size_t>(e)});
    from = static_cast<size_t>(e);
    last_end = e;
  }
}

// "Isolated": matches and the gaps between them each become a piece; empty ones are dropped.
void split_isolated(const BpeRegex::Program& p, const Text& t, const std::vector<Span>& in, std::vector<Span>& out,
                    std::vector<std::pair<int32_t, size_t>>& stack, std::vector<Span>& scratch) {
  out.clear();
  for (const Span& piece : in) {
    scratch.clear();
    find_matches(p, t, piece, scratch, stack);
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
  auto prog = std::make_shared<Program>();
  Node root = Parser(pattern, *prog).parse();
  prog->code.emplace_back();  // [0] is the pattern; lookaheads append after it
  std::vector<Inst> main;
  emit(root, main, *prog, pattern);
  main.push_back({Op::kMatch});
  prog->code[0] = std::move(main);
  program_ = std::move(prog);
}

std::vector<std::pair<size_t, size_t>> BpeRegex::find_all(const std::string& text) const {
  Text t;
  decode_utf8(text, t);
  std::vector<Span> spans;
  std::vector<std::pair<int32_t, size_t>> stack;
  find_matches(*program_, t, {0, t.size()}, spans, stack);
  for (Span& s : spans) s = {t.offs[s.first], t.offs[s.second]};
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

// Rust's char::is_whitespace and regex \w (approximated by categories: Alphabetic is not one).
bool is_space_cp(char32_t c) { return (props_of(c) & kWhiteSpaceBit) != 0; }
bool is_word_cp(char32_t c) {
  using namespace uc;
  return (props_of(c) & cat_mask({kLu, kLl, kLt, kLm, kLo, kNl, kMn, kMc, kMe, kNd, kPc})) != 0;
}

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

  std::vector<BpeRegex> splits;   // the Split steps, in order
  bool add_prefix_space = false;  // ByteLevel's options
  std::optional<BpeRegex> byte_level_regex;
  std::optional<int32_t> bos, eos;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // piece bytes -> ids

  void split_added(std::string_view s, const Trie& trie, std::vector<Segment>& segs) const;
  void pre_tokenize_segment(std::string_view s, Text& text, std::vector<Span>& pieces) const;
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
    Text t;
    if (trie.needs_text) decode_utf8(sentence, t);
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
void BpeTokenizer::State::pre_tokenize_segment(std::string_view s, Text& text, std::vector<Span>& pieces) const {
  decode_utf8(s, text);
  pieces.assign(1, {0, text.size()});
  if (text.size() == 0) pieces.clear();
  std::vector<Span> next, scratch;
  std::vector<std::pair<int32_t, size_t>> stack;
  for (const BpeRegex& r : splits) {
    split_isolated(r.program(), text, pieces, next, stack, scratch);
    pieces.swap(next);
  }
  if (add_prefix_space) {
    // HF prepends a space to every piece that does not start with one; rebuild the text so each
    // piece is contiguous with its space.
    Text spaced;
    std::vector<Span> moved;
    for (const Span& p : pieces) {
      const size_t first = spaced.size();
      if (text.cps[p.first] != ' ') spaced.push(' ', " ");
      for (size_t i = p.first; i < p.second; ++i)
        spaced.push(text.cps[i], std::string_view(text.bytes).substr(text.offs[i], text.offs[i + 1] - text.offs[i]));
      moved.push_back({first, spaced.size()});
    }
    spaced.finish();
    text = std::move(spaced);
    pieces = std::move(moved);
  }
  if (byte_level_regex) {
    split_isolated(byte_level_regex->program(), text, pieces, next, stack, scratch);
    pieces.swap(next);
  }
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
  Text t;
  decode_utf8(s, t);
  std::string out;
  char buf[16];
  for (char32_t c : t.cps) {
    if (c < 128 && std::isalnum(static_cast<int>(c))) {
      out += static_cast<char>(c);
    } else {
      std::snprintf(buf, sizeof buf, "\\x{%X}", static_cast<unsigned>(c));
      out += buf;
    }
  }
  return out;
}

void add_pre_tokenizer(const json& j, BpeTokenizer::State& st, bool& seen_byte_level) {
  const std::string type = type_of(j);
  MLAMOE_CHECK(!seen_byte_level, "pre_tokenizer: ByteLevel must be the last step, found '" << type << "' after it");
  if (type == "Sequence") {
    for (const json& p : j.at("pretokenizers")) add_pre_tokenizer(p, st, seen_byte_level);
  } else if (type == "Split") {
    const json& pat = j.at("pattern");
    const std::string behavior = j.at("behavior").get<std::string>();
    MLAMOE_CHECK(behavior == "Isolated", "pre_tokenizer Split: unsupported behavior '" << behavior << "' (supported: Isolated)");
    MLAMOE_CHECK(!flag(j, "invert", false), "pre_tokenizer Split: invert true is not supported");
    if (pat.contains("Regex"))
      st.splits.emplace_back(pat["Regex"].get<std::string>());
    else
      st.splits.emplace_back(escape_literal(pat.at("String").get<std::string>()));
  } else if (type == "ByteLevel") {
    st.add_prefix_space = flag(j, "add_prefix_space", true);
    if (flag(j, "use_regex", true)) st.byte_level_regex.emplace(kGpt2Pattern);
    seen_byte_level = true;
  } else {
    MLAMOE_CHECK(false, "unsupported pre_tokenizer type '" << (j.is_null() ? "null" : type)
                                                           << "' (supported: Sequence, Split, ByteLevel)");
  }
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

  for (const auto& [token, id] : m.at("vocab").items()) {
    const int32_t i = id.get<int32_t>();
    MLAMOE_CHECK(i >= 0, "vocab: negative id " << i << " for token '" << token << "'");
    st.vocab[token] = i;
  }
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
    std::ifstream f(path, std::ios::binary);
    MLAMOE_CHECK(f.good(), "cannot open file");
    json j;
    try {
      j = json::parse(f);
    } catch (const json::parse_error& e) {
      MLAMOE_CHECK(false, "invalid JSON: " << e.what());
    }
    MLAMOE_CHECK(j.is_object(), "invalid JSON: the top level is not an object");
    load_model(j.at("model"), st);
    check_normalizer(j.value("normalizer", json()));
    bool seen_byte_level = false;
    add_pre_tokenizer(j.value("pre_tokenizer", json()), st, seen_byte_level);
    MLAMOE_CHECK(seen_byte_level, "pre_tokenizer must end with ByteLevel (only byte-level BPE is supported)");
    check_decoder(j.value("decoder", json()));

    for (const json& a : j.value("added_tokens", json::array())) {
      AddedToken t{a.at("id").get<int32_t>(), a.at("content").get<std::string>(), flag(a, "single_word", false),
                   flag(a, "lstrip", false),  flag(a, "rstrip", false),           flag(a, "normalized", true),
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
  for (const auto& [t, id] : st.vocab) st.id_to_token[id] = t, st.id_known[id] = 1;
  for (const AddedToken& a : st.added) st.id_to_token[a.id] = a.content, st.id_known[a.id] = 1;

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
  Text t;
  for (int32_t id = 0; id <= max_id; ++id) {
    const std::string& token = st.id_to_token[id];
    decode_utf8(token, t);
    std::string bytes;
    bool all_bytes = true;
    for (char32_t c : t.cps) {
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
  Text t;
  std::vector<Span> pieces;
  for (const Segment& s : segs) {
    if (s.token >= 0) {
      out.push_back(text.substr(s.begin, s.end - s.begin));
      continue;
    }
    st.pre_tokenize_segment(std::string_view(text).substr(s.begin, s.end - s.begin), t, pieces);
    for (const Span& p : pieces) out.push_back(t.bytes.substr(t.offs[p.first], t.offs[p.second] - t.offs[p.first]));
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
  Text t;
  std::vector<Span> pieces;
  for (const Segment& s : segs) {
    if (s.token >= 0) {
      ids.push_back(st.added[s.token].id);
      continue;
    }
    st.pre_tokenize_segment(std::string_view(text).substr(s.begin, s.end - s.begin), t, pieces);
    for (const Span& p : pieces)
      st.bpe(std::string_view(t.bytes).substr(t.offs[p.first], t.offs[p.second] - t.offs[p.first]), ids);
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
