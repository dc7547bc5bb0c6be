// Safetensors files (data/safetensors.h): writer/reader round trips in F32, BF16 and F16 with
// round-to-nearest-even, every FP8 E4M3 code against the format's formula, block dequantisation
// with partial edge blocks, sharded directories, and damaged headers — each one error line naming
// the file and the tensor. Files the writer cannot make (F8, broken headers) are written raw here.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>

#include "data/safetensors.h"
#include "model/tensor/dtype.h"
#include "model/tensor/error.h"
#include "tests/test_util.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  fs::create_directories(std::string(MLAMOE_TEST_TMPDIR) + "/safetensors");
  return std::string(MLAMOE_TEST_TMPDIR) + "/safetensors/" + name;
}

using test::expect_error;

// A safetensors file from a header text and the data area, byte for byte.
void write_raw(const std::string& path, const std::string& header, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) f.put(static_cast<char>(n >> (8 * i)));
  f << header << data;
}

template <class T>
std::string bytes_of(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.37f * static_cast<float>(i)) + 1e-3f * static_cast<float>(i % 17);
  return v;
}

TEST(Safetensors, F32RoundTripIsExactAndStreamsLargeTensors) {
  std::string path = tmp("f32.safetensors");
  std::vector<float> a = ramp(12, 1.0f), big = ramp((1 << 20) + 77, 3.0f), scalar = {42.5f};  // big spans two read chunks
  {
    SafetensorsWriter w(path, "F32");
    w.add("a", {3, 4}, a.data());
    w.add("big", {(1 << 20) + 77}, big.data());
    w.add("scalar", {}, scalar.data());
    w.add("empty", {0, 5}, nullptr);
    w.set_metadata("note", "mlamoe");
    w.finish();
  }
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_FALSE(fs::exists(path + ".data.tmp"));
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.names(), (std::vector<std::string>{"a", "big", "scalar", "empty"}));  // data order
  EXPECT_EQ(f.info("a").shape, (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(f.info("a").dtype, "F32");
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "mlamoe");
  std::vector<float> got;
  f.read_f32("a", got);
  EXPECT_EQ(got, a);
  f.read_f32("big", got);
  EXPECT_EQ(got, big);
  f.read_f32("scalar", got);
  EXPECT_EQ(got, scalar);
  f.read_f32("empty", got);
  EXPECT_TRUE(got.empty());
  expect_error([&] { f.info("nope"); }, "has no tensor 'nope'");
  // The data area starts 8-byte aligned, as with the reference writer.
  std::ifstream in(path, std::ios::binary);
  uint64_t n = 0;
  in.read(reinterpret_cast<char*>(&n), 8);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, Bf16WriterRoundsToNearestEven) {
  float one = 1.0f, ulp = std::ldexp(1.0f, -7);                   // bf16 keeps 7 mantissa bits
  std::vector<float> v = {one + ulp / 2,                          // tie, 1.0 is even: down
                          one + 3 * ulp / 2,                      // tie, 1 + 2ulp is even: up
                          one + ulp / 2 + std::ldexp(1.0f, -20),  // just above the tie: up
                          -2.5f,
                          0.0f,
                          -0.0f,
                          std::numeric_limits<float>::max(),  // max rounds up to inf
                          std::numeric_limits<float>::quiet_NaN(),
                          1e-40f};
  std::vector<float> want = {one,  one + 2 * ulp, one + ulp, -2.5f, 0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                             0.0f, 0.0f};
  std::vector<float> r = ramp(1000, 5.0f);
  std::string path = tmp("bf16.safetensors");
  {
    SafetensorsWriter w(path, "BF16");
    w.add("v", {static_cast<int64_t>(v.size())}, v.data());
    w.add("r", {10, 100}, r.data());
    w.add("kept_f32", {10, 100}, r.data(), "F32");  // per-tensor override
    w.finish();
  }
  SafetensorsFile f = SafetensorsFile::open(path);
  EXPECT_EQ(f.info("v").dtype, "BF16");
  EXPECT_EQ(f.info("kept_f32").dtype, "F32");
  std::vector<float> got;
  f.read_f32("v", got);
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) {
      EXPECT_TRUE(std::isnan(got[i]));
    } else if (v[i] == 1e-40f) {
      EXPECT_EQ(bits(got[i]), bits(bf16_to_float(float_to_bf16(v[i]))));  // subnormals round like the rest
    } else {
      EXPECT_EQ(bits(got[i]), bits(want[i])) << i;
    }
  }
  f.read_f32("r", got);
  for (size_t i = 0; i < r.size(); ++i) ASSERT_EQ(bits(got[i]), bits(bf16_to_float(float_to_bf16(r[i])))) << i;
  f.read_f32("kept_f32", got);
  EXPECT_EQ(got, r);
}

