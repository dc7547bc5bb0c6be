// train/monitor/tensorboard.h: CRC-32C on published vectors, the TFRecord framing and Event fields re-parsed
// by a small reader here, whole steps on disk after each flush, and then TensorBoard's own loaders
// (tests/reference/read_tfevents.py; skipped when the `tensorboard` package is missing) reading back
// scalars, histograms and a resume that must hide the steps it redoes.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "model/tensor/error.h"
#include "train/monitor/tensorboard.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

std::string fresh_dir(const std::string& name) {
  std::string d = std::string(MLAMOE_TEST_TMPDIR) + "/tensorboard/" + name;
  fs::remove_all(d);
  return d;
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

template <typename T>
T le(const std::string& s, size_t at) {
  T v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<T>(static_cast<unsigned char>(s[at + i])) << (8 * i);
  return v;
}

// TFRecord reader: every record's two CRCs checked, nothing left over.
std::vector<std::string> read_records(const std::string& path) {
  std::string s = read_all(path);
  std::vector<std::string> out;
  size_t at = 0;
  while (at < s.size()) {
    EXPECT_LE(at + 12, s.size()) << "truncated header at byte " << at;
    if (at + 12 > s.size()) break;
    uint64_t len = le<uint64_t>(s, at);
    EXPECT_EQ(le<uint32_t>(s, at + 8), masked_crc32c(s.data() + at, 8)) << "length CRC at byte " << at;
    EXPECT_LE(at + 12 + len + 4, s.size()) << "truncated record at byte " << at;
    if (at + 12 + len + 4 > s.size()) break;
    std::string data = s.substr(at + 12, len);
    EXPECT_EQ(le<uint32_t>(s, at + 12 + len), masked_crc32c(data.data(), data.size())) << "data CRC at byte " << at;
    out.push_back(data);
    at += 12 + len + 4;
  }
  return out;
}

// Protobuf fields of one message: number -> raw value (varint/fixed as integer bits, bytes as string).
struct Field {
  uint32_t wire;
  uint64_t bits;
  std::string bytes;
};
std::multimap<uint32_t, Field> parse_message(const std::string& m) {
  std::multimap<uint32_t, Field> out;
  size_t at = 0;
  auto varint = [&] {
    uint64_t v = 0;
    for (int shift = 0; at < m.size(); shift += 7) {
      auto b = static_cast<unsigned char>(m[at++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) break;
    }
    return v;
  };
  while (at < m.size()) {
    uint64_t key = varint();
    Field f{static_cast<uint32_t>(key & 7), 0, ""};
    if (f.wire == 0) {
      f.bits = varint();
    } else if (f.wire == 1 || f.wire == 5) {
      f.bits = f.wire == 1 ? le<uint64_t>(m, at) : le<uint32_t>(m, at);
      at += f.wire == 1 ? 8 : 4;
    } else {
      EXPECT_EQ(f.wire, 2u) << "unexpected wire type";
      uint64_t n = varint();
      f.bytes = m.substr(at, n);
      at += n;
    }
    out.emplace(static_cast<uint32_t>(key >> 3), f);
  }
  return out;
}

double as_double(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, 8);
  return d;
}

TEST(TensorBoard, Crc32cKnownVectors) {
  // RFC 3720 (iSCSI) appendix B.4 and the usual check value.
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("", 0), 0u);
  std::vector<unsigned char> zeros(32, 0), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) up[i] = static_cast<unsigned char>(i), down[i] = static_cast<unsigned char>(31 - i);
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(up.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(down.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("56789", 5, crc32c("1234", 4)), 0xE3069283u) << "continuing a CRC";
  EXPECT_EQ(masked_crc32c("", 0), 0xa282ead8u);
  uint32_t c = 0xE3069283u;
  EXPECT_EQ(masked_crc32c("123456789", 9), ((c >> 15) | (c << 17)) + 0xa282ead8u);
}

