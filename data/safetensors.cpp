// Safetensors reader and writers (see safetensors.h). Plain POSIX I/O: pread for the reader so a
// tensor is read where it lies, without mapping or loading the rest of a possibly huge file.
#include "data/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

#include "model/config.h"
#include "model/json_parse.h"
#include "model/tensor/dtype.h"
#include "model/tensor/error.h"

namespace mlamoe {

static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian; this code copies it as is");

namespace {

namespace fs = std::filesystem;

// The reference implementation refuses headers above 100 MB; so do we, before allocating one.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;
// Elements converted per pread/write: bounds the staging buffer whatever the tensor size.
constexpr int64_t kChunkElements = 1 << 20;

std::string file_where(const std::string& path) { return "safetensors file '" + path + "'"; }

void pread_all(int fd, void* dst, uint64_t bytes, uint64_t offset, const std::string& what) {
  auto* p = static_cast<char*>(dst);
  while (bytes > 0) {
    ssize_t got = ::pread(fd, p, std::min<uint64_t>(bytes, 1ull << 30), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    MLAMOE_CHECK(got > 0, what << ": " << (got == 0 ? "unexpected end of file (truncated?)" : std::strerror(errno)));
    p += got, bytes -= static_cast<uint64_t>(got), offset += static_cast<uint64_t>(got);
  }
}

void write_all(int fd, const void* src, uint64_t bytes, const std::string& what) {
  auto* p = static_cast<const char*>(src);
  while (bytes > 0) {
    ssize_t put = ::write(fd, p, std::min<uint64_t>(bytes, 1ull << 30));
    if (put < 0 && errno == EINTR) continue;
    MLAMOE_CHECK(put > 0, "cannot write " << what << ": " << std::strerror(errno) << " (disk full?)");
    p += put, bytes -= static_cast<uint64_t>(put);
  }
}

// numel of a shape, or -1 when it overflows int64.
int64_t checked_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// One header entry, checked against the data area of `data_size` bytes.
SafetensorsInfo parse_entry(const nlohmann::json& e, uint64_t data_size, const std::string& where) {
  MLAMOE_CHECK(e.is_object() && e.contains("dtype") && e.contains("shape") && e.contains("data_offsets"),
               where << ": header entry needs \"dtype\", \"shape\" and \"data_offsets\"");
  SafetensorsInfo info;
  MLAMOE_CHECK(e["dtype"].is_string(), where << ": \"dtype\" must be a string");
  info.dtype = e["dtype"].get<std::string>();
  size_t es = safetensors_dtype_size(info.dtype);
  MLAMOE_CHECK(es > 0, where << ": unknown dtype '" << info.dtype << "'");
  MLAMOE_CHECK(e["shape"].is_array(), where << ": \"shape\" must be an array");
  for (const auto& d : e["shape"]) {
    MLAMOE_CHECK(d.is_number_unsigned() || (d.is_number_integer() && d.get<int64_t>() >= 0),
                 where << ": \"shape\" must hold non-negative integers, got " << e["shape"].dump());
    info.shape.push_back(d.get<int64_t>());
  }
  const auto& off = e["data_offsets"];
  MLAMOE_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() && off[1].is_number_unsigned(),
               where << ": \"data_offsets\" must be [begin, end] with non-negative integers, got " << off.dump());
  info.begin = off[0].get<uint64_t>();
  info.end = off[1].get<uint64_t>();
  MLAMOE_CHECK(info.begin <= info.end, where << ": data_offsets [" << info.begin << ", " << info.end << "] run backwards");
  MLAMOE_CHECK(info.end <= data_size, where << ": data_offsets [" << info.begin << ", " << info.end
                                            << "] reach beyond the data area of " << data_size << " bytes (truncated file?)");
  int64_t n = checked_numel(info.shape);
  uint64_t want = 0;
  MLAMOE_CHECK(n >= 0 && !__builtin_mul_overflow(static_cast<uint64_t>(n), es, &want),
               where << ": shape " << shape_text(info.shape) << " is too large");
  MLAMOE_CHECK(info.end - info.begin == want, where << ": holds " << info.end - info.begin << " bytes, but " << info.dtype << " "
                                                    << shape_text(info.shape) << " needs " << want);
  return info;
}

// Rounds f32 values into `dtype` ("BF16", "F16", "F32") little-endian bytes at dst.
void encode(const float* src, int64_t n, const std::string& dtype, char* dst) {
  if (dtype == "F32") {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
  } else if (dtype == "BF16") {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t b = float_to_bf16(src[i]).bits;
      std::memcpy(dst + 2 * i, &b, 2);
    }
  } else {
    for (int64_t i = 0; i < n; ++i) {
      uint16_t h = float_to_f16(src[i]);
      std::memcpy(dst + 2 * i, &h, 2);
    }
  }
}

void check_writable_dtype(const std::string& dtype, const std::string& where) {
  MLAMOE_CHECK(dtype == "BF16" || dtype == "F16" || dtype == "F32",
               where << ": cannot write dtype '" << dtype << "' (supported: BF16, F16, F32)");
}

}  // namespace