TEST(Safetensors, F16DecodesEveryCodeAndRoundsToNearestEven) {
  for (uint32_t h = 0; h < 65536; ++h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float got = f16_to_float(static_cast<uint16_t>(h));
    if (e == 31) {
      EXPECT_TRUE(m ? std::isnan(got) : std::isinf(got)) << h;
      continue;
    }
    double mag = e == 0 ? m * std::pow(2.0, -24) : (1.0 + m / 1024.0) * std::pow(2.0, e - 15);
    ASSERT_EQ(static_cast<double>(got), s ? -mag : mag) << h;
    ASSERT_EQ(float_to_f16(got), h) << h;  // every value round-trips to its code
  }
  float one = 1.0f, ulp = std::ldexp(1.0f, -10);
  EXPECT_EQ(f16_to_float(float_to_f16(one + ulp / 2)), one);                // tie to even: down
  EXPECT_EQ(f16_to_float(float_to_f16(one + 3 * ulp / 2)), one + 2 * ulp);  // tie to even: up
  EXPECT_EQ(f16_to_float(float_to_f16(65519.0f)), 65504.0f);
  EXPECT_TRUE(std::isinf(f16_to_float(float_to_f16(65520.0f))));
  EXPECT_EQ(f16_to_float(float_to_f16(std::ldexp(1.0f, -25))), 0.0f);                       // half the smallest subnormal: to 0
  EXPECT_EQ(f16_to_float(float_to_f16(3 * std::ldexp(1.0f, -25))), std::ldexp(1.0f, -23));  // 1.5 units: to 2 (even)
  EXPECT_EQ(float_to_f16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(f16_to_float(float_to_f16(std::nanf("")))));

  std::vector<float> r = ramp(300, 100.0f);
  std::string path = tmp("f16.safetensors");
  {
    SafetensorsWriter w(path, "F16");
    w.add("r", {3, 100}, r.data());
    w.finish();
  }
  std::vector<float> got;
  SafetensorsFile::open(path).read_f32("r", got);
  for (size_t i = 0; i < r.size(); ++i) {
    ASSERT_EQ(got[i], f16_to_float(float_to_f16(r[i])));
    ASSERT_LE(std::fabs(got[i] - r[i]), std::fabs(r[i]) * std::ldexp(1.0f, -11) + 1e-7f);  // within half an ulp
  }
}

TEST(Safetensors, Fp8E4M3EveryCodeMatchesTheFormula) {
  std::vector<uint8_t> codes(256);
  for (int c = 0; c < 256; ++c) codes[c] = static_cast<uint8_t>(c);
  for (int c = 0; c < 256; ++c) {
    int s = c >> 7, e = (c >> 3) & 15, m = c & 7;
    float got = fp8_e4m3_to_float(static_cast<uint8_t>(c));
    if (e == 15 && m == 7) {
      EXPECT_TRUE(std::isnan(got)) << c;  // S.1111.111; no infinities in E4M3
      continue;
    }
    double mag = e == 0 ? (m / 8.0) * std::pow(2.0, -6) : (1.0 + m / 8.0) * std::pow(2.0, e - 7);
    EXPECT_EQ(static_cast<double>(got), s ? -mag : mag) << c;
  }
  EXPECT_EQ(fp8_e4m3_to_float(0x7e), 448.0f);                // the largest finite value
  EXPECT_EQ(fp8_e4m3_to_float(0x01), std::ldexp(1.0f, -9));  // the smallest subnormal
  EXPECT_EQ(fp8_e4m3_to_float(0x78), 256.0f);                // S.1111.000 is a number, not inf
  EXPECT_TRUE(std::signbit(fp8_e4m3_to_float(0x80)));        // -0
  // The same through a file: an F8_E4M3 tensor of all 256 codes.
  std::string path = tmp("fp8.safetensors");
  write_raw(path, R"({"codes":{"dtype":"F8_E4M3","shape":[16,16],"data_offsets":[0,256]}})", bytes_of(codes));
  std::vector<float> got;
  SafetensorsFile::open(path).read_f32("codes", got);
  ASSERT_EQ(got.size(), 256u);
  for (int c = 0; c < 256; ++c) {
    float want = fp8_e4m3_to_float(static_cast<uint8_t>(c));
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(got[c]));
    else
      EXPECT_EQ(bits(got[c]), bits(want)) << c;
  }
}

