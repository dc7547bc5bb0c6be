// The token-data layer: the HDF5 token dataset (writer round trips, every validation error),
// `data prepare` with the byte tokenizer, and the training loader (windows, shuffle, resume, slices,
// held-out eval). Damaged files are made by editing a valid one with the HDF5 C API.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "data/byte_tokenizer.h"
#include "data/loader.h"
#include "data/prepare.h"
#include "data/token_dataset.h"
#include "model/tensor/error.h"
#include "model/tensor/random.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) { return std::string(MLAMOE_TEST_TMPDIR) + "/data_" + name; }

void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Runs `f` and expects an mlamoe::Error whose message contains `needle`.
void expect_error(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

std::string write_docs(const std::string& name, const std::vector<std::vector<int32_t>>& docs, int64_t vocab = 1000,
                       int64_t eos = 0) {
  std::string path = tmp(name);
  TokenDatasetWriter w(path, "test", vocab, eos);
  for (const auto& d : docs) w.append_document(d.data(), static_cast<int64_t>(d.size()));
  w.finish();
  return path;
}

std::vector<int32_t> read_all(const TokenDataset& ds) {
  std::vector<int32_t> out(ds.num_tokens());
  ds.read(0, ds.num_tokens(), out.data());
  return out;
}

// ---- Editing a valid file into a damaged one ----

void edit_file(const std::string& path, const std::function<void(hid_t)>& f) {
  hid_t file = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  ASSERT_GE(file, 0);
  f(file);
  H5Fclose(file);
}

template <typename T>
void replace_dataset(hid_t file, const char* name, hid_t file_type, hid_t mem_type, std::vector<hsize_t> dims,
                     const std::vector<T>& data) {
  if (H5Lexists(file, name, H5P_DEFAULT) > 0) H5Ldelete(file, name, H5P_DEFAULT);
  hid_t space = H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr);
  hid_t d = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  if (!data.empty()) H5Dwrite(d, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data());
  H5Dclose(d);
  H5Sclose(space);
}

void set_int_attr(hid_t file, const char* name, int64_t v) {
  if (H5Aexists(file, name) > 0) H5Adelete(file, name);
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, name, H5T_STD_I64LE, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, H5T_NATIVE_INT64, &v);
  H5Aclose(a);
  H5Sclose(space);
}