// ---- element formats ----

float f16_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ffu;
  float mag;
  if (e == 0) {
    mag = std::ldexp(static_cast<float>(m), -24);  // subnormal: m · 2^-24
  } else if (e == 31) {
    mag = m ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  } else {
    uint32_t bits = ((e + 112) << 23) | (m << 13);  // rebias 15 -> 127
    std::memcpy(&mag, &bits, 4);
  }
  uint32_t u;
  std::memcpy(&u, &mag, 4);
  u |= sign;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t float_to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  uint32_t ax = x & 0x7fffffffu;
  if (ax > 0x7f800000u) return sign | 0x7e00u;   // NaN
  if (ax >= 0x477ff000u) return sign | 0x7c00u;  // >= 65520 (halfway past 65504) rounds to inf
  if (ax < 0x38800000u) {                        // below 2^-14: an f16 subnormal, in units of 2^-24
    float a;
    std::memcpy(&a, &ax, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(a * 16777216.0f));  // exact scaling, then RNE (the default mode)
  }
  uint32_t h = (((ax >> 23) - 112) << 10) | ((ax >> 13) & 0x3ffu);
  uint32_t rest = ax & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is still right
  return sign | static_cast<uint16_t>(h);
}

float fp8_e4m3_to_float(uint8_t v) {
  static const std::array<float, 256> table = [] {
    std::array<float, 256> t{};
    for (int c = 0; c < 256; ++c) {
      int e = (c >> 3) & 15, m = c & 7;
      float mag = e == 15 && m == 7 ? std::numeric_limits<float>::quiet_NaN()
                  : e == 0          ? std::ldexp(static_cast<float>(m), -9)  // subnormal: m/8 · 2^-6
                                    : std::ldexp(static_cast<float>(8 + m), e - 10);
      t[c] = (c & 0x80) ? -mag : mag;
    }
    return t;
  }();
  return table[v];
}

size_t safetensors_dtype_size(const std::string& d) {
  static const std::map<std::string, size_t> sizes = {{"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E4M3", 1}, {"F8_E5M2", 1},
                                                      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
                                                      {"U32", 4},  {"F32", 4}, {"I64", 8}, {"U64", 8},     {"F64", 8}};
  auto it = sizes.find(d);
  return it == sizes.end() ? 0 : it->second;
}

int64_t SafetensorsInfo::numel() const { return checked_numel(shape); }

