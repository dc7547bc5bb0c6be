// `mlamoe convert` (train/cli/convert_command.h): the config-derived tensor list against the model's
// own, a Tiny-A model through save_weights -> HF f32 -> checkpoint bit for bit (which then loads and
// generates), the bf16 export's rounding, FP8 block-scaled imports, and every rejected directory
// (missing, extra, misshapen tensor; bad config; existing outputs) with its one-line message.
// It also leaves an export under build/tests/tmp/convert/python for check_safetensors_export.py.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>

#include "data/safetensors.h"
#include "model/json_parse.h"
#include "model/modules/deepseek_model.h"
#include "model/tensor/dtype.h"
#include "tests/test_util.h"
#include "train/checkpoint.h"
#include "train/cli/convert_command.h"
#include "train/cli/generate_command.h"
#include "train/run_config.h"

namespace mlamoe {
namespace {

namespace fs = std::filesystem;

std::string dir(const std::string& name) {
  std::string d = std::string(MLAMOE_TEST_TMPDIR) + "/convert/" + name;
  fs::remove_all(d);
  fs::create_directories(fs::path(d).parent_path());
  return d;
}

nlohmann::json tiny_json(const std::vector<std::string>& overrides = {}) {
  nlohmann::json j = read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/tiny.json");
  apply_overrides(j, overrides);
  return j;
}

using test::expect_error;

// A Tiny-A model with non-zero correction biases (a fresh model's are 0, which would hide a
// conversion that loses them), saved with save_weights.
struct Saved {
  nlohmann::json json = tiny_json();
  ModelConfig cfg = parse_model_config(json, "tiny.json");
  DeepSeekModel model{cfg, 5};
  std::string path;
  explicit Saved(const std::string& p) : path(p) {
    for (Tensor b : model.correction_biases()) {
      std::vector<float> v(static_cast<size_t>(b.numel()));
      for (size_t i = 0; i < v.size(); ++i) v[i] = 0.01f * static_cast<float>(i) - 0.07f;
      b.copy_(Tensor::from_vector(v, b.shape()));
    }
    save_weights(path, model, json, 12);
  }
};

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * 4) == 0;
}

// One tensor of a hand-made HF directory.
struct HfTensor {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> values;
};

std::vector<HfTensor> tensors_of(const DeepSeekModel& m) {
  std::vector<HfTensor> out;
  for (const auto& p : m.params.all()) out.push_back({p.name, p.tensor.shape(), p.tensor.to_vector<float>()});
  return out;
}

// DIR with config.json and one F32 model.safetensors holding `ts`.
void write_hf_dir(const std::string& d, const nlohmann::json& config, const std::vector<HfTensor>& ts) {
  fs::create_directories(d);
  std::ofstream(d + "/config.json") << config.dump(2);
  SafetensorsWriter w(d + "/model.safetensors", "F32");
  for (const auto& t : ts) w.add(t.name, t.shape, t.values.data());
  w.finish();
}

TEST(Convert, ExpectedTensorsMatchTheModel) {
  const std::vector<std::vector<std::string>> variants = {
      {},  // Tiny-A: q latent, noaux_tc bias, shared expert, dense first layer, MTP
      {"q_lora_rank=null", "topk_method=\"greedy\"", "scoring_func=\"softmax\"", "n_group=1", "topk_group=1",
       "num_nextn_predict_layers=0", "norm_topk_prob=false"},  // V2-Lite style
      {"moe_layer_freq=2", "first_k_dense_replace=0", "n_shared_experts=0", "num_nextn_predict_layers=2"},
      {"n_routed_experts=0"},  // dense
  };
  for (const auto& v : variants) {
    ModelConfig cfg = parse_model_config(tiny_json(v), "tiny.json");
    DeepSeekModel m(cfg, 0);
    auto want = expected_hf_tensors(cfg);
    ASSERT_EQ(want.size(), m.params.all().size()) << ::testing::PrintToString(v);
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(want[i].first, m.params.all()[i].name) << i;
      EXPECT_EQ(want[i].second, m.params.all()[i].tensor.shape()) << want[i].first;
    }
  }
  // A 671B model is listed without allocating it; the count is model/README.md §10's (main + MTP).
  ModelConfig v3 = parse_model_config(read_json_file(std::string(MLAMOE_SOURCE_DIR) + "/configs/deepseek-v3.json"), "v3");
  int64_t n = 0;
  for (const auto& [name, shape] : expected_hf_tensors(v3)) n += shape_numel(shape);
  EXPECT_NEAR(static_cast<double>(n), 671.03e9 + 11.61e9, 0.02e9);
}

