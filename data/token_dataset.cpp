// The HDF5 token dataset: streaming writer with atomic publish, validating reader (token_dataset.h).
#include "data/token_dataset.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

#include "data/h5_util.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

// The attributes and sizes of a dataset, hashed (splitmix64 steps over the bytes and numbers).
uint64_t header_checksum(const std::string& tokenizer, int64_t vocab_size, int64_t eos_token_id, int64_t num_tokens,
                         int64_t num_docs, bool has_mask) {
  auto mix = [](uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  uint64_t h = mix(0x746f6b656e73ull ^ tokenizer.size());
  for (unsigned char c : tokenizer) h = mix(h ^ c);
  for (int64_t v : {vocab_size, eos_token_id, num_tokens, num_docs, int64_t{has_mask}, kTokenFormatVersion})
    h = mix(h ^ static_cast<uint64_t>(v) * 0x9e3779b97f4a7c15ull);
  return h;
}

namespace fs = std::filesystem;

// Chunk sizes: whole chunks are what the writer flushes, so they bound its memory (4 MiB + 512 KiB)
// and make disk writes large. No compression: token ids barely compress and reads must be fast.
constexpr hsize_t kTokenChunk = hsize_t{1} << 20;
constexpr hsize_t kOffsetChunk = hsize_t{1} << 16;
// Per open dataset: room for 16 token chunks (64 MiB), hashed into a prime number of slots well
// above the chunks it holds (HDF5's advice: about 100× the chunks that fit).
constexpr size_t kChunkCacheBytes = size_t{64} << 20;
constexpr size_t kChunkCacheSlots = 1601;
// Offsets are validated in blocks of this many entries, so opening never holds all of them.
constexpr int64_t kOffsetCheckBlock = int64_t{1} << 20;

std::string where_of(const std::string& path) { return "token dataset '" + path + "'"; }

// Reads elements [start, start + count) of a 1-D dataset, converted to mem_type.
bool read_range(hid_t dset, hid_t mem_type, int64_t start, int64_t count, void* out) {
  if (count == 0) return true;
  H5Id file_space(H5Dget_space(dset), H5Sclose);
  hsize_t s = static_cast<hsize_t>(start), c = static_cast<hsize_t>(count);
  if (!file_space.valid() || H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &s, nullptr, &c, nullptr) < 0) return false;
  H5Id mem_space(H5Screate_simple(1, &c, nullptr), H5Sclose);
  return H5Dread(dset, mem_type, mem_space.get(), file_space.get(), H5P_DEFAULT, out) >= 0;
}

// A 1-D extendible dataset filled by appending. Values collect in a one-chunk buffer that goes to
// disk whole, so memory stays bounded whatever the corpus size. The dataset is created at the first
// flush: a file smaller than one chunk gets a chunk of its own size instead of megabytes of padding.
template <typename T>
class ChunkedAppender {
 public:
  ChunkedAppender(hid_t file, const char* name, hid_t file_type, hid_t mem_type, hsize_t chunk, std::string where)
      : file_(file), name_(name), file_type_(file_type), mem_type_(mem_type), chunk_(chunk), where_(std::move(where)) {
    buf_.reserve(chunk_);
  }

  void push(T v) {
    buf_.push_back(v);
    if (buf_.size() == chunk_) flush();
  }

