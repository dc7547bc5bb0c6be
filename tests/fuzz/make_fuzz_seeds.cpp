// Writes the seed corpora of the fuzz targets into OUT/<target>/ with the project's own writers, so
// the seeds follow the file formats as they change: configs from configs/ (with `--set` lines),
// HF config.json files, small safetensors files, tokenizer.json files with texts, token datasets
// (plain and SFT-masked, by the writer `mlamoe data prepare` uses) and checkpoints of a model of a
// few hundred parameters (with and without optimizer state). Hand-written extras live in
// tests/fuzz/seeds/<target>/; tools/fuzz.sh copies both.
//
// OUT/regressions/<target>/ gets inputs too large for a fuzzing corpus (libFuzzer mutates inputs up
// to the largest seed's size), which tools/fuzz.sh runs once each before fuzzing: JSON nested
// 100000 deep in every JSON a user hands us, which overflows the stack of any recursive walk
// (copy, compare, dump in an error message) unless the parser bounds the depth.
//
//   make_fuzz_seeds OUT
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "data/h5_util.h"
#include "data/safetensors.h"
#include "data/token_dataset.h"
#include "model/config.h"
#include "model/modules/deepseek_model.h"
#include "tests/data/hand_tokenizer.h"
#include "train/checkpoint.h"
#include "train/optimizer.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

fs::path g_out;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  if (!f) throw std::runtime_error("cannot read " + p.string());
  return ss.str();
}

void write_seed(const std::string& target, const std::string& name, const std::string& bytes) {
  fs::create_directories(g_out / target);
  std::ofstream f(g_out / target / name, std::ios::binary | std::ios::trunc);
  f << bytes;
  if (!f) throw std::runtime_error("cannot write seed " + (g_out / target / name).string());
}

void write_regression(const std::string& target, const std::string& name, const std::string& bytes) {
  write_seed("regressions/" + target, name, bytes);
}

void move_seed(const std::string& target, const std::string& name, const fs::path& from) {
  fs::create_directories(g_out / target);
  fs::rename(from, g_out / target / name);
}

// The model fields of a run config: an HF config.json.
json model_fields(json j) {
  for (const char* s : {"train", "data", "parallel"}) j.erase(s);
  return j;
}

// A MoE model of a few hundred parameters: one dense and one MoE layer, MTP depth 1.
json micro_config() {
  return json{{"model_type", "deepseek_v3"},
              {"vocab_size", 16},
              {"hidden_size", 8},
              {"intermediate_size", 8},
              {"moe_intermediate_size", 4},
              {"num_hidden_layers", 2},
              {"first_k_dense_replace", 1},
              {"num_attention_heads", 2},
              {"num_key_value_heads", 2},
              {"n_shared_experts", 1},
              {"n_routed_experts", 4},
              {"num_experts_per_tok", 2},
              {"n_group", 2},
              {"topk_group", 1},
              {"kv_lora_rank", 4},
              {"q_lora_rank", nullptr},
              {"qk_rope_head_dim", 2},
              {"qk_nope_head_dim", 2},
              {"v_head_dim", 2},
              {"max_position_embeddings", 32},
              {"num_nextn_predict_layers", 1},
              {"bias_update_speed", 0.001},
              {"train", {{"steps", 4}, {"global_batch", 2}, {"checkpoint_every", 1}}},
              {"data", {{"path", "tokens.h5"}, {"seq_len", 4}}}};
}

void config_seeds(const fs::path& src) {
  const std::vector<std::string> overrides = {"", "train.steps=5", "train.lr=3e-4\tparallel.micro_batches=2",
                                              "scoring_func=softmax\ttopk_method=greedy\tn_group=1\ttopk_group=1",
                                              "train.lr_schedule=step\ttrain.lr_decay_at=[0.6,0.9]"};
  size_t k = 0;
  for (const auto& e : fs::directory_iterator(src / "configs")) {
    if (e.path().extension() != ".json") continue;
    std::string text = read_file(e.path());
    write_seed("fuzz_config", e.path().stem().string() + ".txt", overrides[k % overrides.size()] + "\n" + text);
    write_seed("fuzz_hf_config", e.path().filename().string(), model_fields(json::parse(text)).dump(1));
    ++k;
  }
  write_seed("fuzz_config", "micro.txt",
             "rope_scaling={\"type\":\"yarn\",\"factor\":4,\"original_max_position_embeddings\":8}\n" + micro_config().dump(1));
  write_seed("fuzz_hf_config", "ga_lossmask.json", read_file(src / "tests/train/data/ga_lossmask/hf/config.json"));
  json hf = model_fields(micro_config());
  hf["architectures"] = {"DeepseekV3ForCausalLM"};
  hf["torch_dtype"] = "bfloat16";
  hf["quantization_config"] = {
      {"activation_scheme", "dynamic"}, {"fmt", "e4m3"}, {"quant_method", "fp8"}, {"weight_block_size", {128, 128}}};
  write_seed("fuzz_hf_config", "micro.json", hf.dump(1));
}