// ---- reader ----

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  std::string where = file_where(path);
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  MLAMOE_CHECK(f.fd_ >= 0, "cannot open " << where << ": " << std::strerror(errno));
  struct stat st {};
  MLAMOE_CHECK(::fstat(f.fd_, &st) == 0 && S_ISREG(st.st_mode), where << " is not a regular file");
  uint64_t size = static_cast<uint64_t>(st.st_size);
  MLAMOE_CHECK(size >= 8, where << " is " << size << " bytes, too short for the 8-byte header length (truncated?)");
  unsigned char len[8];
  pread_all(f.fd_, len, 8, 0, where);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  MLAMOE_CHECK(n <= size - 8,
               where << ": header length " << n << " runs past the end of the " << size << "-byte file (truncated?)");
  MLAMOE_CHECK(n <= kMaxHeaderBytes, where << ": header length " << n << " exceeds the 100 MB limit");
  std::string text(n, '\0');
  pread_all(f.fd_, text.data(), n, 8, where);
  nlohmann::json header = parse_json(text, where + ": header");  // depth-limited (a crafted `shape` 100k deep)
  MLAMOE_CHECK(header.is_object(), where << ": the header must be a JSON object");
  f.data_start_ = 8 + n;
  uint64_t data_size = size - f.data_start_;
  for (const auto& [name, e] : header.items()) {
    if (name == "__metadata__") {
      MLAMOE_CHECK(e.is_object(), where << ": \"__metadata__\" must be an object");
      f.metadata_ = e;
      continue;
    }
    f.tensors_[name] = parse_entry(e, data_size, where + ", tensor '" + name + "'");
  }
  // Overlap check on the byte ranges in data order; empty tensors occupy nothing.
  std::vector<std::pair<const std::string*, const SafetensorsInfo*>> order;
  for (const auto& [name, info] : f.tensors_)
    if (info.end > info.begin) order.push_back({&name, &info});
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.second->begin < b.second->begin; });
  for (size_t i = 1; i < order.size(); ++i)
    MLAMOE_CHECK(order[i].second->begin >= order[i - 1].second->end,
                 where << ": tensors '" << *order[i - 1].first << "' and '" << *order[i].first << "' overlap (bytes ["
                       << order[i].second->begin << ", " << order[i - 1].second->end << "))");
  return f;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      fd_(o.fd_),
      data_start_(o.data_start_),
      tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)) {
  o.fd_ = -1;
}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = o.fd_;
    data_start_ = o.data_start_;
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
    o.fd_ = -1;
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> out;
  for (const auto& [name, info] : tensors_) out.push_back(name);
  std::stable_sort(out.begin(), out.end(),
                   [&](const auto& a, const auto& b) { return tensors_.at(a).begin < tensors_.at(b).begin; });
  return out;
}

const SafetensorsInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = tensors_.find(name);
  MLAMOE_CHECK(it != tensors_.end(), file_where(path_) << " has no tensor '" << name << "'");
  return it->second;
}

void SafetensorsFile::read_f32(const std::string& name, std::vector<float>& out) const {
  const SafetensorsInfo& in = info(name);
  std::string where = file_where(path_) + ", tensor '" + name + "'";
  const std::string& dt = in.dtype;
  MLAMOE_CHECK(dt == "F32" || dt == "BF16" || dt == "F16" || dt == "F64" || dt == "F8_E4M3",
               where << ": dtype " << dt << " does not convert to f32 (supported: BF16, F16, F32, F64, F8_E4M3)");
  int64_t n = in.numel();
  out.resize(static_cast<size_t>(n));
  uint64_t pos = data_start_ + in.begin;
  if (dt == "F32") {
    pread_all(fd_, out.data(), in.end - in.begin, pos, where);
    return;
  }
  size_t es = safetensors_dtype_size(dt);
  std::vector<char> stage(static_cast<size_t>(std::min<int64_t>(n, kChunkElements)) * es);
  for (int64_t first = 0; first < n; first += kChunkElements) {
    int64_t m = std::min<int64_t>(kChunkElements, n - first);
    pread_all(fd_, stage.data(), static_cast<uint64_t>(m) * es, pos + static_cast<uint64_t>(first) * es, where);
    float* dst = out.data() + first;
    const char* s = stage.data();
    if (dt == "BF16") {
      for (int64_t i = 0; i < m; ++i) {
        bf16 b;
        std::memcpy(&b.bits, s + 2 * i, 2);
        dst[i] = bf16_to_float(b);
      }
    } else if (dt == "F16") {
      for (int64_t i = 0; i < m; ++i) {
        uint16_t h;
        std::memcpy(&h, s + 2 * i, 2);
        dst[i] = f16_to_float(h);
      }
    } else if (dt == "F64") {
      for (int64_t i = 0; i < m; ++i) {
        double d;
        std::memcpy(&d, s + 8 * i, 8);
        dst[i] = static_cast<float>(d);
      }
    } else {
      for (int64_t i = 0; i < m; ++i) dst[i] = fp8_e4m3_to_float(static_cast<uint8_t>(s[i]));
    }
  }
}

