#!/usr/bin/env python3
"""Reference for tests/data/test_bpe.cpp: HF `tokenizers` (the library the released DeepSeek
tokenizer.json files are made for) builds a small byte-level BPE with DeepSeek-V3's pre-tokenizer and
writes what it makes of a list of test strings. Written against the `tokenizers` API, not by porting
data/bpe_tokenizer.cpp.

    bpe_reference.py OUT_DIR

OUT_DIR gets tokenizer.json (trained here: ~1000 tokens, the two DeepSeek sentence tokens), variants
of it (merges as "a b" strings, ignore_merges, GPT-2 and DeepSeek-LLM style pre-tokenizers, added
tokens with lstrip / rstrip / single_word) and expected.json:
  variants: per file, each test string's ids, decode (special tokens kept) and pre-tokenizer pieces,
            and the pieces of invalid UTF-8 strings (given as hex) decoded lossily, as HF sees them;
  regex:    Split(pattern, "isolated") pieces of hand-picked patterns and strings;
  classes:  the code points of class_domain that Oniguruma's \\p{L}, \\s, ... match, as inclusive ranges.
Exits 77 (with the reason on stderr) when `tokenizers` cannot be imported.
"""
import json
import os
import random
import sys

try:
    import tokenizers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
except ImportError as e:
    print("tokenizers is not importable (%s); install it with "
          "'python3 -m pip install --break-system-packages tokenizers'" % e, file=sys.stderr)
    sys.exit(77)

BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"

# DeepSeek-V3's Split patterns, as tokenizer.json holds them once its JSON escapes are decoded.
DEEPSEEK_V3 = [
    "\\p{N}{1,3}",
    "[一-龥\u3040-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+"
    "| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
]
GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# In the style of DeepSeek-LLM/Coder's Splits: literal ranges (astral ones too), \s?, $ and \p{N}+.
DEEPSEEK_LLM = [
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕ"
    "Ａ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
]

CORPUS = """
The quick brown fox jumps over the lazy dog. It's a truth universally acknowledged that a model
in possession of a good tokenizer must be in want of data. We'll see; they've said they'd try.
Don't panic! Numbers: 1, 22, 333, 4444, 55555, 3.14159, 2024-06-30, $1,000,000 and 99%.
In 1969, 600 million people watched the landing; the mission lasted 8 days, 3 hours, 18 minutes.

def tokenize(text: str) -> list[int]:
    \"\"\"Split text into pieces, then merge bytes by rank.\"\"\"
    ids = []
    for piece in re.findall(PATTERN, text):
        ids.extend(bpe(piece.encode("utf-8")))
    return ids  # TODO: cache

int main(int argc, char** argv) {
  std::vector<int32_t> ids = tok.encode(argv[1]);
  for (auto id : ids) printf("%d\\n", id);
  return ids.empty() ? 1 : 0;
}

{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}}, "merges": [["a", "b"]], "ok": true}
SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name ORDER BY 2 DESC;

深度求索的模型使用混合专家架构，训练效率很高。我们今天学习分词器的工作原理。
中文文本没有空格，所以预分词器把连续的汉字作为一个整体。你好，世界！这是一个测试。
日本語のテキストもあります。ひらがな、カタカナ、漢字を混ぜて書きます。トークナイザーは面白いです。
東京は日本の首都です。私はコーヒーが好きです。ありがとうございました。
한국어 문장도 조금 있습니다. 안녕하세요!

Emoji: 😀 😃 😄 🎉 👍 👍🏽 ❤️ 🚀 🇫🇷 👨‍👩‍👧‍👦 — and symbols ™ © ® € £ ¥ → ← ≤ ≥ ∞.
Café, naïve, résumé, façade, Ångström, São Paulo, Zürich, Kraków, Ελληνικά, русский язык.
Combining: e\u0301 o\u0308 a\u030a; tabs\tand\t\tmore; windows\r\nline endings\r\n.
"""