TEST(TensorBoard, FramingAndEventFields) {
  std::string dir = fresh_dir("framing"), path;
  double before = static_cast<double>(std::time(nullptr));
  {
    TensorBoardWriter w(dir);
    path = w.path();
    w.scalar("loss/lm", 1, 5.5);
    w.scalar("lr", 1, 3e-4);
    w.histogram("experts/model.layers.1.mlp/load", 1, {3, 1, 4, 1, 5});
    w.scalar("loss/lm", 2, 5.25);
  }
  EXPECT_EQ(fs::path(path).parent_path(), fs::path(dir));
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u) << path;
  EXPECT_EQ(fs::path(path).extension(), ".mlamoe");

  std::vector<std::string> records = read_records(path);
  ASSERT_EQ(records.size(), 6u);
  auto first = parse_message(records[0]);
  ASSERT_EQ(first.count(1), 1u);
  EXPECT_EQ(first.find(1)->second.wire, 1u);
  double wall = as_double(first.find(1)->second.bits);
  EXPECT_GE(wall, before - 1);
  EXPECT_LE(wall, before + 60);
  ASSERT_EQ(first.count(3), 1u);
  EXPECT_EQ(first.find(3)->second.bytes, "brain.Event:2");
  auto start = parse_message(records[1]);  // SessionLog{status: START} at step 0
  ASSERT_EQ(start.count(7), 1u);
  EXPECT_EQ(start.count(2) ? start.find(2)->second.bits : 0u, 0u);
  auto log = parse_message(start.find(7)->second.bytes);
  EXPECT_EQ(log.find(1)->second.bits, 1u);

  struct Want {
    int64_t step;
    std::string tag;
  } want[] = {{1, "loss/lm"}, {1, "lr"}, {1, "experts/model.layers.1.mlp/load"}, {2, "loss/lm"}};
  for (size_t i = 0; i < 4; ++i) {
    auto ev = parse_message(records[i + 2]);
    ASSERT_EQ(ev.count(2), 1u);
    EXPECT_EQ(static_cast<int64_t>(ev.find(2)->second.bits), want[i].step);
    ASSERT_EQ(ev.count(5), 1u);
    auto summary = parse_message(ev.find(5)->second.bytes);
    ASSERT_EQ(summary.count(1), 1u);
    auto value = parse_message(summary.find(1)->second.bytes);
    EXPECT_EQ(value.find(1)->second.bytes, want[i].tag);
    if (i == 2) {
      auto histo = parse_message(value.find(5)->second.bytes);
      EXPECT_EQ(as_double(histo.find(1)->second.bits), 1.0);   // min
      EXPECT_EQ(as_double(histo.find(2)->second.bits), 5.0);   // max
      EXPECT_EQ(as_double(histo.find(3)->second.bits), 5.0);   // num
      EXPECT_EQ(as_double(histo.find(4)->second.bits), 14.0);  // sum
      EXPECT_EQ(as_double(histo.find(5)->second.bits), 52.0);  // sum_squares
      const std::string& limits = histo.find(6)->second.bytes;
      ASSERT_EQ(limits.size(), 30u * 8);
      EXPECT_EQ(as_double(le<uint64_t>(limits, limits.size() - 8)), DBL_MAX);
    } else {
      float v;
      uint32_t bits = static_cast<uint32_t>(value.find(2)->second.bits);
      std::memcpy(&v, &bits, 4);
      EXPECT_EQ(v, static_cast<float>(i == 0 ? 5.5 : i == 1 ? 3e-4 : 5.25));
    }
  }
}

TEST(TensorBoard, EachStepReachesDiskWhole) {
  std::string dir = fresh_dir("flush");
  TensorBoardWriter w(dir);
  EXPECT_EQ(read_records(w.path()).size(), 2u) << "file_version and SessionLog.START are written at once";
  w.scalar("a", 1, 1.0);
  w.scalar("b", 1, 2.0);
  EXPECT_EQ(read_records(w.path()).size(), 2u) << "a step's records are held until the step is done";
  w.scalar("a", 2, 3.0);
  EXPECT_EQ(read_records(w.path()).size(), 4u) << "a new step writes the previous one";
  w.flush();
  EXPECT_EQ(read_records(w.path()).size(), 5u);
}

TEST(TensorBoard, RejectsNonFiniteHistogram) {
  TensorBoardWriter w(fresh_dir("nonfinite"));
  EXPECT_THROW(w.histogram("x", 1, {1.0, std::nan("")}), Error);
}

