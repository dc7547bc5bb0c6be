// TensorBoard event files: CRC-32C, TFRecord framing and hand-encoded protobuf (see tensorboard.h).
// Field numbers are those of tensorflow/core/util/event.proto and framework/summary.proto.
#include "train/monitor/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <limits>

#include "model/tensor/error.h"

namespace mlamoe {

namespace {

// Reflected Castagnoli polynomial 0x1EDC6F41: the CRC TFRecord uses (not zlib's CRC-32).
constexpr std::array<uint32_t, 256> make_crc32c_table() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    t[i] = c;
  }
  return t;
}
constexpr std::array<uint32_t, 256> kCrc32cTable = make_crc32c_table();

constexpr int kHistogramBuckets = 30;

// ---- protobuf wire format (only what Event needs) ----
enum Wire : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7F) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}
void put_tag(std::string& out, uint32_t field, Wire wire) { put_varint(out, (field << 3) | wire); }
template <typename T>
void put_le(std::string& out, T v) {  // protobuf and TFRecord are little-endian whatever the host is
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}
void put_double(std::string& out, uint32_t field, double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  put_tag(out, field, kFixed64);
  put_le(out, bits);
}
void put_float(std::string& out, uint32_t field, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  put_tag(out, field, kFixed32);
  put_le(out, bits);
}
void put_bytes(std::string& out, uint32_t field, const std::string& bytes) {
  put_tag(out, field, kBytes);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_packed_doubles(std::string& out, uint32_t field, const std::vector<double>& v) {
  std::string body;
  for (double x : v) {
    uint64_t bits;
    std::memcpy(&bits, &x, 8);
    put_le(body, bits);
  }
  put_bytes(out, field, body);
}

// Event{wall_time = 1, step = 2}: the prefix every event shares.
std::string event_header(int64_t step) {
  double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::string e;
  put_double(e, 1, now);
  put_tag(e, 2, kVarint);
  put_varint(e, static_cast<uint64_t>(step));  // int64: negative steps are 10-byte two's complement
  return e;
}

// Event{summary = 5: Summary{value = 1: Value{tag = 1, <payload>}}}.
std::string summary_event(int64_t step, const std::string& tag, const std::string& value_payload) {
  std::string value;
  put_bytes(value, 1, tag);
  value += value_payload;
  std::string summary;
  put_bytes(summary, 1, value);
  std::string e = event_header(step);
  put_bytes(e, 5, summary);
  return e;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

}  // namespace

uint32_t crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < n; ++i) crc = kCrc32cTable[(crc ^ p[i]) & 0xFF] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t n) {
  uint32_t crc = crc32c(data, n);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

TensorBoardWriter::TensorBoardWriter(const std::string& dir, int64_t first_step) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  MLAMOE_CHECK(!ec, "tensorboard: cannot create directory '" << dir << "': " << ec.message());
  path_ =
      (std::filesystem::path(dir) / ("events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host_name() + ".mlamoe"))
          .string();
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  MLAMOE_CHECK(fd_ >= 0, "tensorboard: cannot open '" << path_ << "' for appending: " << std::strerror(errno));
  // TensorBoard takes "brain.Event:2" to mean: restarts are marked by SessionLog.START events,
  // not guessed from steps going backwards.
  std::string e = event_header(0);
  put_bytes(e, 3, "brain.Event:2");
  add_event(e, 0);
  std::string log;  // SessionLog{status = 1: START = 1}
  put_tag(log, 1, kVarint);
  put_varint(log, 1);
  std::string start = event_header(first_step);
  put_bytes(start, 7, log);  // Event.session_log (6 is the deprecated log_message)
  add_event(start, first_step);
  flush();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    flush();
  } catch (const Error&) {
    // Nowhere to report it from a destructor; the run's own logs (metrics.jsonl) are complete.
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::scalar(const std::string& tag, int64_t step, double value) {
  std::string payload;
  put_float(payload, 2, static_cast<float>(value));  // Value.simple_value
  add_event(summary_event(step, tag, payload), step);
}

void TensorBoardWriter::histogram(const std::string& tag, int64_t step, const std::vector<double>& values) {
  double lo = 0, hi = 0, sum = 0, sum_squares = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    double v = values[i];
    MLAMOE_CHECK(std::isfinite(v), "tensorboard: histogram '" << tag << "' needs finite values, got " << v << " at index " << i);
    lo = i == 0 ? v : std::min(lo, v);
    hi = i == 0 ? v : std::max(hi, v);
    sum += v;
    sum_squares += v * v;
  }
  // Equal-width buckets over [min, max] rather than TF's exponential ones: expert loads sit in a
  // narrow band far from 0, where exponential buckets would put everything in one or two bars.
  // Bucket i counts limit[i-1] <= v < limit[i] (TF's rule); the last limit is DBL_MAX as TF writes
  // it, and TensorBoard draws the outer edges at min and max. All-equal values get one bucket.
  std::vector<double> limits;
  if (hi > lo) {
    double width = (hi - lo) / kHistogramBuckets;
    for (int i = 1; i < kHistogramBuckets; ++i) limits.push_back(lo + i * width);
  }
  limits.push_back(std::numeric_limits<double>::max());
  std::vector<double> counts(limits.size(), 0.0);
  for (double v : values) counts[std::upper_bound(limits.begin(), limits.end(), v) - limits.begin()] += 1;

  std::string histo;  // HistogramProto
  put_double(histo, 1, lo);
  put_double(histo, 2, hi);
  put_double(histo, 3, static_cast<double>(values.size()));
  put_double(histo, 4, sum);
  put_double(histo, 5, sum_squares);
  put_packed_doubles(histo, 6, limits);
  put_packed_doubles(histo, 7, counts);
  std::string payload;
  put_bytes(payload, 5, histo);  // Value.histo
  add_event(summary_event(step, tag, payload), step);
}

void TensorBoardWriter::add_event(const std::string& event, int64_t step) {
  if (!pending_.empty() && step != pending_step_) flush();  // keep each step's records together
  pending_step_ = step;
  // TFRecord: uint64 length, masked CRC of those 8 bytes, data, masked CRC of the data.
  std::string len;
  put_le(len, static_cast<uint64_t>(event.size()));
  pending_ += len;
  put_le(pending_, masked_crc32c(len.data(), len.size()));
  pending_ += event;
  put_le(pending_, masked_crc32c(event.data(), event.size()));
}

void TensorBoardWriter::flush() {
  size_t done = 0;
  while (done < pending_.size()) {
    ssize_t n = ::write(fd_, pending_.data() + done, pending_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = n < 0 ? errno : ENOSPC;
      pending_.erase(0, done);  // a retry must not write the same bytes twice
      MLAMOE_CHECK(false, "tensorboard: cannot write '" << path_ << "': " << std::strerror(err));
    }
    done += static_cast<size_t>(n);
  }
  pending_.clear();
}

}  // namespace mlamoe