void safetensors_seeds() {
  fs::path tmp = g_out / "tmp.safetensors";
  {
    mlamoe::SafetensorsWriter w(tmp.string(), "F32");
    const float v[6] = {1.0f, -2.5f, 0.0f, 3.25f, 1e-3f, -7.0f};
    w.add("model.embed_tokens.weight", {2, 3}, v);
    w.add("model.norm.weight", {4}, v, "BF16");
    w.add("lm_head.weight", {2, 2}, v, "F16");
    w.add("scalar", {}, v);
    w.set_metadata("note", "fuzz seed");
    w.finish();
  }
  move_seed("fuzz_safetensors", "mixed.safetensors", tmp);
  // FP8 weight [3, 5] and its scale_inv [2, 3] (blocks of 2 x 2), written by hand: the writer
  // stores 16- and 32-bit floats only.
  json header = {{"__metadata__", {{"format", "pt"}}},
                 {"w.weight", {{"dtype", "F8_E4M3"}, {"shape", {3, 5}}, {"data_offsets", {0, 15}}}},
                 {"w.weight_scale_inv", {{"dtype", "F32"}, {"shape", {2, 3}}, {"data_offsets", {15, 39}}}},
                 {"empty", {{"dtype", "F32"}, {"shape", {0, 3}}, {"data_offsets", {39, 39}}}}};
  std::string h = header.dump();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((h.size() >> (8 * i)) & 0xff);
  bytes += h;
  for (int i = 0; i < 15; ++i) bytes += static_cast<char>(0x30 + i * 5);  // assorted E4M3 codes
  const float scales[6] = {0.5f, 2.0f, 1.0f, 4.0f, 0.25f, 8.0f};
  bytes.append(reinterpret_cast<const char*>(scales), sizeof scales);
  write_seed("fuzz_safetensors", "fp8.safetensors", bytes);
}

void tokenizer_seeds() {
  const std::string text = std::string(1, '\0') + "The then in 42 你好<｜end▁of▁sentence｜>";
  json hand = mlamoe::hand_tokenizer();
  write_seed("fuzz_tokenizer", "hand.json", hand.dump() + text);
  // GPT-2 style: ByteLevel alone (its own regex), string merges, an unk token, lstrip/rstrip tokens.
  json gpt2 = hand;
  gpt2["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  gpt2["normalizer"] = nullptr;
  gpt2["model"]["merges"] = {mlamoe::byte_char(' ') + " t", "h e", mlamoe::byte_char(' ') + "t he", "i n"};
  gpt2["model"]["unk_token"] = "a";
  gpt2["added_tokens"].push_back({{"id", 262}, {"content", "<mask>"}, {"special", true}, {"lstrip", true}, {"rstrip", true}});
  gpt2["added_tokens"].push_back(
      {{"id", 263}, {"content", "word"}, {"special", false}, {"single_word", true}, {"normalized", true}});
  write_seed("fuzz_tokenizer", "gpt2_style.json", gpt2.dump() + std::string(1, '\0') + "a <mask> word words");
  json ignore = hand;
  ignore["model"]["ignore_merges"] = true;
  write_seed("fuzz_tokenizer", "ignore_merges.json", ignore.dump(1));
}

void token_dataset_seeds() {
  fs::path tmp = g_out / "tmp.h5";
  {
    mlamoe::TokenDatasetWriter w(tmp.string(), "byte", 16, 1);
    std::vector<int32_t> doc;
    for (int d = 0; d < 3; ++d) {
      doc.clear();
      for (int i = 0; i < 7 + 3 * d; ++i) doc.push_back((i * 5 + d) % 16);
      doc.push_back(1);
      w.append_document(doc.data(), static_cast<int64_t>(doc.size()));
    }
    w.finish();
  }
  move_seed("fuzz_token_dataset", "plain.h5", tmp);
  {
    mlamoe::TokenDatasetWriter w(tmp.string(), "byte", 16, 1, true);
    for (int d = 0; d < 2; ++d) {
      std::vector<int32_t> ids;
      std::vector<uint8_t> mask;
      for (int i = 0; i < 10; ++i) ids.push_back((i * 3 + d) % 16), mask.push_back(i >= 6);
      w.append_tokens(ids.data(), mask.data(), static_cast<int64_t>(ids.size()));
      w.end_document();
    }
    w.finish();
  }
  move_seed("fuzz_token_dataset", "masked.h5", tmp);
}

void checkpoint_seeds() {
  // Smaller still than micro_config (one MoE layer, no MTP): every tensor is an HDF5 dataset with
  // its own object header, and a small file leaves the fuzzer more of the structure to mutate.
  json config = micro_config();
  config.update(json{{"num_hidden_layers", 1},
                     {"first_k_dense_replace", 0},
                     {"num_nextn_predict_layers", 0},
                     {"n_routed_experts", 2},
                     {"num_experts_per_tok", 1},
                     {"n_group", 1},
                     {"topk_group", 1}});
  mlamoe::ModelConfig cfg = mlamoe::parse_model_config(config, "micro");
  mlamoe::DeepSeekModel model(cfg, 1);
  mlamoe::AdamW opt(model.params, {});
  fs::path tmp = g_out / "tmp-ckpt.h5";
  mlamoe::TrainState st;
  st.step = 3, st.tokens_seen = 24, st.optimizer_steps = 3, st.loader.epoch = 1, st.loader.index = 2;
  mlamoe::save_checkpoint(tmp.string(), model, &opt, st, config, nullptr);
  move_seed("fuzz_checkpoint", "with_optimizer.h5", tmp);
  mlamoe::save_weights(tmp.string(), model, config, 4);
  move_seed("fuzz_checkpoint", "weights.h5", tmp);
}

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  return bytes + header + data;
}