TEST(Convert, F32RoundTripIsBitIdenticalAndLoads) {
  std::string d = dir("roundtrip");
  Saved s(d + "/weights.h5");
  std::string hf = d + "/hf", back = d + "/back.h5";
  ConvertStats e = export_hf_checkpoint(s.path, hf, "f32", 1 << 20, false);  // 1 MiB shards: several of them
  EXPECT_EQ(e.tensors, static_cast<int64_t>(s.model.params.all().size()));
  EXPECT_GT(e.files, 3);
  EXPECT_TRUE(fs::exists(hf + "/model.safetensors.index.json"));
  EXPECT_FALSE(fs::exists(hf + "/.mlamoe-convert.tmp"));

  nlohmann::json config = read_json_file(hf + "/config.json");
  EXPECT_FALSE(config.contains("train") || config.contains("data") || config.contains("parallel"));
  EXPECT_EQ(config["torch_dtype"], "float32");
  EXPECT_EQ(config["architectures"], nlohmann::json::array({"DeepseekV3ForCausalLM"}));
  EXPECT_EQ(config["hidden_size"], 128);
  // V3 layout: the MTP layer repeats the shared embedding and head.
  SafetensorsDir st = SafetensorsDir::open(hf);
  std::vector<float> got;
  st.read_f32("model.layers.4.embed_tokens.weight", got);
  EXPECT_TRUE(same_bits(got, s.model.params.get("model.embed_tokens.weight").to_vector<float>()));
  st.read_f32("model.layers.4.shared_head.head.weight", got);
  EXPECT_TRUE(same_bits(got, s.model.params.get("lm_head.weight").to_vector<float>()));

  ConvertStats i = import_hf_checkpoint(hf, back, false);
  EXPECT_EQ(i.tensors, e.tensors);
  EXPECT_EQ(i.dropped, 2);  // the two MTP copies
  EXPECT_EQ(i.parameters, s.model.params.numel(false));
  int64_t seen = 0;
  for_each_checkpoint_tensor(back, [&](const std::string& name, const Shape& shape, const std::vector<float>& v) {
    ++seen;
    EXPECT_EQ(shape, s.model.params.get(name).shape()) << name;
    EXPECT_TRUE(same_bits(v, s.model.params.get(name).to_vector<float>())) << name;
  });
  EXPECT_EQ(seen, e.tensors);
  EXPECT_EQ(checkpoint_step(back), 0);

  // It is a checkpoint like any other: load_checkpoint (weights only) and generate accept it.
  ModelConfig cfg = parse_model_config(read_checkpoint_config(back), back);
  DeepSeekModel m(cfg, 99);
  load_checkpoint(back, m, nullptr, nullptr);
  for (const auto& p : s.model.params.all())
    EXPECT_TRUE(same_bits(p.tensor.to_vector<float>(), m.params.get(p.name).to_vector<float>()));
  AdamW opt(m.params, {});
  expect_error([&] { load_checkpoint(back, m, &opt, nullptr); }, "holds weights only");
  EXPECT_EQ(run_generate_command({"--checkpoint", back, "--prompt", "In the", "--tokens", "4", "--verify"}), 0);
}

