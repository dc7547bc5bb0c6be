// Text files to a token dataset with the byte tokenizer (prepare.h).
#include "data/prepare.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "data/byte_tokenizer.h"
#include "data/text_encoder.h"
#include "data/token_dataset.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

namespace fs = std::filesystem;

constexpr size_t kReadChunk = size_t{1} << 20;  // 1 MiB of text (and 4 MiB of ids) in memory at a time

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_input(const std::string& path) {
  std::error_code ec;
  MLAMOE_CHECK(!fs::is_directory(path, ec), "data prepare: input '" << path << "' is a directory, expected a text file");
  File f(std::fopen(path.c_str(), "rb"));
  MLAMOE_CHECK(f, "data prepare: cannot open input '" << path << "': " << std::strerror(errno));
  return f;
}

// Where the text read so far may be cut and encoded on its own. Any point for bytes; for BPE the
// last line start whose first character is an ASCII letter or digit: no pre-tokenizer piece of the
// DeepSeek or GPT-2 patterns joins a newline with a following letter or digit. 0: no such point.
size_t safe_cut(const std::string& text, bool byte_level, size_t scanned) {
  if (byte_level) return text.size();
  for (size_t p = text.size(); p-- > std::max<size_t>(scanned, 1);) {  // only what was not searched yet
    unsigned char c = static_cast<unsigned char>(text[p]);
    if (text[p - 1] == '\n' && c < 128 && std::isalnum(c)) return p;
  }
  return 0;
}

// The cut for a text that has gone on for max_pending bytes without a safe one: just before the
// last space that follows a non-space and precedes one (so " word" stays one pre-tokenizer piece,
// as in the whole text), else the last UTF-8 character boundary. The ids decode to the same bytes
// either way; only the second kind of cut can change them.
size_t forced_cut(const std::string& text) {
  auto boundary = [&](size_t p) { return (static_cast<unsigned char>(text[p]) & 0xC0) != 0x80; };
  auto space = [&](size_t p) { return text[p] == ' ' || text[p] == '\n' || text[p] == '\t'; };
  for (size_t p = text.size() - 1; p-- > 1;)
    if (text[p] == ' ' && !space(p - 1) && !space(p + 1)) return p;
  for (size_t p = text.size(); p-- > 1;)
    if (boundary(p)) return p;
  return text.size();
}

}  // namespace

PrepareStats prepare_text_dataset(const std::vector<std::string>& inputs, const std::string& output, const std::string& tokenizer,
                                  bool overwrite) {
  return prepare_text_dataset(inputs, output, text_encoder(tokenizer), overwrite);
}

PrepareStats prepare_text_dataset(const std::vector<std::string>& inputs, const std::string& output, const TextEncoder& enc,
                                  bool overwrite, size_t max_pending_bytes) {
  auto t0 = std::chrono::steady_clock::now();
  MLAMOE_CHECK(!inputs.empty(), "data prepare: no input files");
  MLAMOE_CHECK(!output.empty(), "data prepare: no output file");
  std::error_code ec;
  MLAMOE_CHECK(!fs::is_directory(output, ec), "data prepare: output '" << output << "' is a directory");
  MLAMOE_CHECK(overwrite || !fs::exists(output, ec),
               "data prepare: output '" << output << "' exists; pass --overwrite to replace it");
  // Every input is checked before anything is written: a typo in the last of many files fails at once.
  for (const std::string& in : inputs) open_input(in);

  PrepareStats stats;
  TokenDatasetWriter writer(output, enc.name, enc.vocab_size, enc.eos_id);
  std::vector<char> chunk(kReadChunk);
  const int32_t eos = static_cast<int32_t>(enc.eos_id);
  for (const std::string& in : inputs) {
    File f = open_input(in);
    std::string text;    // unencoded text: what is left after the last safe cut
    size_t scanned = 0;  // text[0, scanned) holds no safe cut
    bool warned = false;
    size_t n = 0;
    auto put = [&](const std::string& piece) {
      std::vector<int32_t> ids = enc.encode(piece);
      writer.append_tokens(ids.data(), static_cast<int64_t>(ids.size()));
    };
    while ((n = std::fread(chunk.data(), 1, kReadChunk, f.get())) > 0) {
      text.append(chunk.data(), n);
      stats.bytes += static_cast<int64_t>(n);
      size_t cut = safe_cut(text, enc.byte_level, scanned);
      if (cut == 0 && text.size() >= max_pending_bytes) {
        // No safe point in max_pending bytes (one enormous line): bound the memory, cut anyway.
        cut = forced_cut(text);
        if (!warned)
          std::fprintf(
              stderr,
              "data prepare: warning: '%s' has no line starting with a letter or digit in %.1f MiB; cutting it before "
              "a space there (or, without one, between characters, where tokens may differ from encoding the file whole)\n",
              in.c_str(), static_cast<double>(max_pending_bytes) / (1 << 20));
        warned = true;
      }
      if (cut == 0) {  // no safe point yet: keep reading
        scanned = text.size();
        continue;
      }
      put(text.substr(0, cut));
      text.erase(0, cut);
      scanned = text.size();  // the last safe cut was the last one: none in the rest
    }
    MLAMOE_CHECK(!std::ferror(f.get()), "data prepare: error reading input '" << in << "': " << std::strerror(errno));
    if (!text.empty()) put(text);
    writer.append_tokens(&eos, 1);
    writer.end_document();
  }
  // The writer's destructor removes its temporary file on this path: nothing is left behind.
  MLAMOE_CHECK(stats.bytes > 0, "data prepare: empty corpus: the " << inputs.size() << " input file(s) hold 0 bytes");
  writer.finish();
  stats.docs = writer.num_docs();
  stats.tokens = writer.num_tokens();
  stats.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return stats;
}

}  // namespace mlamoe