TEXTS = [
    "Hello world",
    "  multiple   spaces  here   ",
    "a  b   c    d",
    "line1\nline2\n\n\nline3\n",
    "windows\r\nline\r\n\r\nend",
    "tabs\tand\t\tmore\t",
    " \t \n \r\n  x",
    "1234567",
    "digits 1234567 and 3.14159 and 1,000,000 and 0042",
    "don't won't it's I'm we'll they've he'd DON'T",
    "text" + EOS + "more",
    BOS + "Hi there" + EOS,
    "a " + EOS + " b",
    EOS,
    "<｜end▁of▁sentence",
    "日本語のテキストです。カタカナ、ひらがな",
    "中文测试：你好，世界！",
    "mixed中文English123日本語abc",
    "emoji 😀🎉👍🏽 family 👨‍👩‍👧 flag 🇫🇷",
    "café naïve résumé Ångström",
    "combining e\u0301 and o\u0308\u0301 alone \u0301",
    "Ünïcödé ÀÉÎÕÜ ß",
    "＄１２３ full-width ＡＢＣ",
    "end with spaces   ",
    "  \n  \n",
    "x\u3000y\u00a0z\u2028w\u0085v",
    "(parens) [brackets] {braces} <angles>",
    "!!!???...,,,;;;",
    "http://example.com/path?q=1&r=2#frag",
    "'quoted' \"double\" `back`",
    "١٢٣ Arabic digits ٤٥٦ and ½ ⅞ Ⅻ ²³",
    "korean 한국어 텍스트",
    "\x00\x01\x7f control \x1b[0m",
    "a  <mask> b<mask>",
    "x [SEP]   y[SEP]\n\nz",
    "word words sword word. word_ word1 wordé (word)",
    "Hello, Hello! Helloing singing",
    "ÿ\u0100\u00ad soft hyphen",
    "def f(x):\n    return x**2  # comment\n",
    "if (a>=b && c!=d) { x += 1; }",
    "#include <vector>\nint main() {}\n",
    "",
    " ",
    "\n",
    "a",
    ".",
    "Ġ",
]

# Hand-picked patterns for the regex engine alone, beyond the tokenizer's own.
REGEX_PATTERNS = DEEPSEEK_V3 + [GPT2] + DEEPSEEK_LLM + [
    r"\s+$", r"^\s+", r"a{2,3}?", r"(?:ab|a)(?=c)", r"x*?y", r"[^a-c\d]+", r"\P{L}+", r"\p{Lu}\p{Ll}+",
    r".+", r"\d{2}", r"\p{N}+|\p{L}+", r"(a|ab)(c|bcd)", r"[\-\]\\]+", r"\A.|.\z", r"b\Z", r"[^\s\p{^L}]+",
    r"\x41+|\u3042+", r"(?!a)\S", r"a{,2}", r"a{2}", r"\p{Letter}+", r"[\p{P}\p{S}]+",
    # Oniguruma syntax no DeepSeek pattern uses, which the tokenizer accepts all the same.
    r"\w+", r"(?<=a)b", r"(?<!\s)\S+", r"(?i)abc", r"[[a-c]x]+", r"a++", r"\p{Han}+", r"(a*)*", r"(\p{L})\1",
    r"\b\w", r"\X", r"(?<w>a|b)\k<w>+",
]
REGEX_TEXTS = TEXTS + ["aaaa abc abcd xxy y ABcdEf", "AAA ああ b\n", "ab\ncd\n", "--]]\\\\ab", "abab bb aABC abc aBc",
                       "llama bookkeeper aabbba"]
# Invalid UTF-8 (HF only ever sees text, so these are compared as HF's pieces of the lossy decode): lone
# and stray bytes, truncated sequences, overlongs, surrogates, values past U+10FFFF.
INVALID_UTF8 = [b"ab\xff\xfe cd \xe4\xb8 \xc3(\xed\xa0\x80", b"\xff", b"caf\xc3", b"\xe4\xb8\xad\xe6\x96 text",
                b"  \x80\x80  x", b"12\xf0\x9f\x98 3456", b"\xf4\x90\x80\x80!", b"\xc0\xafhello\r\n\xfe\n",
                b"\xe0\x80\x80 \xef\xbf\xbd ok", b"x\xf0\x9f\x98\x80\xf0\x9f", b"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa",
                b"don\xe2\x80't  \xa0 x"]

CLASS_PATTERNS = [r"\p{L}+", r"\p{M}+", r"\p{N}+", r"\p{P}+", r"\p{S}+", r"\p{Z}+", r"\p{C}+", r"\s+", r"\p{Lu}+",
                  r"\p{Nd}+", r"\p{Cn}+"]
# The planes that hold assigned characters (4..13 are empty, 15..16 private use), surrogates left out:
# a third of the code space, so the classes take seconds, not tens.
CLASS_DOMAIN = [[0, 0xD7FF], [0xE000, 0x3FFFF], [0xE0000, 0xEFFFF]]


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


BYTE_OF = {c: b for b, c in bytes_to_unicode().items()}


def fuzz_texts(count, seed=1234):
    """Random strings over the characters the DeepSeek pattern treats differently."""
    pool = list("aZ é'\"-.,!?;:()[]{}<>/\\_`~@#$%^&*+=|09") + ["  ", "\t", "\n", "\r", "\r\n", "\u3000", "\u00a0",
                                                               "\u0301", "中", "文", "の", "カ", "ー", "한", "😀",
                                                               "👍🏽", "١", "½", "Ⅻ", "\x01", "Ω", "ß", "ｱ", "＄", "…"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(1, 24))) for _ in range(count)]