void set_string_attr(hid_t file, const char* name, const std::string& v) {
  if (H5Aexists(file, name) > 0) H5Adelete(file, name);
  hid_t type = H5Tcopy(H5T_C_S1);
  H5Tset_size(type, v.size());  // fixed length, as other writers may store it
  hid_t space = H5Screate(H5S_SCALAR);
  hid_t a = H5Acreate2(file, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  H5Awrite(a, type, v.data());
  H5Aclose(a);
  H5Sclose(space);
  H5Tclose(type);
}

// A valid 6-token, 2-document file, edited by `f`; then open() must fail with `needle`.
void expect_damaged(const std::string& name, const std::function<void(hid_t)>& f, const std::string& needle) {
  std::string path = write_docs("damaged_" + name + ".h5", {{1, 2, 3}, {4, 5, 6}});
  edit_file(path, f);
  expect_error([&] { TokenDataset::open(path); }, needle);
}

// ---- Token dataset ----

TEST(TokenDataset, RoundTripsDocuments) {
  std::vector<std::vector<int32_t>> docs = {{5, 6, 7}, {}, {999, 0, 1, 2}, {42}};
  std::string path = write_docs("round_trip.h5", docs, 1000, 999);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  TokenDataset ds = TokenDataset::open(path);
  EXPECT_EQ(ds.num_tokens(), 8);
  EXPECT_EQ(ds.num_docs(), 4);
  EXPECT_EQ(ds.vocab_size(), 1000);
  EXPECT_EQ(ds.eos_token_id(), 999);
  EXPECT_EQ(ds.tokenizer(), "test");
  EXPECT_EQ(ds.read_doc_offsets(), (std::vector<int64_t>{0, 3, 3, 7, 8}));
  EXPECT_EQ(read_all(ds), (std::vector<int32_t>{5, 6, 7, 999, 0, 1, 2, 42}));
  std::vector<int32_t> mid(3);
  ds.read(2, 3, mid.data());
  EXPECT_EQ(mid, (std::vector<int32_t>{7, 999, 0}));
}

TEST(TokenDataset, DocumentInPiecesEqualsWholeDocument) {
  std::string path = tmp("pieces.h5");
  {
    TokenDatasetWriter w(path, "test", 10, 9);
    std::vector<int32_t> a = {1, 2}, b = {3};
    w.append_tokens(a.data(), 2);
    w.append_tokens(b.data(), 1);
    w.end_document();
    w.append_document(b.data(), 1);
    EXPECT_EQ(w.num_tokens(), 4);
    EXPECT_EQ(w.num_docs(), 2);
    w.finish();
  }
  TokenDataset ds = TokenDataset::open(path);
  EXPECT_EQ(read_all(ds), (std::vector<int32_t>{1, 2, 3, 3}));
  EXPECT_EQ(ds.read_doc_offsets(), (std::vector<int64_t>{0, 3, 4}));
}

TEST(TokenDataset, WriterWithoutFinishLeavesNothing) {
  std::string path = tmp("abandoned.h5");
  fs::remove(path);
  {
    TokenDatasetWriter w(path, "test", 10, 0);
    std::vector<int32_t> a = {1, 2, 3};
    w.append_document(a.data(), 3);
    EXPECT_TRUE(fs::exists(path + ".tmp"));
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(path));
}

TEST(TokenDataset, WriterErrors) {
  std::string path = tmp("writer_errors.h5");
  expect_error([&] { TokenDatasetWriter(path, "t", 0, 0); }, "vocab_size must be in [1, 2^31], got 0");
  expect_error([&] { TokenDatasetWriter(path, "t", 10, 10); }, "eos_token_id 10 is outside [0, vocab_size 10)");
  expect_error([&] { TokenDatasetWriter("/nonexistent/dir/x.h5", "t", 10, 0); }, "cannot create '/nonexistent/dir/x.h5.tmp'");
  expect_error(
      [&] {
        TokenDatasetWriter w(path, "t", 10, 0);
        std::vector<int32_t> a = {1, 10};
        w.append_document(a.data(), 2);
      },
      "token id 10 in document 0 is outside [0, vocab_size 10)");
  expect_error([&] { TokenDatasetWriter(path, "t", 10, 0).finish(); }, "empty dataset");
  expect_error(
      [&] {
        TokenDatasetWriter w(path, "t", 10, 0);
        int32_t a = 1;
        w.append_tokens(&a, 1);
        w.finish();
      },
      "call end_document() first");
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(TokenDataset, OpenErrors) {
  expect_error([] { TokenDataset::open(tmp("does_not_exist.h5")); }, "data_does_not_exist.h5': no such file");
  write_file(tmp("not_hdf5.h5"), "just some text\n");
  expect_error([] { TokenDataset::open(tmp("not_hdf5.h5")); }, "data_not_hdf5.h5': not an HDF5 file");
  expect_error([] { TokenDataset::open(MLAMOE_TEST_TMPDIR); }, "is a directory");

  expect_damaged(
      "no_tokens", [](hid_t f) { H5Ldelete(f, "tokens", H5P_DEFAULT); }, "missing dataset 'tokens'");
  expect_damaged(
      "no_offsets", [](hid_t f) { H5Ldelete(f, "doc_offsets", H5P_DEFAULT); }, "missing dataset 'doc_offsets'");
  expect_damaged(
      "no_vocab", [](hid_t f) { H5Adelete(f, "vocab_size"); }, "missing attribute 'vocab_size'");
  expect_damaged(
      "no_eos", [](hid_t f) { H5Adelete(f, "eos_token_id"); }, "missing attribute 'eos_token_id'");
  expect_damaged(
      "no_tokenizer", [](hid_t f) { H5Adelete(f, "tokenizer"); }, "missing attribute 'tokenizer'");
  expect_damaged(
      "no_format", [](hid_t f) { H5Adelete(f, "format"); }, "missing attribute 'format'");
  expect_damaged(
      "bad_format", [](hid_t f) { set_string_attr(f, "format", "other"); },
      "attribute 'format' is 'other', expected 'mlamoe-tokens'");
  expect_damaged(
      "bad_version", [](hid_t f) { set_int_attr(f, "format_version", 3); }, "format_version 3 is not supported");
  expect_damaged(
      "edited_vocab", [](hid_t f) { set_int_attr(f, "vocab_size", 999); },
      "its attributes (tokenizer, vocab_size, eos_token_id, sizes) do not match their checksum");
  expect_damaged(
      "edited_tokenizer", [](hid_t f) { set_string_attr(f, "tokenizer", "other.json"); }, "do not match their checksum");
  expect_damaged(
      "vocab_string", [](hid_t f) { set_string_attr(f, "vocab_size", "1000"); },
      "attribute 'vocab_size' must be an integer, got string");
  expect_damaged(
      "vocab_zero", [](hid_t f) { set_int_attr(f, "vocab_size", 0); }, "vocab_size must be in [1, 2^31], got 0");
  expect_damaged(
      "eos_range", [](hid_t f) { set_int_attr(f, "eos_token_id", 1000); }, "eos_token_id 1000 is outside");

  std::vector<float> f32(6, 1.0f);
  expect_damaged(
      "tokens_float", [&](hid_t f) { replace_dataset(f, "tokens", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, {6}, f32); },
      "dataset 'tokens' must be uint32, got float32");
  std::vector<int64_t> i64(6, 1);
  expect_damaged(
      "tokens_int64", [&](hid_t f) { replace_dataset(f, "tokens", H5T_STD_I64LE, H5T_NATIVE_INT64, {6}, i64); },
      "dataset 'tokens' must be uint32, got int64");
  std::vector<uint32_t> u32(6, 1);
  expect_damaged(
      "tokens_rank2",
      [&](hid_t f) {
        replace_dataset(f, "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, {2, 3}, u32);
      },
      "dataset 'tokens' must be 1-D, got rank 2");
  expect_damaged(
      "offsets_u32", [&](hid_t f) { replace_dataset(f, "doc_offsets", H5T_STD_U32LE, H5T_NATIVE_UINT32, {3}, u32); },
      "dataset 'doc_offsets' must be uint64, got uint32");
  expect_damaged(
      "no_tokens_at_all",
      [](hid_t f) { replace_dataset(f, "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, {0}, std::vector<uint32_t>{}); },
      "empty dataset (0 tokens)");

  auto offsets = [](std::vector<uint64_t> v) {
    return [v](hid_t f) { replace_dataset(f, "doc_offsets", H5T_STD_U64LE, H5T_NATIVE_UINT64, {v.size()}, v); };
  };
  expect_damaged("offsets_start", offsets({1, 3, 6}), "doc_offsets must start at 0, got 1");
  expect_damaged("offsets_decrease", offsets({0, 4, 3, 6}), "doc_offsets decrease at entry 2 (3 after 4)");
  expect_damaged("offsets_end", offsets({0, 3, 5}), "doc_offsets end at 5 but 'tokens' has 6 entries");
  expect_damaged("offsets_empty", offsets({}), "'doc_offsets' is empty");
}

TEST(TokenDataset, ReadChecksRangeAndVocabulary) {
  std::string path = write_docs("vocab_check.h5", {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, 10, 0);
  // Ids past the vocabulary in the tokens array (the header, and so its checksum, unchanged).
  std::vector<uint32_t> ids = {0, 1, 2, 3, 4, 12, 6, 7, 8, 9};
  edit_file(path, [&](hid_t f) { replace_dataset(f, "tokens", H5T_STD_U32LE, H5T_NATIVE_UINT32, {10}, ids); });
  TokenDataset ds = TokenDataset::open(path);  // ids are checked as they are read, not at open
  std::vector<int32_t> out(10);
  ds.read(0, 5, out.data());
  expect_error([&] { ds.read(3, 4, out.data()); }, "data_vocab_check.h5': token id 12 at position 5 is >= vocab_size 10");
  expect_error([&] { ds.read(8, 3, out.data()); }, "read of tokens [8, 11) is outside its 10 tokens");
  expect_error([&] { ds.read(-1, 1, out.data()); }, "is outside its 10 tokens");
}

// A format_version 1 file (before checksums) is still read, and says it is not checksummed.
TEST(TokenDataset, Version1IsReadUnverified) {
  std::string path = write_docs("v1.h5", {{0, 1, 2, 3}}, 10, 0);
  EXPECT_TRUE(TokenDataset::open(path).checksummed());
  edit_file(path, [](hid_t f) {
    set_int_attr(f, "format_version", 1);
    H5Adelete(f, "header_checksum");
  });
  TokenDataset ds = TokenDataset::open(path);
  EXPECT_FALSE(ds.checksummed());
  EXPECT_EQ(ds.num_tokens(), 4);
}

// A file whose chunk index records a stored size of 4 GiB for an 80-byte chunk (found by
// fuzz_token_dataset: HDF5 allocated the recorded size before reading) fails at open, one line.
TEST(TokenDataset, ImpossibleStoredChunkSizeFailsAtOpen) {
  std::string path = std::string(MLAMOE_SOURCE_DIR) + "/tests/fuzz/seeds/fuzz_token_dataset/stored-chunk-size-4gib.h5";
  expect_error([&] { TokenDataset::open(path); },
               "dataset 'tokens' stores its chunk at element 0 in 4294967211 bytes, more than its 80 bytes of data can take");
}

// Every array is stored with a checksum per chunk: a flipped byte fails its read, never reads as
// other tokens.
TEST(TokenDataset, DamagedChunkFailsItsRead) {
  std::string path = write_docs("chunk_check.h5", {{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, 10, 0);
  haddr_t at;
  {
    hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t ds = H5Dopen2(f, "tokens", H5P_DEFAULT);
    hsize_t chunk_offset = 0;
    unsigned filter_mask = 0;
    hsize_t size = 0;
    hid_t space = H5Dget_space(ds);
    ASSERT_GE(H5Dget_chunk_info(ds, space, 0, &chunk_offset, &filter_mask, &at, &size), 0);
    ASSERT_EQ(size, 10 * 4 + 4u);  // ten u32 ids and the Fletcher-32 sum
    H5Sclose(space);
    H5Dclose(ds);
    H5Fclose(f);
  }
  {
    std::fstream io(path, std::ios::in | std::ios::out | std::ios::binary);
    io.seekp(static_cast<std::streamoff>(at + 8));
    char c = 0x77;
    io.write(&c, 1);
  }
  TokenDataset ds = TokenDataset::open(path);
  std::vector<int32_t> out(10);
  expect_error([&] { ds.read(0, 10, out.data()); }, "cannot read tokens [0, 10)");
}

// ---- data prepare ----

TEST(Prepare, ByteTokenizerRoundTrip) {
  const std::string a = "h\xC3\xA9llo \xE2\x82\xAC\n";  // UTF-8: "héllo €"
  const std::string b = std::string("\x00\xFF\x01", 3);
  write_file(tmp("a.txt"), a);
  write_file(tmp("empty.txt"), "");
  write_file(tmp("b.txt"), b);
  std::string out = tmp("prepared.h5");
  PrepareStats s = prepare_text_dataset({tmp("a.txt"), tmp("empty.txt"), tmp("b.txt")}, out, "byte", true);
  EXPECT_EQ(s.docs, 3);
  EXPECT_EQ(s.bytes, static_cast<int64_t>(a.size() + b.size()));
  EXPECT_EQ(s.tokens, s.bytes + 3);
  EXPECT_GE(s.seconds, 0.0);

  TokenDataset ds = TokenDataset::open(out);
  EXPECT_EQ(ds.tokenizer(), "byte");
  EXPECT_EQ(ds.vocab_size(), kByteDatasetVocab);
  EXPECT_EQ(ds.eos_token_id(), kByteEosId);
  std::vector<int32_t> want = byte_encode(a);
  want.push_back(kByteEosId);
  want.push_back(kByteEosId);  // the empty file is a document holding only its EOS
  for (int32_t id : byte_encode(b)) want.push_back(id);
  want.push_back(kByteEosId);
  EXPECT_EQ(read_all(ds), want);
  int64_t na = static_cast<int64_t>(a.size()) + 1;
  EXPECT_EQ(ds.read_doc_offsets(), (std::vector<int64_t>{0, na, na + 1, ds.num_tokens()}));
}

TEST(Prepare, LargeFileStreamsInChunks) {
  // 3 MB: three 1 MiB reads, and token chunks of 1M ids crossed on both write and read.
  std::string text(3'000'001, '\0');
  Rng rng(7);
  for (char& c : text) c = static_cast<char>(rng.next_u64() & 0xFF);
  write_file(tmp("big.txt"), text);
  std::string out = tmp("big.h5");
  PrepareStats s = prepare_text_dataset({tmp("big.txt")}, out, "byte", true);
  EXPECT_EQ(s.tokens, 3'000'002);
  TokenDataset ds = TokenDataset::open(out);
  std::vector<int32_t> all = read_all(ds);
  ASSERT_EQ(all.size(), text.size() + 1);
  for (size_t i = 0; i < text.size(); ++i) ASSERT_EQ(all[i], static_cast<unsigned char>(text[i])) << "token " << i;
  EXPECT_EQ(all.back(), kByteEosId);
  std::vector<int32_t> piece(100);  // a read straddling the first chunk boundary
  ds.read((1 << 20) - 50, 100, piece.data());
  EXPECT_TRUE(std::equal(piece.begin(), piece.end(), all.begin() + (1 << 20) - 50));
}

TEST(Prepare, Errors) {
  write_file(tmp("one.txt"), "one document");
  write_file(tmp("zero1.txt"), "");
  write_file(tmp("zero2.txt"), "");
  std::string out = tmp("prepare_errors.h5");
  fs::remove(out);
  expect_error([&] { prepare_text_dataset({}, out, "byte", false); }, "no input files");
  expect_error(
      [&] {
        prepare_text_dataset({tmp("one.txt"), "/nonexistent/a.txt"}, out, "byte", false);
      },
      "cannot open input '/nonexistent/a.txt': No such file or directory");
  expect_error([&] { prepare_text_dataset({MLAMOE_TEST_TMPDIR}, out, "byte", false); }, "is a directory, expected a text file");
  expect_error([&] { prepare_text_dataset({tmp("one.txt")}, out, "gpt2", false); },
               "unknown tokenizer 'gpt2' (supported: byte, or a Hugging Face tokenizer.json path)");
  expect_error(
      [&] {
        prepare_text_dataset({tmp("zero1.txt"), tmp("zero2.txt")}, out, "byte", false);
      },
      "empty corpus: the 2 input file(s) hold 0 bytes");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));

  // An existing output is kept unless overwrite is given; a failed run never touches it.
  write_file(out, "precious");
  expect_error([&] { prepare_text_dataset({tmp("one.txt")}, out, "byte", false); },
               "output '" + out + "' exists; pass --overwrite to replace it");
  expect_error([&] { prepare_text_dataset({tmp("zero1.txt")}, out, "byte", true); }, "empty corpus");
  std::ifstream kept(out);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(kept), {}), "precious");
  prepare_text_dataset({tmp("one.txt")}, out, "byte", true);
  EXPECT_EQ(TokenDataset::open(out).num_tokens(), 13);
}

// ---- Loader ----

// One document whose token i is i: a window's first token says where it starts.
std::string counting_dataset(const std::string& name, int32_t n) {
  std::vector<int32_t> ids(n);
  for (int32_t i = 0; i < n; ++i) ids[i] = i;
  return write_docs(name, {ids}, n, 0);
}

constexpr int64_t kSeq = 8;
constexpr int64_t kRow = kSeq + 1;

std::vector<int64_t> draw(TokenLoader& l, int64_t n) {
  std::vector<int64_t> out(n * kRow);
  l.next_batch(n, out.data());
  return out;
}

TEST(Loader, SplitsAndWindows) {
  std::string path = counting_dataset("count1000.h5", 1000);
  TokenLoader l(path, kSeq, 1, 0.1);
  EXPECT_EQ(l.vocab_size(), 1000);
  EXPECT_EQ(l.train_tokens(), 900);
  EXPECT_EQ(l.eval_tokens(), 100);
  EXPECT_EQ(l.windows_per_epoch(), 899 / kSeq);  // the last window needs its target token
  EXPECT_EQ(l.eval_windows(), 99 / kSeq);
  std::vector<int64_t> b = draw(l, 30);
  for (int64_t r = 0; r < 30; ++r) {
    int64_t start = b[r * kRow];
    EXPECT_EQ(start % kSeq, 0);
    EXPECT_LE(start + kSeq, 899);  // inside the train part
    for (int64_t j = 0; j < kRow; ++j) EXPECT_EQ(b[r * kRow + j], start + j);
  }
  TokenLoader no_eval(path, kSeq, 1, 0.0);
  EXPECT_EQ(no_eval.train_tokens(), 1000);
  EXPECT_EQ(no_eval.eval_windows(), 0);
  EXPECT_EQ(TokenLoader(counting_dataset("count9.h5", 9), kSeq, 1, 0.0).windows_per_epoch(), 1);
}

TEST(Loader, EpochVisitsEveryWindowOnce) {
  TokenLoader l(counting_dataset("count_epoch.h5", 1000), kSeq, 3, 0.1);
  const int64_t w = l.windows_per_epoch();
  std::vector<int64_t> epoch0, epoch1;
  for (int e = 0; e < 2; ++e) {
    std::vector<int64_t> b = draw(l, w);
    std::vector<int64_t>& starts = e == 0 ? epoch0 : epoch1;
    for (int64_t r = 0; r < w; ++r) starts.push_back(b[r * kRow] / kSeq);
    std::vector<int64_t> sorted = starts;
    std::sort(sorted.begin(), sorted.end());
    for (int64_t i = 0; i < w; ++i) ASSERT_EQ(sorted[i], i) << "epoch " << e;
  }
  EXPECT_NE(epoch0, epoch1);  // a fresh permutation each epoch
  EXPECT_EQ(l.state().epoch, 2);
  EXPECT_EQ(l.state().index, 0);
}

TEST(Loader, SeedsAreDeterministic) {
  std::string path = counting_dataset("count_seed.h5", 1000);
  TokenLoader a(path, kSeq, 42, 0.1), b(path, kSeq, 42, 0.1), c(path, kSeq, 43, 0.1);
  std::vector<int64_t> ba = draw(a, 200), bb = draw(b, 200), bc = draw(c, 200);
  EXPECT_EQ(ba, bb);
  EXPECT_NE(ba, bc);
}

TEST(Loader, ResumeContinuesExactly) {
  std::string path = counting_dataset("count_resume.h5", 1000);
  TokenLoader a(path, kSeq, 5, 0.1);
  draw(a, 70);
  LoaderState saved = a.state();
  EXPECT_EQ(saved.epoch, 0);
  EXPECT_EQ(saved.index, 70);
  std::vector<int64_t> rest = draw(a, 150);  // crosses into epoch 1
  TokenLoader b(path, kSeq, 5, 0.1);
  b.set_state(saved);
  EXPECT_EQ(draw(b, 150), rest);
  EXPECT_EQ(b.state().epoch, a.state().epoch);
  EXPECT_EQ(b.state().index, a.state().index);
  expect_error([&] { b.set_state({0, a.windows_per_epoch()}); }, "is outside its 112 windows per epoch");
  expect_error([&] { b.set_state({-1, 0}); }, "loader position (epoch -1, index 0)");
}

TEST(Loader, SliceEqualsSliceOfGlobalBatch) {
  std::string path = counting_dataset("count_slice.h5", 1000);
  TokenLoader global(path, kSeq, 9, 0.1), rank(path, kSeq, 9, 0.1);
  for (int step = 0; step < 8; ++step) {  // 8 x 40 windows: crosses two epoch boundaries
    std::vector<int64_t> all = draw(global, 40);
    std::vector<int64_t> part(15 * kRow);
    rank.next_batch_slice(40, 10, 15, part.data());
    EXPECT_TRUE(std::equal(part.begin(), part.end(), all.begin() + 10 * kRow)) << "step " << step;
    EXPECT_EQ(rank.state().index, global.state().index);
    EXPECT_EQ(rank.state().epoch, global.state().epoch);
  }
  std::vector<int64_t> part(kRow);
  expect_error([&] { rank.next_batch_slice(4, 3, 2, part.data()); }, "slice [3, 5) is not inside a batch of 4 windows");
}

TEST(Loader, EvalWindowsAreHeldOut) {
  TokenLoader l(counting_dataset("count_eval.h5", 1000), kSeq, 1, 0.1);
  const int64_t n = l.eval_windows();
  std::vector<int64_t> e(n * kRow);
  l.eval_batch(0, n, e.data());
  for (int64_t r = 0; r < n; ++r) {
    EXPECT_EQ(e[r * kRow], l.train_tokens() + r * kSeq);  // in order, no shuffle
    for (int64_t j = 0; j < kRow; ++j) EXPECT_EQ(e[r * kRow + j], e[r * kRow] + j);
  }
  std::set<int64_t> train_tokens;
  std::vector<int64_t> t = draw(l, l.windows_per_epoch());
  train_tokens.insert(t.begin(), t.end());
  for (int64_t id : e) EXPECT_EQ(train_tokens.count(id), 0u) << "token " << id << " is in both parts";
  std::vector<int64_t> one(kRow);
  expect_error([&] { l.eval_batch(n - 1, 2, one.data()); }, "eval windows [11, 13) are outside its 12 eval windows");
}

TEST(Loader, Errors) {
  std::string small = counting_dataset("count20.h5", 20);
  expect_error([&] { TokenLoader(small, 32, 1, 0.0); }, "data_count20.h5 has 20 training tokens, too few for seq_len 32");
  expect_error([&] { TokenLoader(small, 8, 1, 0.6); }, "data_count20.h5 has 8 training tokens, too few for seq_len 8");
  expect_error([&] { TokenLoader(small, 8, 1, 0.2); },
               "eval_fraction 0.2 of 20 tokens holds out 4 tokens, fewer than seq_len + 1 = 9");
  expect_error([&] { TokenLoader(small, 8, 1, 1.0); }, "eval_fraction must be in [0, 1), got 1");
  expect_error([&] { TokenLoader(small, 0, 1, 0.0); }, "seq_len must be >= 1, got 0");
  expect_error([&] { TokenLoader(tmp("missing.h5"), 8, 1, 0.0); }, "data_missing.h5': no such file");
}

}  // namespace
}  // namespace mlamoe
