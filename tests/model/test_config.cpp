// Config parsing and validation, and the size formulas of model/README.md §10 checked against the
// figures the spec gives for Tiny-A, Tiny-B, DeepSeek-V2-Lite, V2 and V3.
#include <gtest/gtest.h>

#include <fstream>

#include "model/json_parse.h"
#include "model/model_size.h"
#include "model/tensor/error.h"

namespace mlamoe {
namespace {

nlohmann::json load(const std::string& name) {
  std::ifstream f(std::string(MLAMOE_SOURCE_DIR) + "/configs/" + name);
  return nlohmann::json::parse(f);
}

ModelConfig config(const std::string& name) { return parse_model_config(load(name), name); }

// Expects parsing `j` to fail with a message containing `needle`.
void expect_rejected(const nlohmann::json& j, const std::string& needle) {
  try {
    parse_model_config(j, "test.json");
    ADD_FAILURE() << "accepted a config that should fail with '" << needle << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
  }
}

TEST(Config, ParsesTheShippedConfigs) {
  ModelConfig v3 = config("deepseek-v3.json");
  EXPECT_EQ(v3.hidden_size, 7168);
  EXPECT_EQ(*v3.q_lora_rank, 1536);
  ASSERT_TRUE(v3.rope_scaling.has_value());
  EXPECT_EQ(v3.rope_scaling->factor, 40.0);
  EXPECT_FALSE(v3.is_moe_layer(2));
  EXPECT_TRUE(v3.is_moe_layer(3));
  ModelConfig lite = config("deepseek-v2-lite.json");
  EXPECT_FALSE(lite.q_lora_rank.has_value());  // "q_lora_rank": null
  EXPECT_EQ(lite.scoring_func, "softmax");
  EXPECT_EQ(lite.num_nextn_predict_layers, 0);  // absent in V2 configs
  ModelConfig tiny = config("tiny.json");
  EXPECT_EQ(tiny.qk_head_dim(), 48);
  EXPECT_FALSE(tiny.rope_scaling.has_value());  // "rope_scaling": null
  EXPECT_EQ(tiny.bias_update_speed, 1e-3);
  config("small.json");
  config("deepseek-v2.json");
}

TEST(Config, RejectsUnknownFieldsWrongTypesAndImpossibleCombinations) {
  nlohmann::json tiny = load("tiny.json");
  auto with = [&](const char* key, nlohmann::json v) {
    nlohmann::json j = tiny;
    j[key] = v;
    return j;
  };
  expect_rejected(with("hiden_size", 128), "unknown field 'hiden_size'");
  expect_rejected(with("hidden_size", "128"), "field 'hidden_size' must be an integer, got \"128\"");
  expect_rejected(with("norm_topk_prob", 1), "field 'norm_topk_prob' must be true or false");
  expect_rejected(with("num_experts_per_tok", 9),
                  "topk_group * n_routed_experts / n_group = 8 experts are kept per token, "
                  "fewer than num_experts_per_tok = 9");
  expect_rejected(with("n_group", 3), "n_group (3) must divide n_routed_experts (16)");
  expect_rejected(with("topk_group", 5), "topk_group must be in [1, n_group = 4]");
  expect_rejected(with("num_key_value_heads", 3), "num_key_value_heads (3) must divide num_attention_heads (4)");
  expect_rejected(with("qk_rope_head_dim", 15), "qk_rope_head_dim must be even");
  expect_rejected(with("scoring_func", "softmax"),
                  "topk_method \"noaux_tc\" (bias-corrected, top-2-sum groups) needs scoring_func \"sigmoid\"");
  expect_rejected(with("tie_word_embeddings", true), "tie_word_embeddings must be false");
  expect_rejected(with("first_k_dense_replace", 5), "first_k_dense_replace must be in [0, num_hidden_layers = 4]");
  expect_rejected(with("rope_interleave", false), "rope_interleave = false");
  expect_rejected(with("hidden_act", "gelu"), "hidden_act 'gelu' is not supported");
  expect_rejected(with("rope_scaling", {{"type", "linear"}, {"factor", 2}, {"original_max_position_embeddings", 128}}),
                  "rope_scaling.type 'linear' is not supported");
  expect_rejected(
      with("rope_scaling", {{"type", "yarn"}, {"factor", 2}, {"original_max_position_embeddings", 128}, {"betta", 1}}),
      "unknown field 'rope_scaling.betta'");
  nlohmann::json missing = tiny;
  missing.erase("kv_lora_rank");
  expect_rejected(missing, "required field 'kv_lora_rank' is missing");
  // n_routed_experts 16 over n_group 16: one expert per group cannot give a top-2 sum.
  nlohmann::json one_per_group = with("n_group", 16);
  one_per_group["topk_group"] = 8;
  expect_rejected(one_per_group, "needs at least 2 experts per group");
}

TEST(ModelSize, TinyAMatchesTheSpec) {  // model/README.md §9
  ModelSize s = model_size(config("tiny.json"), 256);
  EXPECT_EQ(s.attention, 51296);
  EXPECT_EQ(s.dense_mlp, 147456);
  EXPECT_EQ(s.expert, 24576);
  EXPECT_EQ(s.moe_total, 419840);
  EXPECT_EQ(s.embedding, 65536);
  EXPECT_EQ(s.main_total, 1744384);
  EXPECT_EQ(s.mtp_per_depth, 504544);
  EXPECT_EQ(s.kv_cache_elements_per_token, 4 * 48);  // "KV cache: 192 elements/token"
  EXPECT_EQ(s.active_matmul, 792576);
  EXPECT_NEAR(s.flops_per_token_main, 5.74e6, 0.005e6);  // §10 table, S = 256
  EXPECT_NEAR(s.flops_per_token_mtp, 1.89e6, 0.005e6);
}

TEST(ModelSize, TinyBMatchesTheSpec) {
  ModelSize s = model_size(config("small.json"), 1024);
  EXPECT_EQ(s.attention, 721216);
  EXPECT_EQ(s.expert, 196608);
  EXPECT_EQ(s.embedding, 4194304);
  EXPECT_EQ(s.main_total, 47604096);
  EXPECT_EQ(s.mtp_per_depth, 7752512);
  EXPECT_EQ(s.kv_cache_elements_per_token, 960);
  EXPECT_NEAR(static_cast<double>(s.active_matmul), 1.588e7, 0.0005e7);
  EXPECT_NEAR(s.flops_per_token_main, 1.189e8, 0.0005e8);
  EXPECT_NEAR(s.flops_per_token_mtp, 4.26e7, 0.005e7);
}

TEST(ModelSize, ReleasedModelsMatchTheSpec) {  // model/README.md §10 table and §2.6 cache sizes
  struct Want {
    const char* file;
    double total, active_with_emb, active_without_emb, n_mm, flops_main, kv;
  };
  for (const Want& w : {Want{"deepseek-v2-lite.json", 15.706e9, 2.661e9, 2.451e9, 2.451e9, 1.641e10, 15552},
                        Want{"deepseek-v2.json", 235.74e9, 21.38e9, 20.85e9, 2.085e10, 1.553e11, 34560},
                        Want{"deepseek-v3.json", 671.03e9, 37.55e9, 36.63e9, 3.662e10, 2.505e11, 35136}}) {
    SCOPED_TRACE(w.file);
    ModelSize s = model_size(config(w.file), 4096);
    EXPECT_NEAR(static_cast<double>(s.main_total), w.total, 0.0005 * w.total);  // the spec gives 4-5 digits
    EXPECT_NEAR(static_cast<double>(s.active_with_embedding), w.active_with_emb, 0.0005 * w.active_with_emb);
    EXPECT_NEAR(static_cast<double>(s.active_without_embedding), w.active_without_emb, 0.0005 * w.active_without_emb);
    EXPECT_NEAR(static_cast<double>(s.active_matmul), w.n_mm, 0.0005 * w.n_mm);
    EXPECT_NEAR(s.flops_per_token_main, w.flops_main, 0.0005 * w.flops_main);
    EXPECT_EQ(s.kv_cache_elements_per_token, static_cast<int64_t>(w.kv));
  }
  ModelSize v3 = model_size(config("deepseek-v3.json"), 4096);
  EXPECT_NEAR(static_cast<double>(v3.mtp_per_depth), 11.61e9, 0.005e9);  // "+11.6B MTP"
  EXPECT_NEAR(v3.flops_per_token_mtp, 1.02e10, 0.005e10);
}

}  // namespace
}  // namespace mlamoe