  // Writes the buffer; called when it holds a chunk and once at the end.
  void flush() {
    if (!dset_.valid()) create(std::clamp<hsize_t>(buf_.size(), 1, chunk_));
    if (buf_.empty()) return;
    hsize_t start = written_, count = buf_.size(), new_size = written_ + buf_.size();
    bool ok = H5Dset_extent(dset_.get(), &new_size) >= 0;
    H5Id file_space(H5Dget_space(dset_.get()), H5Sclose);
    H5Id mem_space(H5Screate_simple(1, &count, nullptr), H5Sclose);
    ok = ok && file_space.valid() && H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, &start, nullptr, &count, nullptr) >= 0;
    ok = ok && H5Dwrite(dset_.get(), mem_type_, mem_space.get(), file_space.get(), H5P_DEFAULT, buf_.data()) >= 0;
    MLAMOE_CHECK(ok, where_ << ": cannot write dataset '" << name_ << "' (disk full?)");
    written_ = new_size;
    buf_.clear();
  }

  int64_t size() const { return static_cast<int64_t>(written_ + buf_.size()); }
  bool close() { return dset_.reset(); }

 private:
  void create(hsize_t chunk) {
    hsize_t dims = 0, max_dims = H5S_UNLIMITED;
    H5Id space(H5Screate_simple(1, &dims, &max_dims), H5Sclose);
    H5Id dcpl(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
    H5Pset_chunk(dcpl.get(), 1, &chunk);
    H5Pset_fletcher32(dcpl.get());  // a checksum per chunk, checked by HDF5 on every read
    dset_ = H5Id(H5Dcreate2(file_, name_, file_type_, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT), H5Dclose);
    MLAMOE_CHECK(dset_.valid(), where_ << ": cannot create dataset '" << name_ << "'");
  }

  hid_t file_;
  const char* name_;
  hid_t file_type_;
  hid_t mem_type_;
  hsize_t chunk_;
  std::string where_;
  H5Id dset_;
  std::vector<T> buf_;
  hsize_t written_ = 0;
};

// Removes a file when destroyed unless disarmed: the writer's temporary file on every failure path,
// the constructor's included.
struct RemoveOnExit {
  std::string path;
  bool armed = true;
  ~RemoveOnExit() {
    std::error_code ec;
    if (armed) fs::remove(path, ec);
  }
};

void fsync_or_throw(const std::string& path, const std::string& where) {
  int fd = ::open(path.c_str(), O_RDONLY);
  bool ok = fd >= 0 && ::fsync(fd) == 0;
  int err = errno;
  if (fd >= 0) ::close(fd);
  MLAMOE_CHECK(ok, where << ": cannot sync '" << path << "': " << std::strerror(err));
}