TEST(Convert, Bf16ExportRoundsToNearestEvenAndKeepsBiasesF32) {
  std::string d = dir("bf16");
  Saved s(d + "/weights.h5");
  std::string hf = d + "/hf";
  ConvertStats e = export_hf_checkpoint(s.path, hf, "bf16", 4096ull << 20, false);
  EXPECT_EQ(e.files, 2);  // one model.safetensors and config.json
  EXPECT_TRUE(fs::exists(hf + "/model.safetensors"));
  EXPECT_EQ(read_json_file(hf + "/config.json")["torch_dtype"], "bfloat16");
  SafetensorsDir st = SafetensorsDir::open(hf);
  std::vector<float> got;
  for (const auto& p : s.model.params.all()) {
    st.read_f32(p.name, got);
    std::vector<float> orig = p.tensor.to_vector<float>();
    bool bias = p.name.find("e_score_correction_bias") != std::string::npos;
    EXPECT_EQ(st.info(p.name).dtype, bias ? "F32" : "BF16") << p.name;
    for (auto& x : orig)
      if (!bias) x = bf16_to_float(float_to_bf16(x));
    EXPECT_TRUE(same_bits(got, orig)) << p.name;
  }
  // Importing the bf16 export gives exactly those rounded values.
  std::string back = d + "/back.h5";
  import_hf_checkpoint(hf, back, false);
  for_each_checkpoint_tensor(back, [&](const std::string& name, const Shape&, const std::vector<float>& v) {
    st.read_f32(name, got);
    EXPECT_TRUE(same_bits(v, got)) << name;
  });
}

// Nearest E4M3 code to x (ties: the first found; fine for a test).
uint8_t to_fp8(float x) {
  uint8_t best = 0;
  for (int c = 0; c < 256; ++c) {
    float v = fp8_e4m3_to_float(static_cast<uint8_t>(c));
    if (!std::isnan(v) && std::fabs(v - x) < std::fabs(fp8_e4m3_to_float(best) - x)) best = static_cast<uint8_t>(c);
  }
  return best;
}

// DeepSeek-V3-style quantisation of w [rows, cols]: per 128 × 128 block, scale_inv = amax / 448.
void quantize(const std::vector<float>& w, int64_t rows, int64_t cols, std::string& codes, std::vector<float>& scale_inv) {
  int64_t br = (rows + 127) / 128, bc = (cols + 127) / 128;
  scale_inv.assign(static_cast<size_t>(br * bc), 0.0f);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float& s = scale_inv[(i / 128) * bc + j / 128];
      s = std::max(s, std::fabs(w[i * cols + j]) / 448.0f);
    }
  codes.resize(static_cast<size_t>(rows * cols));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      codes[i * cols + j] = static_cast<char>(to_fp8(w[i * cols + j] / scale_inv[(i / 128) * bc + j / 128]));
}