def build(out_dir):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), "isolated") for p in DEEPSEEK_V3] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1000, special_tokens=[BOS, EOS], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([CORPUS] * 3, trainer=trainer)
    path = os.path.join(out_dir, "tokenizer.json")
    tok.save(path)

    spec = json.load(open(path, encoding="utf-8"))
    assert isinstance(spec["model"]["merges"][0], list), "expected [a, b] merges from this tokenizers version"
    variants = {"deepseek_v3": spec}
    strings = json.loads(json.dumps(spec))
    strings["model"]["merges"] = [a + " " + b for a, b in spec["model"]["merges"]]
    variants["string_merges"] = strings
    ignore = json.loads(json.dumps(spec))
    ignore["model"]["ignore_merges"] = True
    variants["ignore_merges"] = ignore
    gpt2 = json.loads(json.dumps(spec))
    gpt2["pre_tokenizer"] = json.loads(pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True).__getstate__())
    variants["gpt2_style"] = gpt2
    llm = json.loads(json.dumps(spec))
    llm["pre_tokenizer"] = json.loads(pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(p), "isolated") for p in DEEPSEEK_LLM] +
        [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]).__getstate__())
    variants["deepseek_llm_style"] = llm
    # Added tokens with HF's matching options, and non-special ones (matched in the text all the same).
    flagged = Tokenizer.from_str(json.dumps(spec))
    flagged.add_special_tokens([AddedToken("<mask>", lstrip=True), AddedToken("[SEP]", rstrip=True)])
    flagged.add_tokens([AddedToken("word", single_word=True), AddedToken("Hello", normalized=False), "ing"])
    variants["added_flags"] = json.loads(flagged.to_str())
    return variants


def pieces_of(pre_tokenizer, text):
    """Pre-tokenizer pieces as text: ByteLevel has mapped them to its alphabet, so map them back."""
    return [bytes(BYTE_OF[c] for c in p).decode("utf-8") for p, _ in pre_tokenizer.pre_tokenize_str(text)]


def class_ranges(pattern, cps, text):
    """Code points the pattern's class matches: the complement of what a 'removed' split leaves."""
    inside = [True] * len(cps)
    for _, (b, e) in pre_tokenizers.Split(Regex(pattern), "removed").pre_tokenize_str(text):
        inside[b:e] = [False] * (e - b)
    ranges = []
    for i, c in enumerate(cps):
        if inside[i]:
            if ranges and ranges[-1][1] == c - 1:
                ranges[-1][1] = c
            else:
                ranges.append([c, c])
    return ranges


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    texts = TEXTS + fuzz_texts(300)
    expected = {"tokenizers_version": tokenizers.__version__, "variants": [], "regex": [], "classes": []}
    for name, spec in build(out_dir).items():
        path = os.path.join(out_dir, name + ".json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(spec, f, ensure_ascii=False)
        tok = Tokenizer.from_file(path)
        cases = []
        for t in texts:
            ids = tok.encode(t, add_special_tokens=False).ids
            has_special = any(a in t for a in [BOS, EOS, "<mask>", "[SEP]", "word", "Hello", "ing"])
            cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False),
                          "pieces": None if has_special else pieces_of(tok.pre_tokenizer, t)})
        invalid = [{"hex": b.hex(), "pieces": pieces_of(tok.pre_tokenizer, b.decode("utf-8", "replace"))}
                   for b in INVALID_UTF8]
        # GPT-2 style adds a space before each piece, lstrip / rstrip drop spaces: no round trip.
        lossless = name not in ("gpt2_style", "added_flags")
        expected["variants"].append({"name": name, "file": path, "vocab_size": tok.get_vocab_size(),
                                     "lossless": lossless, "cases": cases, "invalid_utf8": invalid})
    for p in REGEX_PATTERNS:
        split = pre_tokenizers.Split(Regex(p), "isolated")
        for t in REGEX_TEXTS + fuzz_texts(40, seed=len(p)):
            expected["regex"].append({"pattern": p, "text": t, "pieces": [s for s, _ in split.pre_tokenize_str(t)]})
    cps = [c for lo, hi in CLASS_DOMAIN for c in range(lo, hi + 1)]
    text = "".join(map(chr, cps))
    expected["class_domain"] = CLASS_DOMAIN
    for p in CLASS_PATTERNS:
        expected["classes"].append({"pattern": p, "ranges": class_ranges(p, cps, text)})
    with open(os.path.join(out_dir, "expected.json"), "w", encoding="utf-8") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main()
