// Text files to a token dataset with the byte tokenizer (prepare.h).
#include "data/prepare.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "data/byte_tokenizer.h"
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

}  // namespace

PrepareStats prepare_text_dataset(const std::vector<std::string>& inputs, const std::string& output, const std::string& tokenizer,
                                  bool overwrite) {
  auto t0 = std::chrono::steady_clock::now();
  MLAMOE_CHECK(tokenizer == "byte",
               "data prepare: unknown tokenizer '"
                   << tokenizer << "' (supported: byte); Hugging Face tokenizer.json support comes with fine-tuning/convert");
  MLAMOE_CHECK(!inputs.empty(), "data prepare: no input files");
  MLAMOE_CHECK(!output.empty(), "data prepare: no output file");
  std::error_code ec;
  MLAMOE_CHECK(!fs::is_directory(output, ec), "data prepare: output '" << output << "' is a directory");
  MLAMOE_CHECK(overwrite || !fs::exists(output, ec),
               "data prepare: output '" << output << "' exists; pass --overwrite to replace it");
  // Every input is checked before anything is written: a typo in the last of many files fails at once.
  for (const std::string& in : inputs) open_input(in);

  PrepareStats stats;
  TokenDatasetWriter writer(output, tokenizer, kByteDatasetVocab, kByteEosId);
  std::vector<unsigned char> bytes(kReadChunk);
  std::vector<int32_t> ids(kReadChunk);
  for (const std::string& in : inputs) {
    File f = open_input(in);
    size_t n = 0;
    while ((n = std::fread(bytes.data(), 1, kReadChunk, f.get())) > 0) {
      for (size_t i = 0; i < n; ++i) ids[i] = bytes[i];
      writer.append_tokens(ids.data(), static_cast<int64_t>(n));
      stats.bytes += static_cast<int64_t>(n);
    }
    MLAMOE_CHECK(!std::ferror(f.get()), "data prepare: error reading input '" << in << "': " << std::strerror(errno));
    writer.append_tokens(&kByteEosId, 1);
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