// read_tfevents.py on PATH (output kept as tensorboard/NAME.json); sets `skip` when TensorBoard is
// not installed.
json tensorboard_read(const std::string& path, const std::string& name, std::string& skip) {
  std::string out = std::string(MLAMOE_TEST_TMPDIR) + "/tensorboard/" + name + ".json", err = out + ".stderr";
  std::string cmd = std::string(MLAMOE_TORCH_PYTHON) + " " + MLAMOE_SOURCE_DIR + "/tests/reference/read_tfevents.py " + path +
                    " >" + out + " 2>" + err;
  int status = std::system(cmd.c_str());
  int rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::string message = read_all(err);
  while (!message.empty() && message.back() == '\n') message.pop_back();
  if (rc == 77 || rc == 127) {
    skip = "TensorBoard reader skipped: " + (rc == 127 ? "no python at " + std::string(MLAMOE_TORCH_PYTHON) : message);
    return {};
  }
  EXPECT_EQ(rc, 0) << "read_tfevents.py failed: " << message;
  return rc == 0 ? json::parse(read_all(out)) : json();
}

std::vector<double> expert_load(int64_t step) {  // 16 experts, integer token counts
  std::vector<double> v;
  for (int e = 0; e < 16; ++e) v.push_back(static_cast<double>(100 + (e * 37 + step * 11) % 29 - (e == 3 ? 60 : 0)));
  return v;
}