void dequantize_fp8_blocks(std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& scale_inv,
                           const std::vector<int64_t>& scale_shape, int64_t block_rows, int64_t block_cols,
                           const std::string& what) {
  MLAMOE_CHECK(block_rows > 0 && block_cols > 0, what << ": FP8 block size must be positive");
  MLAMOE_CHECK(static_cast<int64_t>(w.size()) == rows * cols,
               what << ": expected " << rows * cols << " values, got " << w.size());
  std::vector<int64_t> want = {(rows + block_rows - 1) / block_rows, (cols + block_cols - 1) / block_cols};
  MLAMOE_CHECK(scale_shape == want && static_cast<int64_t>(scale_inv.size()) == want[0] * want[1],
               what << ": scale_inv has shape " << shape_text(scale_shape) << ", expected " << shape_text(want) << " for "
                    << shape_text({rows, cols}) << " in blocks of " << block_rows << "x" << block_cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* s = scale_inv.data() + (r / block_rows) * want[1];
    float* row = w.data() + r * cols;
    for (int64_t c = 0; c < cols; ++c) row[c] *= s[c / block_cols];
  }
}

// ---- writer ----

SafetensorsWriter::SafetensorsWriter(const std::string& path, const std::string& dtype) : path_(path), dtype_(dtype) {
  check_writable_dtype(dtype, file_where(path));
  std::string data = path + ".data.tmp";
  data_fd_ = ::open(data.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MLAMOE_CHECK(data_fd_ >= 0, "cannot create '" << data << "': " << std::strerror(errno));
}

SafetensorsWriter::~SafetensorsWriter() {
  if (data_fd_ >= 0) ::close(data_fd_);
  if (!finished_) {
    ::unlink((path_ + ".data.tmp").c_str());
    ::unlink((path_ + ".tmp").c_str());
  }
}

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) { metadata_[key] = value; }

void SafetensorsWriter::add(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                            const std::string& dtype) {
  std::string where = file_where(path_) + ", tensor '" + name + "'";
  MLAMOE_CHECK(!finished_, where << ": the file is already finished");
  MLAMOE_CHECK(!name.empty() && name != "__metadata__" && !header_.contains(name),
               where << ": empty, reserved or duplicate name");
  std::string dt = dtype.empty() ? dtype_ : dtype;
  check_writable_dtype(dt, where);
  int64_t n = checked_numel(shape);
  MLAMOE_CHECK(n >= 0 && std::all_of(shape.begin(), shape.end(), [](int64_t d) { return d >= 0; }),
               where << ": bad shape " << shape_text(shape));
  size_t es = safetensors_dtype_size(dt);
  std::vector<char> stage(static_cast<size_t>(std::min<int64_t>(n, kChunkElements)) * es);
  for (int64_t first = 0; first < n; first += kChunkElements) {
    int64_t m = std::min<int64_t>(kChunkElements, n - first);
    encode(data + first, m, dt, stage.data());
    write_all(data_fd_, stage.data(), static_cast<uint64_t>(m) * es, "'" + path_ + ".data.tmp'");
  }
  uint64_t bytes = static_cast<uint64_t>(n) * es;
  header_[name] = {{"dtype", dt}, {"shape", shape}, {"data_offsets", {offset_, offset_ + bytes}}};
  offset_ += bytes;
}

