// The token dataset on disk (train/README.md "Files on disk"): one HDF5 file holding
//   tokens       u32 little-endian, 1-D, chunked, extendible: all documents back to back
//   doc_offsets  u64, 1-D, n_docs + 1 entries: document i is tokens[off[i], off[i+1])
//   loss_mask    u8, 1-D, parallel to tokens (SFT data only): 1 where the token is a training
//                target (a response), 0 where it is context (prompt, template)
//   attributes   format = "mlamoe-tokens", format_version = 2, tokenizer, vocab_size, eos_token_id,
//                header_checksum (of those and the sizes; checked on open)
// Every array is chunked with HDF5's Fletcher-32 filter: a damaged chunk fails its read.
// TokenDatasetWriter streams a corpus into it with bounded memory and publishes it atomically;
// TokenDataset validates a file and reads token ranges. Training windows are in loader.h. Not
// thread-safe (the serial HDF5 library is not).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlamoe {

constexpr const char* kTokenFormat = "mlamoe-tokens";
constexpr int64_t kTokenFormatVersion = 2;  // 2: chunk checksums (Fletcher-32) and a header checksum

class TokenDatasetWriter {
 public:
  // Creates path + ".tmp" (replacing a stale one). Throws mlamoe::Error when it cannot, or when
  // vocab_size < 1 or eos_token_id is not in [0, vocab_size).
  // with_loss_mask: the dataset gets a loss_mask, and every token appended needs its mask value.
  TokenDatasetWriter(const std::string& path, const std::string& tokenizer, int64_t vocab_size, int64_t eos_token_id,
                     bool with_loss_mask = false);
  // Without finish() (an error, say): closes and removes the temporary file; `path` is untouched.
  ~TokenDatasetWriter();
  TokenDatasetWriter(TokenDatasetWriter&&) noexcept;
  TokenDatasetWriter& operator=(TokenDatasetWriter&&) noexcept;

  // One whole document. Every id must be in [0, vocab_size). n may be 0 (an empty document).
  void append_document(const int32_t* ids, int64_t n);
  // A document in pieces, for inputs too large to hold: append_tokens any number of times, then
  // end_document(). append_document(ids, n) is append_tokens(ids, n) + end_document().
  void append_tokens(const int32_t* ids, int64_t n);
  // For a dataset with a loss mask: ids with their mask values (1: train on it, 0: context).
  void append_tokens(const int32_t* ids, const uint8_t* mask, int64_t n);
  void end_document();
  // Writes doc_offsets and the attributes, closes, syncs and renames the file to `path`. Throws on
  // zero tokens ("empty dataset") or an unfinished document.
  void finish();

  int64_t num_tokens() const;  // appended so far
  int64_t num_docs() const;    // finished documents so far

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class TokenDataset {
 public:
  // Validates the whole layout and the offsets; throws mlamoe::Error with one line naming the file
  // and the problem. Token ids are checked against vocab_size when read.
  static TokenDataset open(const std::string& path);
  ~TokenDataset();
  TokenDataset(TokenDataset&&) noexcept;
  TokenDataset& operator=(TokenDataset&&) noexcept;

  const std::string& path() const;
  int64_t num_tokens() const;
  int64_t num_docs() const;
  int64_t vocab_size() const;
  int64_t eos_token_id() const;
  const std::string& tokenizer() const;

  // tokens[start, start + count) into out; throws for a range outside the file or an id >= vocab_size.
  void read(int64_t start, int64_t count, int32_t* out) const;
  bool has_loss_mask() const;
  // false for a format_version 1 file (written before checksums; still read, unverified).
  bool checksummed() const;
  // loss_mask[start, start + count) into out (a dataset without a mask reads as all 1).
  void read_mask(int64_t start, int64_t count, uint8_t* out) const;
  // All n_docs + 1 offsets (8 bytes per document: meant for tests and tools, not the training loop).
  std::vector<int64_t> read_doc_offsets() const;

 private:
  struct Impl;
  explicit TokenDataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace mlamoe