TEST(Convert, Fp8TensorsAreDequantisedWithTheirBlockScales) {
  std::string d = dir("fp8");
  nlohmann::json config = tiny_json();
  ModelConfig cfg = parse_model_config(config, "tiny");
  DeepSeekModel m(cfg, 8);
  // q_b_proj [192, 64]: a 2 × 1 scale grid with a partial second block row; an expert [128, 64].
  const std::vector<std::string> quantised = {"model.layers.0.self_attn.q_b_proj.weight",
                                              "model.layers.2.mlp.experts.3.down_proj.weight"};
  config["quantization_config"] = {{"quant_method", "fp8"}, {"fmt", "e4m3"}, {"weight_block_size", {128, 128}}};
  std::string hf = d + "/hf";
  fs::create_directories(hf);
  std::ofstream(hf + "/config.json") << config.dump(2);
  nlohmann::json weight_map;
  {
    SafetensorsWriter w(hf + "/model-00001-of-00002.safetensors", "BF16");
    for (const auto& t : tensors_of(m)) {
      if (std::find(quantised.begin(), quantised.end(), t.name) != quantised.end()) continue;
      w.add(t.name, t.shape, t.values.data());
      weight_map[t.name] = "model-00001-of-00002.safetensors";
    }
    std::vector<float> inv_freq(8, 1.0f);  // an HF buffer, ignored
    w.add("model.layers.0.self_attn.rotary_emb.inv_freq", {8}, inv_freq.data(), "F32");
    weight_map["model.layers.0.self_attn.rotary_emb.inv_freq"] = "model-00001-of-00002.safetensors";
    w.finish();
  }
  // The second shard by hand: F8 data and F32 scales, which our writer does not produce.
  std::map<std::string, std::vector<float>> want;
  nlohmann::json header;
  std::string data;
  for (const auto& name : quantised) {
    Tensor t = m.params.get(name);
    std::string codes;
    std::vector<float> scale;
    quantize(t.to_vector<float>(), t.size(0), t.size(1), codes, scale);
    header[name] = {{"dtype", "F8_E4M3"}, {"shape", t.shape()}, {"data_offsets", {data.size(), data.size() + codes.size()}}};
    data += codes;
    std::vector<int64_t> sshape = {(t.size(0) + 127) / 128, (t.size(1) + 127) / 128};
    header[name + "_scale_inv"] = {
        {"dtype", "F32"}, {"shape", sshape}, {"data_offsets", {data.size(), data.size() + 4 * scale.size()}}};
    data.append(reinterpret_cast<const char*>(scale.data()), 4 * scale.size());
    weight_map[name] = weight_map[name + "_scale_inv"] = "model-00002-of-00002.safetensors";
    auto& w = want[name];
    for (int64_t i = 0; i < t.size(0); ++i)
      for (int64_t j = 0; j < t.size(1); ++j)
        w.push_back(fp8_e4m3_to_float(static_cast<uint8_t>(codes[i * t.size(1) + j])) * scale[(i / 128) * sshape[1] + j / 128]);
  }
  std::string text = header.dump();
  {
    std::ofstream f(hf + "/model-00002-of-00002.safetensors", std::ios::binary);
    uint64_t n = text.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << text << data;
  }
  std::ofstream(hf + "/model.safetensors.index.json")
      << nlohmann::json{{"metadata", {{"total_size", 0}}}, {"weight_map", weight_map}}.dump();

  std::string out = d + "/fp8.h5";
  ConvertStats s = import_hf_checkpoint(hf, out, false);
  EXPECT_EQ(s.fp8, 2);
  EXPECT_EQ(s.dropped, 3);  // two scales and the rotary buffer
  for_each_checkpoint_tensor(out, [&](const std::string& name, const Shape&, const std::vector<float>& v) {
    if (want.count(name)) {
      EXPECT_TRUE(same_bits(v, want[name])) << name;
      float err = 0;  // and the dequantised weights are close to the originals (E4M3 keeps 3 mantissa bits)
      std::vector<float> orig = m.params.get(name).to_vector<float>();
      for (size_t i = 0; i < v.size(); ++i) err = std::max(err, std::fabs(v[i] - orig[i]));
      EXPECT_LT(err, 0.02f) << name;
    }
  });
  EXPECT_FALSE(read_checkpoint_config(out).contains("quantization_config"));  // stored dequantised

  // An F8 tensor without its scale, and a scale of the wrong shape.
  nlohmann::json wm = weight_map;
  wm.erase(quantised[0] + "_scale_inv");
  std::ofstream(hf + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", wm}}.dump();
  expect_error([&] { import_hf_checkpoint(hf, d + "/never.h5", false); },
               "is F8_E4M3 but model directory '" + hf + "' has no '" + quantised[0] + "_scale_inv'");
  config["quantization_config"]["weight_block_size"] = {64, 64};
  std::ofstream(hf + "/config.json") << config.dump(2);
  std::ofstream(hf + "/model.safetensors.index.json") << nlohmann::json{{"weight_map", weight_map}}.dump();
  expect_error([&] { import_hf_checkpoint(hf, d + "/never.h5", false); },
               "tensor '" + quantised[0] + "_scale_inv' has shape [2, 1], expected [3, 1] for [192, 64] in blocks of 64x64");
  EXPECT_FALSE(fs::exists(d + "/never.h5"));
  EXPECT_FALSE(fs::exists(d + "/never.h5.tmp"));
}

TEST(Convert, BadDirectoriesAreRejectedAndNothingIsWritten) {
  std::string d = dir("bad");
  nlohmann::json config = tiny_json();
  ModelConfig cfg = parse_model_config(config, "tiny");
  DeepSeekModel m(cfg, 1);
  std::string out = d + "/out.h5";
  auto attempt = [&](const std::vector<HfTensor>& ts, const std::string& needle) {
    std::string hf = d + "/hf";
    fs::remove_all(hf);
    write_hf_dir(hf, config, ts);
    expect_error([&] { import_hf_checkpoint(hf, out, false); }, needle);
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out + ".tmp"));
  };
  const std::string victim = "model.layers.1.mlp.experts.3.up_proj.weight";
  std::vector<HfTensor> ts = tensors_of(m);
  std::vector<HfTensor> missing;
  for (const auto& t : ts)
    if (t.name != victim) missing.push_back(t);
  attempt(missing, "has no tensor '" + victim + "' (expected [64, 128] for this config)");

  std::vector<HfTensor> extra = ts;
  extra.push_back({"model.layers.1.mlp.experts.16.up_proj.weight", {64, 128}, std::vector<float>(64 * 128)});
  attempt(extra, "has an unexpected tensor 'model.layers.1.mlp.experts.16.up_proj.weight'");

  std::vector<HfTensor> wrong = ts;
  for (auto& t : wrong)
    if (t.name == victim) t.shape = {128, 64};
  attempt(wrong, "tensor '" + victim + "' in '" + d + "/hf/model.safetensors' has shape [128, 64], the config gives [64, 128]");

  std::vector<HfTensor> copy = ts;  // an MTP copy of the embedding with the wrong shape
  copy.push_back({"model.layers.4.embed_tokens.weight", {256, 128}, std::vector<float>(256 * 128)});
  attempt(copy, "tensor 'model.layers.4.embed_tokens.weight' has shape [256, 128], the config gives [512, 128]");

  std::vector<HfTensor> orphan = ts;  // a scale with no FP8 tensor
  orphan.push_back({"model.norm.weight_scale_inv", {1}, {1.0f}});
  attempt(orphan, "has tensor 'model.norm.weight_scale_inv' but no F8_E4M3 model tensor 'model.norm.weight'");

  // Config problems, and the output rules.
  std::string hf = d + "/hf";
  fs::remove_all(hf);
  write_hf_dir(hf, config, ts);
  nlohmann::json bad = config;
  bad["hidden_act"] = "gelu";
  std::ofstream(hf + "/config.json") << bad.dump();
  expect_error([&] { import_hf_checkpoint(hf, out, false); }, hf + "/config.json: hidden_act 'gelu' is not supported");
  fs::remove(hf + "/config.json");
  expect_error([&] { import_hf_checkpoint(hf, out, false); }, "model directory '" + hf + "' has no config.json");
  expect_error([&] { import_hf_checkpoint(d + "/nope", out, false); }, "model directory '" + d + "/nope' does not exist");
  std::ofstream(hf + "/config.json") << config.dump();
  std::ofstream(out) << "keep me";
  expect_error(
      [&] {
        run_convert_command({"--from-hf", hf, "--to", out});
      },
      "'" + out + "' exists; pass --overwrite to replace it");
  EXPECT_EQ(run_convert_command({"--from-hf", hf, "--to", out, "--overwrite"}), 0);
  EXPECT_EQ(checkpoint_step(out), 0);

  // Export side.
  std::string hf2 = d + "/hf2";
  fs::create_directories(hf2);
  std::ofstream(hf2 + "/tokenizer.json") << "{}";
  expect_error([&] { run_convert_command({"--from", out, "--to-hf", hf2}); }, "'" + hf2 + "' exists; pass --overwrite");
  EXPECT_EQ(run_convert_command({"--from", out, "--to-hf", hf2, "--overwrite", "--dtype", "f32", "--shard-size-mb", "1"}), 0);
  EXPECT_TRUE(fs::exists(hf2 + "/model.safetensors.index.json"));
  EXPECT_EQ(run_convert_command({"--from", out, "--to-hf", hf2, "--overwrite"}), 0);  // bf16, one file: the old shards go
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(hf2)) left.push_back(e.path().filename().string());
  std::sort(left.begin(), left.end());
  EXPECT_EQ(left, (std::vector<std::string>{"config.json", "model.safetensors", "tokenizer.json"}));

  expect_error(
      [&] {
        run_convert_command({"--from", d + "/nope.h5", "--to-hf", d + "/x"});
      },
      "checkpoint '" + d + "/nope.h5' does not exist");
  expect_error(
      [&] {
        run_convert_command({"--from", out, "--to-hf", d + "/x", "--dtype", "f16"});
      },
      "--dtype must be bf16 or f32, got 'f16'");
  EXPECT_FALSE(fs::exists(d + "/x"));
  expect_error(
      [&] {
        run_convert_command({"--from", out, "--to", d + "/y.h5"});
      },
      "give either --from-hf DIR --to CKPT.h5 or --from");
  expect_error([&] { run_convert_command({"--from-hf", hf}); }, "--from-hf DIR and --to CKPT.h5 go together");
  expect_error([&] { run_convert_command({"--from-hf", hf, "--to", out, "--dtype", "bf16"}); }, "apply to --to-hf only");
  expect_error([&] { run_convert_command({}); }, "give either");
  expect_error([&] { run_convert_command({"--from-hf", hf, "--to", out, "--bogus", "1"}); }, "unknown flag --bogus");

  // A checkpoint whose tensors do not fit its config.
  std::string odd = d + "/odd.h5";
  {
    CheckpointTensorWriter w(odd, config, 0);
    for (const auto& t : ts)
      if (t.name != victim) w.write(t.name, t.shape, t.values.data());
    w.finish();
  }
  expect_error([&] { export_hf_checkpoint(odd, d + "/z", "bf16", 1 << 20, false); },
               "checkpoint '" + odd + "' has no tensor '" + victim + "'");
  EXPECT_FALSE(fs::exists(d + "/z"));
}