TEST(Safetensors, BlockDequantisationHandlesPartialBlocks) {
  // [200, 300] in 128 × 128 blocks: a 2 × 3 scale grid whose last row and column of blocks are partial.
  int64_t rows = 200, cols = 300;
  std::vector<uint8_t> q(static_cast<size_t>(rows * cols));
  for (size_t i = 0; i < q.size(); ++i) {
    q[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
    if ((q[i] & 0x7f) == 0x7f) q[i] = 0x3c;  // no NaN codes
  }
  std::vector<float> scale = {0.5f, 2.0f, 0.125f, 3.0f, 0.75f, 1e-3f};
  std::string path = tmp("fp8_blocks.safetensors");
  std::string header = R"({"w":{"dtype":"F8_E4M3","shape":[200,300],"data_offsets":[0,60000]},)"
                       R"("w_scale_inv":{"dtype":"F32","shape":[2,3],"data_offsets":[60000,60024]}})";
  write_raw(path, header, bytes_of(q) + bytes_of(scale));
  SafetensorsFile f = SafetensorsFile::open(path);
  std::vector<float> w, s;
  f.read_f32("w", w);
  f.read_f32("w_scale_inv", s);
  EXPECT_EQ(s, scale);
  dequantize_fp8_blocks(w, rows, cols, s, f.info("w_scale_inv").shape, 128, 128, "tensor 'w'");
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      ASSERT_EQ(w[i * cols + j], fp8_e4m3_to_float(q[i * cols + j]) * scale[(i / 128) * 3 + j / 128]) << i << "," << j;
  std::vector<float> w2;
  f.read_f32("w", w2);
  expect_error(
      [&] {
        dequantize_fp8_blocks(w2, rows, cols, s, {3, 2}, 128, 128, "tensor 'w'");
      },
      "tensor 'w': scale_inv has shape [3, 2], expected [2, 3] for [200, 300] in blocks of 128x128");
}

TEST(Safetensors, DamagedHeadersGiveOneLineNamingFileAndTensor) {
  std::vector<float> twelve(3, 1.0f);
  std::string ok = R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}})";
  std::string p = tmp("bad.safetensors");

  write_raw(p, ok, bytes_of(twelve));
  EXPECT_NO_THROW(SafetensorsFile::open(p));

  { std::ofstream(p, std::ios::binary | std::ios::trunc) << "abc"; }
  expect_error([&] { SafetensorsFile::open(p); }, "safetensors file '" + p + "' is 3 bytes, too short");

  write_raw(p, ok, bytes_of(twelve));
  fs::resize_file(p, 8 + 20);  // cut inside the header
  expect_error([&] { SafetensorsFile::open(p); }, "header length " + std::to_string(ok.size()) + " runs past the end");

  write_raw(p, ok, bytes_of(twelve));
  fs::resize_file(p, 8 + ok.size() + 6);  // cut inside the data
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': data_offsets [0, 12] reach beyond the data area of 6 bytes");

  write_raw(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[8,20]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "safetensors file '" + p + "', tensor 't': data_offsets [8, 20] reach beyond");

  write_raw(p, R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensors 'a' and 'b' overlap");

  write_raw(p, R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,12]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': holds 12 bytes, but F32 [2] needs 8");

  write_raw(p, R"({"t":{"dtype":"BF16","shape":[3],"data_offsets":[0,12]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': holds 12 bytes, but BF16 [3] needs 6");

  write_raw(p, R"({"t":{"dtype":"Q4","shape":[3],"data_offsets":[0,12]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': unknown dtype 'Q4'");

  write_raw(p, R"({"t":{"dtype":"F32","shape":[-3],"data_offsets":[0,12]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': \"shape\" must hold non-negative integers");

  write_raw(p, R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[12,0]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': data_offsets [12, 0] run backwards");

  write_raw(p, R"({"t":{"dtype":"F32","shape":[3]}})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "tensor 't': header entry needs");

  write_raw(p, R"({"t": not json})", bytes_of(twelve));
  expect_error([&] { SafetensorsFile::open(p); }, "safetensors file '" + p + "': header: invalid JSON: parse error");
  // A shape (or __metadata__) nested 100k deep is refused while parsing, never walked recursively.
  {
    std::string deep = "{\"t\":{\"dtype\":\"F32\",\"shape\":" + std::string(100000, '[') + std::string(100000, ']') +
                       ",\"data_offsets\":[0,4]}}";
    std::string bytes(8, '\0');
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((deep.size() >> (8 * i)) & 0xff);
    std::ofstream(p, std::ios::binary) << bytes << deep << std::string(4, '\0');
    expect_error([&] { SafetensorsFile::open(p); }, "header: JSON nested deeper than 64 levels at 't.shape");
  }

  write_raw(p, R"({"t":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}})", bytes_of(twelve));
  std::vector<float> out;
  expect_error([&] { SafetensorsFile::open(p).read_f32("t", out); }, "tensor 't': dtype I64 does not convert to f32");

  expect_error([&] { SafetensorsFile::open(tmp("missing.safetensors")); }, "cannot open safetensors file");
}

TEST(Safetensors, WriterLeavesNothingBehindWhenAbandoned) {
  std::string path = tmp("abandoned.safetensors");
  fs::remove(path);
  std::vector<float> v(10, 1.0f);
  {
    SafetensorsWriter w(path, "BF16");
    w.add("v", {10}, v.data());
    expect_error([&] { w.add("v", {10}, v.data()); }, "duplicate name");
    expect_error([&] { w.add("x", {10}, v.data(), "F8_E4M3"); }, "cannot write dtype 'F8_E4M3'");
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".data.tmp"));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  expect_error([&] { SafetensorsWriter(path, "I8"); }, "cannot write dtype 'I8'");
}

TEST(Safetensors, ShardedDirectoryRoundTrip) {
  std::string dir = tmp("sharded");
  fs::remove_all(dir);
  std::vector<float> a = ramp(100, 1.0f), b = ramp(300, 2.0f), c = ramp(50, 3.0f);
  {
    SafetensorsDirWriter w(dir, "F32", 1300);  // a (400 B) and b (1200 B) cannot share a shard; b and c (100 B) can
    w.add("a", {100}, a.data());
    w.add("b", {3, 100}, b.data());
    w.add("c", {50}, c.data(), "BF16");
    EXPECT_EQ(w.finish(), (std::vector<std::string>{"model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                                                    "model.safetensors.index.json"}));
  }
  std::ifstream in(dir + "/model.safetensors.index.json");
  nlohmann::json index = nlohmann::json::parse(in);
  EXPECT_EQ(index["metadata"]["total_size"], 400 + 1200 + 100);
  EXPECT_EQ(index["weight_map"]["a"], "model-00001-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["b"], "model-00002-of-00002.safetensors");
  EXPECT_EQ(index["weight_map"]["c"], "model-00002-of-00002.safetensors");
  for (const auto& e : fs::directory_iterator(dir))
    EXPECT_NE(e.path().filename().string()[0], '.') << e.path();  // no temporaries

  SafetensorsDir d = SafetensorsDir::open(dir);
  EXPECT_EQ(d.shard_count(), 2u);
  EXPECT_EQ(d.names(), (std::vector<std::string>{"a", "b", "c"}));
  std::vector<float> got;
  d.read_f32("b", got);
  EXPECT_EQ(got, b);
  EXPECT_EQ(d.info("c").dtype, "BF16");
  expect_error([&] { d.info("z"); }, "has no tensor 'z'");

  // A single shard is one model.safetensors and no index, as save_pretrained writes it.
  std::string one = tmp("single");
  fs::remove_all(one);
  {
    SafetensorsDirWriter w(one, "F32", 1 << 20);
    w.add("a", {100}, a.data());
    EXPECT_EQ(w.finish(), std::vector<std::string>{"model.safetensors"});
  }
  SafetensorsDir::open(one).read_f32("a", got);
  EXPECT_EQ(got, a);

  // Index errors.
  std::string bad = tmp("bad_index");
  fs::remove_all(bad);
  fs::create_directories(bad);
  fs::copy_file(dir + "/model-00001-of-00002.safetensors", bad + "/model-00001-of-00002.safetensors");
  { std::ofstream(bad + "/model.safetensors.index.json") << R"({"weight_map": {"a": "model-00002-of-00002.safetensors"}})"; }
  expect_error([&] { SafetensorsDir::open(bad); }, "lists shard 'model-00002-of-00002.safetensors', which does not exist");
  { std::ofstream(bad + "/model.safetensors.index.json") << R"({"weight_map": {"b": "model-00001-of-00002.safetensors"}})"; }
  expect_error([&] { SafetensorsDir::open(bad); },
               "puts tensor 'b' in 'model-00001-of-00002.safetensors', which does not hold it");
  { std::ofstream(bad + "/model.safetensors.index.json") << R"({"weight_map": {"a": "../x.safetensors"}})"; }
  expect_error([&] { SafetensorsDir::open(bad); }, "not a file name in the directory");
  fs::remove(bad + "/model.safetensors.index.json");
  expect_error([&] { SafetensorsDir::open(bad); }, "has neither model.safetensors.index.json nor model.safetensors");
  expect_error([&] { SafetensorsDir::open(bad + "/nope"); }, "does not exist or is not a directory");

  // Abandoned before finish: the shards written so far are removed.
  std::string gone = tmp("abandoned_dir");
  fs::remove_all(gone);
  {
    SafetensorsDirWriter w(gone, "F32", 500);
    w.add("a", {100}, a.data());
    w.add("b", {3, 100}, b.data());
  }
  EXPECT_TRUE(fs::is_empty(gone));
}

}  // namespace
}  // namespace mlamoe