void regression_inputs() {
  constexpr size_t kDepth = 100000;
  const std::string deep_array = std::string(kDepth, '[') + std::string(kDepth, ']');
  std::string deep_object;
  for (size_t i = 0; i < kDepth; ++i) deep_object += "{\"a\":";
  deep_object += "1" + std::string(kDepth, '}');

  write_regression("fuzz_config", "deep_field.txt", "\n{\"vocab_size\": " + deep_array + "}");
  write_regression("fuzz_config", "deep_section.txt", "\n{\"train\": " + deep_object + "}");
  write_regression("fuzz_config", "deep_set.txt", "train.lr=" + deep_array + "\n" + micro_config().dump());
  write_regression("fuzz_hf_config", "deep_field.json", "{\"vocab_size\": " + deep_array + "}");
  write_regression("fuzz_hf_config", "deep_rope_scaling.json", "{\"rope_scaling\": " + deep_object + "}");

  write_regression("fuzz_safetensors", "deep_shape.safetensors",
                   safetensors_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":" + deep_array + ",\"data_offsets\":[0,0]}}", ""));
  write_regression("fuzz_safetensors", "deep_offsets.safetensors",
                   safetensors_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":" + deep_array + "}}", "1234"));
  write_regression("fuzz_safetensors", "deep_metadata.safetensors",
                   safetensors_bytes("{\"__metadata__\":" + deep_object + "}", ""));

  json hand = mlamoe::hand_tokenizer();
  for (const char* field : {"normalizer", "decoder", "added_tokens", "pre_tokenizer"}) {
    std::string text = hand.dump();
    // Replace the field's value by the deep one: the key is unique in the document.
    const std::string key = std::string("\"") + field + "\":";
    size_t at = text.find(key);
    json value = hand[field];
    std::string old = value.dump();
    text.replace(text.find(old, at), old.size(), field == std::string("added_tokens") ? "[" + deep_object + "]" : deep_object);
    write_regression("fuzz_tokenizer", std::string("deep_") + field + ".json", text);
  }
  // A pre-tokenizer Sequence nested 100000 deep: bpe_tokenizer.cpp walks Sequences recursively.
  std::string seq;
  for (size_t i = 0; i < kDepth; ++i) seq += "{\"type\":\"Sequence\",\"pretokenizers\":[";
  seq += "{\"type\":\"ByteLevel\"}";
  for (size_t i = 0; i < kDepth; ++i) seq += "]}";
  {
    std::string text = hand.dump();
    std::string old = hand["pre_tokenizer"].dump();
    text.replace(text.find(old), old.size(), seq);
    write_regression("fuzz_tokenizer", "deep_sequence.json", text);
  }

  // A checkpoint whose stored config is nested 100000 deep.
  json config = micro_config();
  mlamoe::ModelConfig cfg = mlamoe::parse_model_config(config, "micro");
  mlamoe::DeepSeekModel model(cfg, 1);
  fs::path tmp = g_out / "tmp-deep.h5";
  mlamoe::save_weights(tmp.string(), model, config, 1);
  {
    mlamoe::H5Id f(H5Fopen(tmp.c_str(), H5F_ACC_RDWR, H5P_DEFAULT), H5Fclose);
    if (!f.valid() || H5Adelete(f.get(), "config") < 0) throw std::runtime_error("cannot rewrite the config of " + tmp.string());
    mlamoe::h5_write_string_attribute(f.get(), "config", "{\"vocab_size\": " + deep_array + "}", tmp.string());
  }
  move_seed("regressions/fuzz_checkpoint", "deep_config.h5", tmp);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fuzz_seeds OUT\n");
    return 2;
  }
  g_out = argv[1];
  try {
    fs::create_directories(g_out);
    config_seeds(MLAMOE_SOURCE_DIR);
    safetensors_seeds();
    tokenizer_seeds();
    token_dataset_seeds();
    checkpoint_seeds();
    regression_inputs();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "make_fuzz_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