// NaN/Inf weights are refused with the tensor's name and count, nothing written; with
// --allow-nonfinite they are imported and listed.
TEST(Convert, NonFiniteWeightsAreRefusedUnlessAllowed) {
  std::string d = dir("nonfinite");
  nlohmann::json config = tiny_json();
  DeepSeekModel m(parse_model_config(config, "tiny"), 1);
  std::vector<HfTensor> ts = tensors_of(m);
  for (auto& t : ts)
    if (t.name == "model.layers.2.self_attn.q_a_proj.weight") t.values[3] = std::nanf(""), t.values[9] = INFINITY;
  write_hf_dir(d + "/hf", config, ts);
  std::string out = d + "/out.h5";
  expect_error(
      [&] {
        run_convert_command({"--from-hf", d + "/hf", "--to", out});
      },
      "1 tensor(s) of model directory '" + d +
          "/hf' hold NaN or Inf values (model.layers.2.self_attn.q_a_proj.weight: 2); "
          "pass --allow-nonfinite to import them anyway");
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  ConvertStats s = import_hf_checkpoint(d + "/hf", out, false, true);
  EXPECT_EQ(s.nonfinite, (std::vector<std::string>{"model.layers.2.self_attn.q_a_proj.weight: 2"}));
  EXPECT_TRUE(fs::exists(out));
  expect_error(
      [&] {
        run_convert_command({"--from", out, "--to-hf", d + "/x", "--allow-nonfinite"});
      },
      "--allow-nonfinite applies to --from-hf only");
}

