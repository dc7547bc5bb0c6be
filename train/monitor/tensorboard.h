// TensorBoard event files written by hand (no TensorFlow, no protobuf library): scalars and
// histograms (per-layer expert load) as `Event` protos in TFRecord framing, readable by an
// unmodified TensorBoard. Only the few message fields TensorBoard reads are encoded; reading event
// files back is not this file's business (tests/reference/read_tfevents.py uses TensorBoard's own).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace mlamoe {

// CRC-32C (Castagnoli), continuing from `crc` (0 to start): crc32c("123456789") == 0xE3069283.
uint32_t crc32c(const void* data, size_t n, uint32_t crc = 0);
// TFRecord's masked form: a CRC stored next to the bytes it covers, rotated and offset so that a CRC
// of data that itself holds CRCs does not degenerate.
uint32_t masked_crc32c(const void* data, size_t n);

// One event file, DIR/events.out.tfevents.<unix time>.<hostname>.mlamoe, opened for appending
// (a second writer started in the same second appends to the same file, which TensorBoard reads
// fine). Records of one step are held in memory and written with a single write() on flush(), or
// when a record for another step arrives, or on destruction: a killed run leaves whole steps.
// Not thread-safe; under MPI only one rank should own a writer.
class TensorBoardWriter {
 public:
  // Creates DIR and writes the file_version event and a SessionLog.START at `first_step`, the first
  // step this process will log. On a resume, TensorBoard then drops the events with step >=
  // first_step that earlier files hold, so steps redone since the checkpoint are drawn once. (Its
  // server ignores a run's first START, so every session must write one: hence here, not optional.)
  explicit TensorBoardWriter(const std::string& dir, int64_t first_step = 0);
  ~TensorBoardWriter();  // flushes (errors are swallowed)
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // Stored as a float32 simple_value (TensorBoard's scalar format): ~7 significant digits.
  void scalar(const std::string& tag, int64_t step, double value);
  // The distribution of `values` (e.g. tokens per expert of one MoE layer): exact min, max, num,
  // sum, sum of squares, and 30 equal-width buckets over [min, max]. Values must be finite.
  void histogram(const std::string& tag, int64_t step, const std::vector<double>& values);
  void flush();  // writes the held records; throws mlamoe::Error if the write fails

  const std::string& path() const { return path_; }

 private:
  void add_event(const std::string& event, int64_t step);

  std::string path_;
  int fd_ = -1;
  std::string pending_;  // whole TFRecords not yet written
  int64_t pending_step_ = 0;
};

}  // namespace mlamoe