// Makes the rename itself durable. Best effort: some filesystems refuse fsync on a directory.
void fsync_parent_dir(const std::string& path) {
  std::string dir = fs::path(path).parent_path().string();
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace

// ---- Writer ----

struct TokenDatasetWriter::Impl {
  // Declaration order is destruction order reversed: datasets close before the file, and the
  // temporary file is removed last, once nothing holds it open.
  RemoveOnExit tmp;
  std::string path, where, tokenizer;
  int64_t vocab_size = 0, eos_token_id = 0;
  H5Id file;
  std::optional<ChunkedAppender<uint32_t>> tokens;
  std::optional<ChunkedAppender<uint64_t>> offsets;
  std::optional<ChunkedAppender<uint8_t>> mask;  // SFT datasets only
  int64_t doc_start = 0;                         // first token of the document being appended
  int64_t num_docs = 0;
  bool finished = false;

  void push_ids(const int32_t* ids, int64_t n) {
    MLAMOE_CHECK(!finished, where << ": append after finish()");
    MLAMOE_CHECK(n >= 0 && (n == 0 || ids), where << ": append of " << n << " tokens from a null pointer");
    for (int64_t i = 0; i < n; ++i) {
      MLAMOE_CHECK(ids[i] >= 0 && ids[i] < vocab_size, where << ": token id " << ids[i] << " in document " << num_docs
                                                             << " is outside [0, vocab_size " << vocab_size << ")");
      tokens->push(static_cast<uint32_t>(ids[i]));
    }
  }
};

TokenDatasetWriter::TokenDatasetWriter(const std::string& path, const std::string& tokenizer, int64_t vocab_size,
                                       int64_t eos_token_id, bool with_loss_mask)
    : impl_(std::make_unique<Impl>()) {
  h5_silence_errors();
  Impl& m = *impl_;
  m.path = path;
  m.where = where_of(path);
  m.tokenizer = tokenizer;
  m.vocab_size = vocab_size;
  m.eos_token_id = eos_token_id;
  MLAMOE_CHECK(vocab_size >= 1 && vocab_size <= (int64_t{1} << 31),
               m.where << ": vocab_size must be in [1, 2^31], got " << vocab_size);
  MLAMOE_CHECK(eos_token_id >= 0 && eos_token_id < vocab_size,
               m.where << ": eos_token_id " << eos_token_id << " is outside [0, vocab_size " << vocab_size << ")");
  m.tmp.path = path + ".tmp";
  m.file = H5Id(H5Fcreate(m.tmp.path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose);
  if (!m.file.valid()) {
    m.tmp.armed = false;  // never created: nothing of ours to remove
    MLAMOE_CHECK(false, m.where << ": cannot create '" << m.tmp.path << "' (does the directory exist and is it writable?)");
  }
  m.tokens.emplace(m.file.get(), "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, kTokenChunk, m.where);
  m.offsets.emplace(m.file.get(), "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, kOffsetChunk, m.where);
  m.offsets->push(0);
  if (with_loss_mask) m.mask.emplace(m.file.get(), "loss_mask", H5T_STD_U8LE, H5T_NATIVE_UINT8, kTokenChunk, m.where);
}

TokenDatasetWriter::~TokenDatasetWriter() = default;
TokenDatasetWriter::TokenDatasetWriter(TokenDatasetWriter&&) noexcept = default;
TokenDatasetWriter& TokenDatasetWriter::operator=(TokenDatasetWriter&&) noexcept = default;

void TokenDatasetWriter::append_tokens(const int32_t* ids, const uint8_t* mask, int64_t n) {
  Impl& m = *impl_;
  MLAMOE_CHECK(m.mask, m.where << ": mask values given for a dataset created without a loss mask");
  MLAMOE_CHECK(n == 0 || mask, m.where << ": append of " << n << " mask values from a null pointer");
  m.push_ids(ids, n);
  for (int64_t i = 0; i < n; ++i) m.mask->push(mask[i] ? 1 : 0);
}

void TokenDatasetWriter::append_tokens(const int32_t* ids, int64_t n) {
  Impl& m = *impl_;
  MLAMOE_CHECK(!m.mask, m.where << ": this dataset has a loss mask: append tokens with their mask values");
  m.push_ids(ids, n);
}

void TokenDatasetWriter::end_document() {
  Impl& m = *impl_;
  MLAMOE_CHECK(!m.finished, m.where << ": end_document after finish()");
  m.doc_start = m.tokens->size();
  m.offsets->push(static_cast<uint64_t>(m.doc_start));
  ++m.num_docs;
}

void TokenDatasetWriter::append_document(const int32_t* ids, int64_t n) {
  append_tokens(ids, n);
  end_document();
}

void TokenDatasetWriter::finish() {
  Impl& m = *impl_;
  MLAMOE_CHECK(!m.finished, m.where << ": finish() called twice");
  MLAMOE_CHECK(m.tokens->size() == m.doc_start,
               m.where << ": finish() inside document " << m.num_docs << " (call end_document() first)");
  MLAMOE_CHECK(m.tokens->size() > 0, m.where << ": empty dataset (no tokens were appended)");
  m.tokens->flush();
  m.offsets->flush();
  if (m.mask) m.mask->flush();
  hid_t root = m.file.get();  // attributes on the file id land on the root group
  h5_write_string_attribute(root, "format", kTokenFormat, m.where);
  h5_write_int_attribute(root, "format_version", kTokenFormatVersion, H5T_STD_I32LE, m.where);
  h5_write_string_attribute(root, "tokenizer", m.tokenizer, m.where);
  h5_write_int_attribute(root, "vocab_size", m.vocab_size, H5T_STD_I64LE, m.where);
  h5_write_int_attribute(root, "eos_token_id", m.eos_token_id, H5T_STD_I64LE, m.where);
  h5_write_int_attribute(root, "header_checksum",
                         static_cast<int64_t>(header_checksum(m.tokenizer, m.vocab_size, m.eos_token_id, m.tokens->size(),
                                                              m.num_docs, m.mask.has_value())),
                         H5T_STD_I64LE, m.where);
  bool ok = m.tokens->close() && m.offsets->close() && (!m.mask || m.mask->close());
  ok = m.file.reset() && ok;
  MLAMOE_CHECK(ok, m.where << ": cannot close '" << m.tmp.path << "' (disk full?)");
  // Data on disk before the name points at it: a crash leaves either the old file or the new one.
  fsync_or_throw(m.tmp.path, m.where);
  std::error_code ec;
  fs::rename(m.tmp.path, m.path, ec);
  MLAMOE_CHECK(!ec, m.where << ": cannot rename '" << m.tmp.path << "' to it: " << ec.message());
  m.tmp.armed = false;
  fsync_parent_dir(m.path);
  m.finished = true;
}

int64_t TokenDatasetWriter::num_tokens() const { return impl_->tokens ? impl_->tokens->size() : 0; }
int64_t TokenDatasetWriter::num_docs() const { return impl_->num_docs; }

// ---- Reader ----

struct TokenDataset::Impl {
  bool checksummed = true;  // format_version >= 2: header and chunk checksums
  std::string path, where, tokenizer;
  int64_t num_tokens = 0, num_docs = 0, vocab_size = 0, eos_token_id = 0;
  H5Id file, tokens, offsets, mask;
};

namespace {

// The largest chunk a token file may declare (ours: 4 MiB of tokens, 512 KiB of offsets).
constexpr hsize_t kMaxChunkBytes = hsize_t{16} << 20;

// A damaged or crafted file must not make HDF5 allocate what its layout claims: before reading a
// filtered chunk HDF5 allocates the size the chunk index records for it (a fuzzed file asked for
// 4 GiB), and it sizes buffers by the declared chunk. So the chunk may hold at most
// kMaxChunkBytes, and every stored chunk at most what its contents plus a checksum (or a
// compressor's worst-case growth) could take.
void check_chunks(hid_t dset, hsize_t n, size_t bytes, const char* name, const std::string& where) {
  H5Id dcpl(H5Dget_create_plist(dset), H5Pclose);
  MLAMOE_CHECK(dcpl.valid(), where << ": cannot read the layout of dataset '" << name << "'");
  if (H5Pget_layout(dcpl.get()) != H5D_CHUNKED) return;
  hsize_t chunk = 0;
  MLAMOE_CHECK(H5Pget_chunk(dcpl.get(), 1, &chunk) == 1 && chunk >= 1 && chunk <= kMaxChunkBytes / bytes,
               where << ": dataset '" << name << "' declares chunks of " << chunk << " elements; at most "
                     << kMaxChunkBytes / bytes << " are accepted (damaged file?)");
  const hsize_t limit = chunk * bytes + chunk * bytes / 64 + 1024;
  for (hsize_t at = 0; at < n; at += chunk) {
    unsigned filter_mask = 0;
    haddr_t addr = 0;
    hsize_t stored = 0;
    if (H5Dget_chunk_info_by_coord(dset, &at, &filter_mask, &addr, &stored) < 0) continue;  // not allocated
    MLAMOE_CHECK(stored <= limit, where << ": dataset '" << name << "' stores its chunk at element " << at << " in " << stored
                                        << " bytes, more than its " << chunk * bytes
                                        << " bytes of data can take (damaged file?)");
  }
}

// Opens a 1-D unsigned integer dataset of `bytes`-wide elements and returns it with its length.
std::pair<H5Id, int64_t> open_vector(hid_t file, const char* name, size_t bytes, const std::string& where) {
  MLAMOE_CHECK(H5Lexists(file, name, H5P_DEFAULT) > 0, where << ": missing dataset '" << name << "'");
  // A chunk cache that holds kCachedChunks whole token chunks (4 MiB each): HDF5's default of 1 MiB
  // holds none, so every window read re-read and re-checksummed its whole chunk (16% of a tiny.json
  // step). Chunks are still verified (Fletcher-32) whenever they come from the file.
  H5Id dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
  MLAMOE_CHECK(dapl.valid() && H5Pset_chunk_cache(dapl.get(), kChunkCacheSlots, kChunkCacheBytes, 1.0) >= 0,
               where << ": cannot set up the chunk cache of '" << name << "'");
  H5Id dset(H5Dopen2(file, name, dapl.get()), H5Dclose);
  MLAMOE_CHECK(dset.valid(), where << ": '" << name << "' is not a dataset");
  H5Id type(H5Dget_type(dset.get()), H5Tclose);
  bool type_ok =
      H5Tget_class(type.get()) == H5T_INTEGER && H5Tget_sign(type.get()) == H5T_SGN_NONE && H5Tget_size(type.get()) == bytes;
  MLAMOE_CHECK(type_ok,
               where << ": dataset '" << name << "' must be uint" << bytes * 8 << ", got " << h5_describe_type(type.get()));
  H5Id space(H5Dget_space(dset.get()), H5Sclose);
  int rank = H5Sget_simple_extent_ndims(space.get());
  MLAMOE_CHECK(rank == 1, where << ": dataset '" << name << "' must be 1-D, got rank " << rank);
  hsize_t n = 0;
  H5Sget_simple_extent_dims(space.get(), &n, nullptr);
  check_chunks(dset.get(), n, bytes, name, where);
  return {std::move(dset), static_cast<int64_t>(n)};
}

// offsets must run 0 = off[0] <= off[1] <= ... <= off[n_docs] = num_tokens.
void check_offsets(hid_t dset, int64_t n, int64_t num_tokens, const std::string& where) {
  MLAMOE_CHECK(n >= 1, where << ": dataset 'doc_offsets' is empty (it needs n_docs + 1 entries, the first 0)");
  std::vector<uint64_t> block;
  uint64_t prev = 0;
  for (int64_t start = 0; start < n; start += kOffsetCheckBlock) {
    int64_t count = std::min(kOffsetCheckBlock, n - start);
    block.resize(count);
    MLAMOE_CHECK(read_range(dset, H5T_NATIVE_UINT64, start, count, block.data()), where << ": cannot read 'doc_offsets'");
    for (int64_t i = 0; i < count; ++i) {
      uint64_t v = block[i];
      MLAMOE_CHECK(start + i > 0 || v == 0, where << ": doc_offsets must start at 0, got " << v);
      MLAMOE_CHECK(v >= prev, where << ": doc_offsets decrease at entry " << start + i << " (" << v << " after " << prev << ")");
      prev = v;
    }
  }
  MLAMOE_CHECK(prev == static_cast<uint64_t>(num_tokens),
               where << ": doc_offsets end at " << prev << " but 'tokens' has " << num_tokens << " entries");
}

}  // namespace

TokenDataset::TokenDataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TokenDataset::~TokenDataset() = default;
TokenDataset::TokenDataset(TokenDataset&&) noexcept = default;
TokenDataset& TokenDataset::operator=(TokenDataset&&) noexcept = default;

TokenDataset TokenDataset::open(const std::string& path) {
  h5_silence_errors();
  auto m = std::make_unique<Impl>();
  m->path = path;
  m->where = where_of(path);
  const std::string& where = m->where;
  std::error_code ec;
  MLAMOE_CHECK(fs::exists(path, ec), where << ": no such file");
  MLAMOE_CHECK(!fs::is_directory(path, ec), where << ": is a directory, expected an HDF5 file");
  MLAMOE_CHECK(::access(path.c_str(), R_OK) == 0, where << ": cannot read: " << std::strerror(errno));
  MLAMOE_CHECK(H5Fis_hdf5(path.c_str()) > 0, where << ": not an HDF5 file");
  m->file = H5Id(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), H5Fclose);
  MLAMOE_CHECK(m->file.valid(), where << ": cannot open (damaged HDF5 file?)");
  hid_t file = m->file.get();

  std::string format = h5_read_string_attribute(file, "format", where);
  MLAMOE_CHECK(format == kTokenFormat, where << ": attribute 'format' is '" << format << "', expected '" << kTokenFormat << "'");
  int64_t version = h5_read_int_attribute(file, "format_version", where);
  // Version 1 (no checksums) is still read, so that a prepared corpus need not be tokenized again;
  // checksummed() tells the caller to say so.
  MLAMOE_CHECK(version == kTokenFormatVersion || version == 1, where << ": format_version " << version
                                                                     << " is not supported (this build reads 1 and "
                                                                     << kTokenFormatVersion << ")");
  m->checksummed = version >= 2;
  m->tokenizer = h5_read_string_attribute(file, "tokenizer", where);
  m->vocab_size = h5_read_int_attribute(file, "vocab_size", where);
  m->eos_token_id = h5_read_int_attribute(file, "eos_token_id", where);
  // Ids come back as int32, hence the upper bound.
  MLAMOE_CHECK(m->vocab_size >= 1 && m->vocab_size <= (int64_t{1} << 31),
               where << ": vocab_size must be in [1, 2^31], got " << m->vocab_size);
  MLAMOE_CHECK(m->eos_token_id >= 0 && m->eos_token_id < m->vocab_size,
               where << ": eos_token_id " << m->eos_token_id << " is outside [0, vocab_size " << m->vocab_size << ")");

  std::tie(m->tokens, m->num_tokens) = open_vector(file, "tokens", 4, where);
  MLAMOE_CHECK(m->num_tokens > 0, where << ": empty dataset (0 tokens)");
  int64_t num_offsets = 0;
  std::tie(m->offsets, num_offsets) = open_vector(file, "doc_offsets", 8, where);
  check_offsets(m->offsets.get(), num_offsets, m->num_tokens, where);
  m->num_docs = num_offsets - 1;
  if (H5Lexists(file, "loss_mask", H5P_DEFAULT) > 0) {
    int64_t n_mask = 0;
    std::tie(m->mask, n_mask) = open_vector(file, "loss_mask", 1, where);
    MLAMOE_CHECK(n_mask == m->num_tokens, where << ": loss_mask has " << n_mask << " entries, tokens " << m->num_tokens);
  }
  // The attributes that decide what a run reads; the arrays' chunks carry their own checksums.
  MLAMOE_CHECK(!m->checksummed || (h5_has_attribute(file, "header_checksum") &&
                                   static_cast<uint64_t>(h5_read_int_attribute(file, "header_checksum", where)) ==
                                       header_checksum(m->tokenizer, m->vocab_size, m->eos_token_id, m->num_tokens, m->num_docs,
                                                       m->mask.valid())),
               where << ": its attributes (tokenizer, vocab_size, eos_token_id, sizes) do not match their checksum: the file was "
                        "edited or damaged");
  return TokenDataset(std::move(m));
}

const std::string& TokenDataset::path() const { return impl_->path; }
int64_t TokenDataset::num_tokens() const { return impl_->num_tokens; }
int64_t TokenDataset::num_docs() const { return impl_->num_docs; }
int64_t TokenDataset::vocab_size() const { return impl_->vocab_size; }
int64_t TokenDataset::eos_token_id() const { return impl_->eos_token_id; }
const std::string& TokenDataset::tokenizer() const { return impl_->tokenizer; }

void TokenDataset::read(int64_t start, int64_t count, int32_t* out) const {
  const Impl& m = *impl_;
  MLAMOE_CHECK(start >= 0 && count >= 0 && start + count <= m.num_tokens, m.where << ": read of tokens [" << start << ", "
                                                                                  << start + count << ") is outside its "
                                                                                  << m.num_tokens << " tokens");
  // u32 straight into the int32 buffer (same size); ids >= 2^31 show up as >= vocab_size below.
  MLAMOE_CHECK(read_range(m.tokens.get(), H5T_NATIVE_UINT32, start, count, out),
               m.where << ": cannot read tokens [" << start << ", " << start + count << ")");
  const uint64_t vocab = static_cast<uint64_t>(m.vocab_size);
  for (int64_t i = 0; i < count; ++i) {
    uint32_t id = static_cast<uint32_t>(out[i]);
    MLAMOE_CHECK(id < vocab, m.where << ": token id " << id << " at position " << start + i << " is >= vocab_size " << vocab);
  }
}

bool TokenDataset::has_loss_mask() const { return impl_->mask.valid(); }
bool TokenDataset::checksummed() const { return impl_->checksummed; }

void TokenDataset::read_mask(int64_t start, int64_t count, uint8_t* out) const {
  const Impl& m = *impl_;
  MLAMOE_CHECK(start >= 0 && count >= 0 && start + count <= m.num_tokens, m.where << ": read of loss_mask [" << start << ", "
                                                                                  << start + count << ") is outside its "
                                                                                  << m.num_tokens << " tokens");
  if (!m.mask.valid()) {
    std::fill(out, out + count, uint8_t{1});
    return;
  }
  MLAMOE_CHECK(read_range(m.mask.get(), H5T_NATIVE_UINT8, start, count, out), m.where << ": cannot read loss_mask");
}

std::vector<int64_t> TokenDataset::read_doc_offsets() const {
  const Impl& m = *impl_;
  std::vector<int64_t> off(m.num_docs + 1);
  // Validated at open: every entry fits in int64 (<= num_tokens), so reading as int64 is exact.
  MLAMOE_CHECK(read_range(m.offsets.get(), H5T_NATIVE_INT64, 0, m.num_docs + 1, off.data()),
               m.where << ": cannot read 'doc_offsets'");
  return off;
}

}  // namespace mlamoe