void SafetensorsWriter::finish() {
  MLAMOE_CHECK(!finished_, file_where(path_) << " is already finished");
  nlohmann::json h = header_;
  nlohmann::json meta = {{"format", "pt"}};
  for (const auto& [k, v] : metadata_) meta[k] = v;
  h["__metadata__"] = meta;
  std::string text = h.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the reference writer does
  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  MLAMOE_CHECK(fd >= 0, "cannot create '" << tmp << "': " << std::strerror(errno));
  try {
    unsigned char len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
    write_all(fd, len, 8, "'" + tmp + "'");
    write_all(fd, text.data(), n, "'" + tmp + "'");
    std::vector<char> buf(std::min<uint64_t>(offset_, 8ull << 20));
    for (uint64_t pos = 0; pos < offset_; pos += buf.size()) {
      uint64_t m = std::min<uint64_t>(buf.size(), offset_ - pos);
      pread_all(data_fd_, buf.data(), m, pos, "'" + path_ + ".data.tmp'");
      write_all(fd, buf.data(), m, "'" + tmp + "'");
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  MLAMOE_CHECK(::close(fd) == 0, "cannot close '" << tmp << "': " << std::strerror(errno) << " (disk full?)");
  std::error_code ec;
  fs::rename(tmp, path_, ec);
  MLAMOE_CHECK(!ec, "cannot rename '" << tmp << "' to '" << path_ << "': " << ec.message());
  finished_ = true;
  ::close(data_fd_);
  data_fd_ = -1;
  ::unlink((path_ + ".data.tmp").c_str());
}

// ---- model directories ----

SafetensorsDir SafetensorsDir::open(const std::string& dir) {
  SafetensorsDir d;
  d.dir_ = dir;
  std::string where = "model directory '" + dir + "'";
  MLAMOE_CHECK(fs::is_directory(dir), where << " does not exist or is not a directory");
  fs::path index = fs::path(dir) / "model.safetensors.index.json", single = fs::path(dir) / "model.safetensors";
  if (fs::exists(index)) {
    nlohmann::json j = read_json_file(index.string());
    std::string iw = "index '" + index.string() + "'";
    MLAMOE_CHECK(j.is_object() && j.contains("weight_map") && j["weight_map"].is_object(), iw << " has no \"weight_map\" object");
    std::map<std::string, size_t> shard_of_file;
    for (const auto& [name, file] : j["weight_map"].items()) {
      MLAMOE_CHECK(file.is_string(), iw << ": the shard of tensor '" << name << "' must be a file name");
      std::string fname = file.get<std::string>();
      MLAMOE_CHECK(!fname.empty() && fname.find('/') == std::string::npos && fname != "." && fname != "..",
                   iw << ": tensor '" << name << "' names shard '" << fname << "', not a file name in the directory");
      if (!shard_of_file.count(fname)) shard_of_file[fname] = 0;
    }
    for (auto& [fname, i] : shard_of_file) {  // sorted, so shard order is the file-name order
      MLAMOE_CHECK(fs::exists(fs::path(dir) / fname), iw << " lists shard '" << fname << "', which does not exist");
      i = d.shards_.size();
      d.shards_.push_back(SafetensorsFile::open((fs::path(dir) / fname).string()));
    }
    for (const auto& [name, file] : j["weight_map"].items()) {
      size_t i = shard_of_file.at(file.get<std::string>());
      MLAMOE_CHECK(d.shards_[i].contains(name),
                   iw << " puts tensor '" << name << "' in '" << file.get<std::string>() << "', which does not hold it");
      d.where_[name] = i;
    }
  } else {
    MLAMOE_CHECK(fs::exists(single), where << " has neither model.safetensors.index.json nor model.safetensors");
    d.shards_.push_back(SafetensorsFile::open(single.string()));
    for (const auto& name : d.shards_[0].names()) d.where_[name] = 0;
  }
  return d;
}

std::vector<std::string> SafetensorsDir::names() const {
  std::vector<std::string> out;
  for (const auto& [name, i] : where_) out.push_back(name);
  return out;
}

const SafetensorsFile& SafetensorsDir::file_of(const std::string& name) const {
  auto it = where_.find(name);
  MLAMOE_CHECK(it != where_.end(), "model directory '" << dir_ << "' has no tensor '" << name << "'");
  return shards_[it->second];
}

const SafetensorsInfo& SafetensorsDir::info(const std::string& name) const { return file_of(name).info(name); }

SafetensorsDirWriter::SafetensorsDirWriter(const std::string& dir, const std::string& dtype, uint64_t max_shard_bytes)
    : dir_(dir), dtype_(dtype), max_bytes_(max_shard_bytes) {
  check_writable_dtype(dtype, "model directory '" + dir + "'");
  MLAMOE_CHECK(max_shard_bytes > 0, "model directory '" << dir << "': the shard size must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  MLAMOE_CHECK(fs::is_directory(dir), "cannot create directory '" << dir << "'" << (ec ? ": " + ec.message() : ""));
}

SafetensorsDirWriter::~SafetensorsDirWriter() {
  if (finished_) return;
  current_.reset();
  std::error_code ec;
  for (size_t i = 0; i < shard_names_.size(); ++i) fs::remove(fs::path(dir_) / shard_tmp_name(i), ec);
}

std::string SafetensorsDirWriter::shard_tmp_name(size_t i) const {
  char buf[48];
  std::snprintf(buf, sizeof buf, ".shard-%05zu.safetensors.part", i + 1);
  return buf;
}

void SafetensorsDirWriter::add(const std::string& name, const std::vector<int64_t>& shape, const float* data,
                               const std::string& dtype) {
  int64_t n = checked_numel(shape);
  uint64_t bytes = static_cast<uint64_t>(std::max<int64_t>(n, 0)) * safetensors_dtype_size(dtype.empty() ? dtype_ : dtype);
  if (current_ && current_->count() > 0 && current_->data_bytes() + bytes > max_bytes_) {
    current_->finish();
    current_.reset();
  }
  if (!current_) {
    current_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / shard_tmp_name(shard_names_.size())).string(), dtype_);
    shard_names_.emplace_back();
  }
  current_->add(name, shape, data, dtype);
  shard_names_.back().push_back(name);
  total_ += bytes;
}

std::vector<std::string> SafetensorsDirWriter::finish() {
  if (!current_ && shard_names_.empty()) {  // no tensors at all: still a valid (empty) file
    current_ = std::make_unique<SafetensorsWriter>((fs::path(dir_) / shard_tmp_name(0)).string(), dtype_);
    shard_names_.emplace_back();
  }
  if (current_) current_->finish();
  current_.reset();
  size_t k = shard_names_.size();
  std::vector<std::string> files;
  nlohmann::json weight_map = nlohmann::json::object();
  for (size_t i = 0; i < k; ++i) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05zu.safetensors", i + 1, k);
    std::string final_name = k == 1 ? "model.safetensors" : buf;
    std::error_code ec;
    fs::rename(fs::path(dir_) / shard_tmp_name(i), fs::path(dir_) / final_name, ec);
    MLAMOE_CHECK(!ec, "cannot rename shard " << i + 1 << " to '" << final_name << "' in '" << dir_ << "': " << ec.message());
    files.push_back(final_name);
    for (const auto& name : shard_names_[i]) weight_map[name] = final_name;
  }
  finished_ = true;  // the shards are in place; a failure below leaves them for the caller to clean up
  if (k > 1) {
    nlohmann::json index = {{"metadata", {{"total_size", total_}}}, {"weight_map", weight_map}};
    fs::path path = fs::path(dir_) / "model.safetensors.index.json", tmp = path.string() + ".tmp";
    {
      std::string text = index.dump(2) + "\n";
      int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
      MLAMOE_CHECK(fd >= 0, "cannot create '" << tmp.string() << "': " << std::strerror(errno));
      try {
        write_all(fd, text.data(), text.size(), "'" + tmp.string() + "'");
      } catch (...) {
        ::close(fd);
        throw;
      }
      ::close(fd);
    }
    std::error_code ec;
    fs::rename(tmp, path, ec);
    MLAMOE_CHECK(!ec, "cannot rename '" << tmp.string() << "': " << ec.message());
    files.push_back("model.safetensors.index.json");
  }
  return files;
}

}  // namespace mlamoe