// generate writes the decoded bytes as they are: a model whose logits are all 0 picks byte 0 every
// time, and every one of them reaches stdout (a C string stopped at the first).
TEST(Generate, WritesZeroBytes) {
  std::string d = dir("generate_zero");
  nlohmann::json config = tiny_json();
  DeepSeekModel m(parse_model_config(config, "tiny"), 1);
  std::vector<HfTensor> ts = tensors_of(m);
  for (auto& t : ts) std::fill(t.values.begin(), t.values.end(), 0.0f);
  write_hf_dir(d + "/hf", config, ts);
  ASSERT_EQ(run_convert_command({"--from-hf", d + "/hf", "--to", d + "/zero.h5"}), 0);
  testing::internal::CaptureStdout();
  int rc = run_generate_command({"--checkpoint", d + "/zero.h5", "--prompt", "ab", "--tokens", "5"});
  std::string out = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(out, std::string("ab\0\0\0\0\0\n", 8));
}

TEST(Convert, CheckpointTensorWriterMatchesSaveWeights) {
  // The streaming writer and save_weights write the same datasets and checksums: a file from one
  // loads like a file from the other, and an abandoned writer leaves nothing.
  std::string d = dir("writer");
  Saved s(d + "/weights.h5");
  std::string path = d + "/streamed.h5";
  {
    CheckpointTensorWriter w(path, s.json, 12);
    for_each_checkpoint_tensor(
        s.path, [&](const std::string& n, const Shape& sh, const std::vector<float>& v) { w.write(n, sh, v.data()); });
    expect_error([&] { w.write("model.norm.weight", {128}, std::vector<float>(128).data()); }, "written twice");
    w.finish();
  }
  EXPECT_EQ(checkpoint_step(path), 12);
  EXPECT_EQ(read_checkpoint_config(path), s.json);
  EXPECT_EQ(list_checkpoint_tensors(path), list_checkpoint_tensors(s.path));
  auto names = list_checkpoint_tensors(path);
  EXPECT_EQ(names[0].first, "lm_head.weight");  // natural order: layer 2 before layer 10-style names
  DeepSeekModel m(s.cfg, 1);
  load_checkpoint(path, m, nullptr, nullptr);
  for (const auto& p : s.model.params.all())
    EXPECT_TRUE(same_bits(p.tensor.to_vector<float>(), m.params.get(p.name).to_vector<float>()));
  {
    CheckpointTensorWriter w(d + "/abandoned.h5", s.json, 0);
    w.write("model.norm.weight", {128}, std::vector<float>(128).data());
  }
  EXPECT_FALSE(fs::exists(d + "/abandoned.h5"));
  EXPECT_FALSE(fs::exists(d + "/abandoned.h5.tmp"));
}

