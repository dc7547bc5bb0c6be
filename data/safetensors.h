// Hugging Face safetensors files: an 8-byte little-endian header length N, N bytes of JSON
// ({name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}), then the raw
// little-endian tensor bytes, offsets relative to the end of the header.
//
// Everything here streams: the reader parses only the header and reads one tensor with pread, the
// writer spools tensor bytes to a temporary file. A 600 GB checkpoint therefore never needs more
// memory than its largest tensor (in f32) plus a small staging buffer.
//
// A model directory holds either one `model.safetensors` or shards listed by
// `model.safetensors.index.json` ({"metadata": {"total_size"}, "weight_map": {name: shard}}).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlamoe {

// ---- element formats (all conversions into f32 are exact; into 16 bits round to nearest even) ----
float f16_to_float(uint16_t h);
uint16_t float_to_f16(float f);  // overflow gives ±inf, NaN stays NaN
// E4M3 (OCP FP8, "fn"): 1 sign, 4 exponent bits (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN.
float fp8_e4m3_to_float(uint8_t v);
// Bytes per element of a safetensors dtype string ("BF16" -> 2); 0 for an unknown one.
size_t safetensors_dtype_size(const std::string& dtype);

struct SafetensorsInfo {
  std::string dtype;            // "BF16", "F16", "F32", "F8_E4M3", ...
  std::vector<int64_t> shape;   // [] is a scalar
  uint64_t begin = 0, end = 0;  // byte range inside the data area
  int64_t numel() const;
};

// One safetensors file, opened read-only. open() validates the whole header (its length fits the
// file; every entry has a known dtype, a shape, byte count = numel × dtype size, a range inside the
// data area; no two ranges overlap) and throws a one-line mlamoe::Error naming the file and tensor.
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  SafetensorsFile(SafetensorsFile&& o) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& o) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  std::vector<std::string> names() const;  // in data order
  bool contains(const std::string& name) const { return tensors_.count(name) != 0; }
  const SafetensorsInfo& info(const std::string& name) const;   // throws naming the file for an absent name
  const nlohmann::json& metadata() const { return metadata_; }  // "__metadata__" ({} when absent)
  // Reads just this tensor (BF16, F16, F32, F64 or F8_E4M3) and widens it to f32; out is resized.
  // F8 values come back unscaled: see dequantize_fp8_blocks.
  void read_f32(const std::string& name, std::vector<float>& out) const;

 private:
  SafetensorsFile() = default;
  std::string path_;
  int fd_ = -1;
  uint64_t data_start_ = 0;
  std::map<std::string, SafetensorsInfo> tensors_;
  nlohmann::json metadata_ = nlohmann::json::object();
};

// Block-scaled FP8 (DeepSeek-V3's release): w [rows, cols] holds fp8 values widened to f32 and is
// multiplied in place by scale_inv [ceil(rows/block_rows), ceil(cols/block_cols)] per block; the
// last row and column of blocks may be partial. `what` names the tensor in messages.
void dequantize_fp8_blocks(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& scale_inv,
                           const std::vector<int64_t>& scale_shape, int64_t block_rows, int64_t block_cols,
                           const std::string& what);

// Writes one safetensors file. The header is kept in memory; tensor bytes go to <path>.data.tmp as
// they come, and finish() assembles header + data into <path>.tmp and renames it to <path>. A
// writer destroyed before finish() removes its temporaries and leaves <path> untouched.
class SafetensorsWriter {
 public:
  // dtype: the default storage type, "BF16", "F16" or "F32"; metadata "format": "pt" is always set
  // (transformers refuses files without it).
  SafetensorsWriter(const std::string& path, const std::string& dtype);
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;
  ~SafetensorsWriter();

  // Appends a tensor from f32 values (numel(shape) of them); dtype "" means the writer's default.
  void add(const std::string& name, const std::vector<int64_t>& shape, const float* data, const std::string& dtype = "");
  void set_metadata(const std::string& key, const std::string& value);
  uint64_t data_bytes() const { return offset_; }
  size_t count() const { return header_.size(); }
  void finish();

 private:
  std::string path_, dtype_;
  int data_fd_ = -1;
  uint64_t offset_ = 0;
  nlohmann::json header_ = nlohmann::json::object();
  std::map<std::string, std::string> metadata_;
  bool finished_ = false;
};

// The tensors of a Hugging Face model directory, from its index or its single model.safetensors.
// Every shard's header is validated at open; each tensor listed by the index must be in its shard.
class SafetensorsDir {
 public:
  static SafetensorsDir open(const std::string& dir);
  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const SafetensorsInfo& info(const std::string& name) const;
  const SafetensorsFile& file_of(const std::string& name) const;
  void read_f32(const std::string& name, std::vector<float>& out) const { file_of(name).read_f32(name, out); }
  size_t shard_count() const { return shards_.size(); }

 private:
  std::string dir_;
  std::vector<SafetensorsFile> shards_;
  std::map<std::string, size_t> where_;  // tensor -> index into shards_
};

// Writes tensors into DIR as HF shards: model-0000i-of-0000K.safetensors of at most max_shard_bytes
// each (a bigger tensor gets a shard of its own) plus model.safetensors.index.json, or a single
// model.safetensors when everything fits in one shard, as transformers' save_pretrained does.
class SafetensorsDirWriter {
 public:
  SafetensorsDirWriter(const std::string& dir, const std::string& dtype, uint64_t max_shard_bytes);
  SafetensorsDirWriter(const SafetensorsDirWriter&) = delete;
  SafetensorsDirWriter& operator=(const SafetensorsDirWriter&) = delete;
  ~SafetensorsDirWriter();  // before finish(): removes the shards written so far
  void add(const std::string& name, const std::vector<int64_t>& shape, const float* data, const std::string& dtype = "");
  // Returns the file names written, shards first and the index last.
  std::vector<std::string> finish();

 private:
  std::string shard_tmp_name(size_t i) const;
  std::string dir_, dtype_;
  uint64_t max_bytes_;
  std::unique_ptr<SafetensorsWriter> current_;
  std::vector<std::vector<std::string>> shard_names_;  // tensors of each shard
  uint64_t total_ = 0;
  bool finished_ = false;
};

}  // namespace mlamoe