TEST(TensorBoard, TensorBoardReadsScalarsAndHistograms) {
  std::string dir = fresh_dir("read"), path;
  std::map<std::string, std::vector<double>> hists;  // tag -> values written at step 7
  hists["experts/model.layers.1.mlp/load"] = expert_load(7);
  hists["experts/model.layers.2.mlp/load"] = {42, 42, 42, 42};  // all equal: one bucket
  hists["experts/one"] = {-2.5};
  {
    TensorBoardWriter w(dir);
    path = w.path();
    for (int64_t step = 1; step <= 7; ++step) {
      w.scalar("loss/lm", step, 6.0 / static_cast<double>(step));
      w.scalar("lr", step, 3e-4 * static_cast<double>(step));
      w.histogram("experts/model.layers.1.mlp/load", step, expert_load(step));
      w.flush();
    }
    w.scalar("loss/big_step", int64_t{1} << 40, 1.0);
    for (const auto& [tag, values] : hists)
      if (tag != "experts/model.layers.1.mlp/load") w.histogram(tag, 7, values);
  }
  std::string skip;
  json tb = tensorboard_read(path, "read", skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_FALSE(tb.is_null());
  std::cout << "reference: tensorboard " << tb["tensorboard_version"].get<std::string>() << "\n";
  EXPECT_EQ(tb["file_version"], "brain.Event:2");

  // Scalars: right steps, values as the float32 they were stored as.
  const json& lm = tb["scalars"]["loss/lm"];
  ASSERT_EQ(lm.size(), 7u);
  for (int64_t step = 1; step <= 7; ++step) {
    EXPECT_EQ(lm[step - 1][0].get<int64_t>(), step);
    EXPECT_EQ(lm[step - 1][1].get<double>(), static_cast<float>(6.0 / static_cast<double>(step)));
    EXPECT_EQ(tb["scalars"]["lr"][step - 1][1].get<double>(), static_cast<float>(3e-4 * static_cast<double>(step)));
  }
  EXPECT_EQ(tb["scalars"]["loss/big_step"][0][0].get<int64_t>(), int64_t{1} << 40);

  // Histograms: the exact statistics, counts that add up, TF's +DBL_MAX last limit.
  ASSERT_EQ(tb["histograms"]["experts/model.layers.1.mlp/load"].size(), 7u);
  for (const auto& [tag, values] : hists) {
    SCOPED_TRACE(tag);
    const json& h = tb["histograms"][tag].back();
    EXPECT_EQ(h["step"].get<int64_t>(), 7);
    double lo = values[0], hi = values[0], sum = 0, sq = 0;
    for (double v : values) lo = std::min(lo, v), hi = std::max(hi, v), sum += v, sq += v * v;
    EXPECT_EQ(h["min"].get<double>(), lo);
    EXPECT_EQ(h["max"].get<double>(), hi);
    EXPECT_EQ(h["num"].get<double>(), static_cast<double>(values.size()));
    EXPECT_EQ(h["sum"].get<double>(), sum);
    EXPECT_EQ(h["sum_squares"].get<double>(), sq);
    std::vector<double> limits = h["bucket_limit"], counts = h["bucket"];
    ASSERT_EQ(limits.size(), counts.size());
    EXPECT_EQ(limits.back(), DBL_MAX);
    EXPECT_EQ(limits.size(), lo == hi ? 1u : 30u);
    double total = 0;
    for (double c : counts) total += c;
    EXPECT_EQ(total, static_cast<double>(values.size()));

    // What the server draws: a histogram-plugin tensor of [left, right, count] rows spanning [min, max].
    const json& t = tb["tensors"][tag];
    EXPECT_EQ(t["plugin"], "histograms");
    const json& rows = t["events"].back()[1];
    ASSERT_FALSE(rows.empty());
    EXPECT_EQ(rows.front()[0].get<double>(), static_cast<float>(lo));
    EXPECT_EQ(rows.back()[1].get<double>(), static_cast<float>(hi));
    double drawn = 0;
    for (const json& r : rows) {
      EXPECT_LE(r[0].get<double>(), r[1].get<double>());
      drawn += r[2].get<double>();
    }
    EXPECT_EQ(drawn, static_cast<double>(values.size()));
  }
  EXPECT_EQ(tb["tensors"]["loss/lm"]["plugin"], "scalars");
  EXPECT_EQ(tb["tensors"]["loss/lm"]["events"].size(), 7u);
}

// A run killed after step 5 and resumed from its step-3 checkpoint redoes steps 4..5: the resumed
// writer's SessionLog.START at step 4 makes TensorBoard show the new values for them, once each.
// Resumed in the same second the writer appends to the first file; otherwise it starts a second one.
class TensorBoardResume : public ::testing::TestWithParam<bool> {};

TEST_P(TensorBoardResume, HidesRedoneSteps) {
  bool second_file = GetParam();
  std::string name = second_file ? "resume_two_files" : "resume_one_file", dir = fresh_dir(name);
  {
    TensorBoardWriter w(dir);
    for (int64_t step = 1; step <= 5; ++step) w.scalar("loss/lm", step, static_cast<double>(step));
    w.histogram("experts/load", 5, {1, 2});
    if (second_file) fs::rename(w.path(), dir + "/events.out.tfevents.1000000000.old.mlamoe");  // an older run
  }
  {
    TensorBoardWriter w(dir, 4);
    for (int64_t step = 4; step <= 6; ++step) w.scalar("loss/lm", step, 10.0 * static_cast<double>(step));
  }
  int files = 0;
  for (const auto& f : fs::directory_iterator(dir)) files += f.path().filename().string().find("tfevents") != std::string::npos;
  EXPECT_EQ(files, second_file ? 2 : 1);
  std::string skip;
  json tb = tensorboard_read(dir, name, skip);
  if (!skip.empty()) GTEST_SKIP() << skip;
  ASSERT_FALSE(tb.is_null());
  json want = json::array({{1, 1.0}, {2, 2.0}, {3, 3.0}, {4, 40.0}, {5, 50.0}, {6, 60.0}});
  EXPECT_EQ(tb["scalars"]["loss/lm"], want) << "event_accumulator";
  EXPECT_EQ(tb["tensors"]["loss/lm"]["events"].size(), 6u) << "plugin_event_accumulator (the server's)";
  EXPECT_EQ(tb["tensors"]["loss/lm"]["events"][3][1], 40.0);
  EXPECT_TRUE(tb["histograms"]["experts/load"].empty()) << "the step-5 histogram was redone (here: not at all)";
}

INSTANTIATE_TEST_SUITE_P(TensorBoard, TensorBoardResume, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "SecondFile" : "SameFile"; });

}  // namespace
}  // namespace mlamoe