// Leaves exports for tests/train/check_safetensors_export.py (ctest convert_python): the official
// safetensors library must read our files and see the values listed in expected.json.
TEST(Convert, ExportForPythonCheck) {
  std::string d = dir("python");
  Saved s(d + "/weights.h5");
  nlohmann::json expected;
  for (const char* dt : {"f32", "bf16"}) {
    export_hf_checkpoint(s.path, d + "/" + dt, dt, 1 << 20, false);
    for (const char* name :
         {"model.embed_tokens.weight", "model.layers.1.mlp.gate.e_score_correction_bias",
          "model.layers.0.self_attn.kv_a_proj_with_mqa.weight", "model.layers.4.eh_proj.weight", "model.norm.weight"}) {
      std::vector<float> v = s.model.params.get(name).to_vector<float>();
      bool keep_f32 = std::string(dt) == "f32" || std::string(name).find("correction_bias") != std::string::npos;
      if (!keep_f32)
        for (auto& x : v) x = bf16_to_float(float_to_bf16(x));
      double sum = 0;
      for (float x : v) sum += x;
      v.resize(std::min<size_t>(v.size(), 64));
      expected[dt][name] = {
          {"dtype", keep_f32 ? "F32" : "BF16"}, {"shape", s.model.params.get(name).shape()}, {"first", v}, {"sum", sum}};
    }
  }
  std::ofstream(d + "/expected.json") << expected.dump(1);
}

}  // namespace
}  // namespace mlamoe
