#include "model/config.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <type_traits>

#include "model/json_fields.h"
#include "model/json_parse.h"
#include "model/tensor/error.h"

namespace mlamoe {

namespace {

using json = nlohmann::json;

RopeScaling parse_rope_scaling(const json& j, const std::string& where) {
  Fields f(j, where, "rope_scaling");
  RopeScaling r;
  if (f.has("type")) {
    f.get("type", r.type);
    f.ignore("rope_type");
  } else {
    f.get("rope_type", r.type, true);
  }
  f.get("factor", r.factor, true);
  f.get("original_max_position_embeddings", r.original_max_position_embeddings, true);
  f.get("beta_fast", r.beta_fast);
  f.get("beta_slow", r.beta_slow);
  f.get("mscale", r.mscale);
  f.get("mscale_all_dim", r.mscale_all_dim);
  f.reject_unknown();
  MLAMOE_CHECK(r.type == "yarn", where << ": rope_scaling.type '" << r.type << "' is not supported (only \"yarn\")");
  MLAMOE_CHECK(r.factor >= 1.0, where << ": rope_scaling.factor must be >= 1, got " << r.factor);
  MLAMOE_CHECK(r.original_max_position_embeddings > 0,
               where << ": rope_scaling.original_max_position_embeddings must be positive");
  MLAMOE_CHECK(r.beta_fast > r.beta_slow && r.beta_slow > 0,
               where << ": rope_scaling needs beta_fast > beta_slow > 0, got " << r.beta_fast << " and " << r.beta_slow);
  return r;
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& where) {
  Fields f(j, where, "");
  ModelConfig c;
  f.get("model_type", c.model_type);
  f.get("vocab_size", c.vocab_size, true);
  f.get("hidden_size", c.hidden_size, true);
  f.get("intermediate_size", c.intermediate_size, true);
  f.get("moe_intermediate_size", c.moe_intermediate_size);
  f.get("num_hidden_layers", c.num_hidden_layers, true);
  f.get("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  f.get("num_key_value_heads", c.num_key_value_heads);
  f.get("n_shared_experts", c.n_shared_experts);
  f.get("n_routed_experts", c.n_routed_experts);  // null -> 0: dense
  f.get("routed_scaling_factor", c.routed_scaling_factor);
  f.get("kv_lora_rank", c.kv_lora_rank, true);
  f.get("q_lora_rank", c.q_lora_rank);
  f.get("qk_rope_head_dim", c.qk_rope_head_dim, true);
  f.get("qk_nope_head_dim", c.qk_nope_head_dim, true);
  f.get("v_head_dim", c.v_head_dim, true);
  f.get("topk_method", c.topk_method);
  f.get("n_group", c.n_group);
  f.get("topk_group", c.topk_group);
  f.get("num_experts_per_tok", c.num_experts_per_tok);
  f.get("moe_layer_freq", c.moe_layer_freq);
  f.get("first_k_dense_replace", c.first_k_dense_replace);
  f.get("norm_topk_prob", c.norm_topk_prob);
  f.get("scoring_func", c.scoring_func);
  f.get("aux_loss_alpha", c.aux_loss_alpha);
  f.get("seq_aux", c.seq_aux);
  f.get("hidden_act", c.hidden_act);
  f.get("max_position_embeddings", c.max_position_embeddings, true);
  f.get("initializer_range", c.initializer_range);
  f.get("rms_norm_eps", c.rms_norm_eps);
  f.get("rope_theta", c.rope_theta);
  f.ignore("rope_scaling");
  if (f.has("rope_scaling")) c.rope_scaling = parse_rope_scaling(j.at("rope_scaling"), where);
  f.get("attention_bias", c.attention_bias);
  f.get("attention_dropout", c.attention_dropout);
  f.get("tie_word_embeddings", c.tie_word_embeddings);
  f.get("num_nextn_predict_layers", c.num_nextn_predict_layers);
  f.get("bos_token_id", c.bos_token_id);
  f.get("eos_token_id", c.eos_token_id);
  bool rope_interleave = true;  // [HF-v3]: false selects the rotate-half pairing, a different model
  f.get("rope_interleave", rope_interleave);
  MLAMOE_CHECK(rope_interleave, where << ": rope_interleave = false (rotate-half pairing) is not supported; mlamoe uses "
                                         "interleaved pairs, the layout of the released checkpoints (model/README.md §2.3)");
  f.get("bias_update_speed", c.bias_update_speed);
  f.get("seq_aux_alpha", c.seq_aux_alpha);
  f.get("mtp_loss_weight", c.mtp_loss_weight);
  // Carried by released HF configs, no effect on training here.
  for (const char* name : {"architectures", "auto_map", "ep_size", "pretraining_tp", "quantization_config", "torch_dtype",
                           "transformers_version", "use_cache", "_name_or_path"})
    f.ignore(name);
  // The run sections, read by train/.
  for (const char* name : {"train", "data", "parallel"}) f.ignore(name);
  f.reject_unknown();
  validate_model_config(c, where);
  return c;
}

void validate_model_config(const ModelConfig& c, const std::string& where) {
  auto in_range = [&](int64_t v, const char* name, int64_t lo, int64_t hi) {
    MLAMOE_CHECK(v >= lo && v <= hi, where << ": " << name << " must be in [" << lo << ", " << hi << "], got " << v);
  };
  using L = ModelLimits;
  in_range(c.vocab_size, "vocab_size", 1, L::vocab_size);
  in_range(c.hidden_size, "hidden_size", 1, L::hidden_size);
  in_range(c.num_hidden_layers, "num_hidden_layers", 1, L::num_hidden_layers);
  in_range(c.num_attention_heads, "num_attention_heads", 1, L::num_attention_heads);
  in_range(c.kv_lora_rank, "kv_lora_rank", 1, L::lora_rank);
  in_range(c.qk_rope_head_dim, "qk_rope_head_dim", 1, L::head_dim);
  in_range(c.qk_nope_head_dim, "qk_nope_head_dim", 1, L::head_dim);
  in_range(c.v_head_dim, "v_head_dim", 1, L::head_dim);
  in_range(c.max_position_embeddings, "max_position_embeddings", 1, L::max_position_embeddings);
  if (c.q_lora_rank) in_range(*c.q_lora_rank, "q_lora_rank (null for none)", 1, L::lora_rank);
  in_range(c.intermediate_size, "intermediate_size", 0, L::intermediate_size);
  in_range(c.moe_intermediate_size, "moe_intermediate_size", 0, L::intermediate_size);
  in_range(c.n_routed_experts, "n_routed_experts", 0, L::experts);
  in_range(c.n_shared_experts, "n_shared_experts", 0, L::experts);
  in_range(c.num_nextn_predict_layers, "num_nextn_predict_layers", 0, L::num_nextn_predict_layers);
  in_range(c.moe_layer_freq, "moe_layer_freq", 1, L::num_hidden_layers);
  in_range(c.num_experts_per_tok, "num_experts_per_tok", 0, L::experts);
  in_range(c.n_group, "n_group", 0, L::experts);
  in_range(c.topk_group, "topk_group", 0, L::experts);
  auto finite_positive = [&](double v, const char* name) {
    MLAMOE_CHECK(std::isfinite(v) && v > 0, where << ": " << name << " must be a finite number > 0, got " << v);
  };
  finite_positive(c.rms_norm_eps, "rms_norm_eps");
  finite_positive(c.rope_theta, "rope_theta");
  finite_positive(c.initializer_range, "initializer_range");
  auto positive = [&](int64_t v, const char* name) {
    MLAMOE_CHECK(v > 0, where << ": " << name << " must be positive, got " << v);
  };
  MLAMOE_CHECK(c.qk_rope_head_dim % 2 == 0,
               where << ": qk_rope_head_dim must be even (rotary pairs), got " << c.qk_rope_head_dim);
  MLAMOE_CHECK(c.num_key_value_heads > 0 && c.num_attention_heads % c.num_key_value_heads == 0,
               where << ": num_key_value_heads (" << c.num_key_value_heads << ") must divide num_attention_heads ("
                     << c.num_attention_heads << ")");
  MLAMOE_CHECK(c.hidden_act == "silu", where << ": hidden_act '" << c.hidden_act << "' is not supported (only \"silu\")");
  MLAMOE_CHECK(!c.attention_bias, where << ": attention_bias must be false (MLA projections have no bias)");
  MLAMOE_CHECK(c.attention_dropout == 0.0, where << ": attention_dropout must be 0, got " << c.attention_dropout);
  MLAMOE_CHECK(!c.tie_word_embeddings, where << ": tie_word_embeddings must be false (DeepSeek models untie embedding and head)");
  for (auto [v, name] : {std::pair{c.bias_update_speed, "bias_update_speed"},
                         {c.seq_aux_alpha, "seq_aux_alpha"},
                         {c.mtp_loss_weight, "mtp_loss_weight"},
                         {c.aux_loss_alpha, "aux_loss_alpha"}})
    MLAMOE_CHECK(std::isfinite(v) && v >= 0, where << ": " << name << " must be a finite number >= 0, got " << v);
  MLAMOE_CHECK(c.first_k_dense_replace >= 0 && c.first_k_dense_replace <= c.num_hidden_layers,
               where << ": first_k_dense_replace must be in [0, num_hidden_layers = " << c.num_hidden_layers << "], got "
                     << c.first_k_dense_replace);
  MLAMOE_CHECK(c.moe_layer_freq >= 1, where << ": moe_layer_freq must be >= 1, got " << c.moe_layer_freq);
  bool any_dense = false;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) any_dense = any_dense || !c.is_moe_layer(l);
  if (any_dense) positive(c.intermediate_size, "intermediate_size (the model has dense layers)");
  MLAMOE_CHECK(c.n_routed_experts >= 0 && c.n_shared_experts >= 0,
               where << ": n_routed_experts and n_shared_experts must be >= 0");
  if (!c.is_moe()) return;

  const int64_t e = c.n_routed_experts, k = c.num_experts_per_tok, g = c.n_group, kg = c.topk_group;
  positive(c.moe_intermediate_size, "moe_intermediate_size");
  MLAMOE_CHECK(k >= 1 && k <= e, where << ": num_experts_per_tok must be in [1, n_routed_experts = " << e << "], got " << k);
  finite_positive(c.routed_scaling_factor, "routed_scaling_factor");
  MLAMOE_CHECK(c.scoring_func == "sigmoid" || c.scoring_func == "softmax",
               where << ": scoring_func must be \"sigmoid\" or \"softmax\", got '" << c.scoring_func << "'");
  MLAMOE_CHECK(
      c.topk_method == "noaux_tc" || c.topk_method == "group_limited_greedy" || c.topk_method == "greedy",
      where << ": topk_method must be \"noaux_tc\", \"group_limited_greedy\" or \"greedy\", got '" << c.topk_method << "'");
  MLAMOE_CHECK(c.topk_method != "noaux_tc" || c.scoring_func == "sigmoid",
               where << ": topk_method \"noaux_tc\" (bias-corrected, top-2-sum groups) needs scoring_func \"sigmoid\"");
  MLAMOE_CHECK(c.topk_method == "noaux_tc" || c.scoring_func == "softmax",
               where << ": topk_method \"" << c.topk_method << "\" (V2 routing) needs scoring_func \"softmax\"");
  MLAMOE_CHECK(g >= 1 && e % g == 0, where << ": n_group (" << g << ") must divide n_routed_experts (" << e << ")");
  MLAMOE_CHECK(kg >= 1 && kg <= g, where << ": topk_group must be in [1, n_group = " << g << "], got " << kg);
  MLAMOE_CHECK(c.topk_method != "greedy" || g == 1,
               where << ": topk_method \"greedy\" uses no groups: n_group must be 1, got " << g);
  MLAMOE_CHECK(kg * (e / g) >= k, where << ": topk_group * n_routed_experts / n_group = " << kg * (e / g)
                                        << " experts are kept per token, fewer than num_experts_per_tok = " << k);
  MLAMOE_CHECK(
      c.topk_method != "noaux_tc" || g == 1 || e / g >= 2,
      where << ": the top-2-sum group score needs at least 2 experts per group (n_routed_experts / n_group = " << e / g << ")");
}

json architecture_fields(const ModelConfig& c) {
  json j = {{"vocab_size", c.vocab_size},
            {"hidden_size", c.hidden_size},
            {"intermediate_size", c.intermediate_size},
            {"moe_intermediate_size", c.moe_intermediate_size},
            {"num_hidden_layers", c.num_hidden_layers},
            {"num_attention_heads", c.num_attention_heads},
            {"n_shared_experts", c.n_shared_experts},
            {"n_routed_experts", c.n_routed_experts},
            {"routed_scaling_factor", c.routed_scaling_factor},
            {"kv_lora_rank", c.kv_lora_rank},
            {"q_lora_rank", c.q_lora_rank ? json(*c.q_lora_rank) : json(nullptr)},
            {"qk_rope_head_dim", c.qk_rope_head_dim},
            {"qk_nope_head_dim", c.qk_nope_head_dim},
            {"v_head_dim", c.v_head_dim},
            {"topk_method", c.topk_method},
            {"n_group", c.n_group},
            {"topk_group", c.topk_group},
            {"num_experts_per_tok", c.num_experts_per_tok},
            {"moe_layer_freq", c.moe_layer_freq},
            {"first_k_dense_replace", c.first_k_dense_replace},
            {"norm_topk_prob", c.norm_topk_prob},
            {"scoring_func", c.scoring_func},
            {"hidden_act", c.hidden_act},
            {"rms_norm_eps", c.rms_norm_eps},
            {"rope_theta", c.rope_theta},
            {"num_nextn_predict_layers", c.num_nextn_predict_layers}};
  if (c.rope_scaling) {
    const RopeScaling& r = *c.rope_scaling;
    j["rope_scaling"] = {{"type", r.type},
                         {"factor", r.factor},
                         {"original_max_position_embeddings", r.original_max_position_embeddings},
                         {"beta_fast", r.beta_fast},
                         {"beta_slow", r.beta_slow},
                         {"mscale", r.mscale},
                         {"mscale_all_dim", r.mscale_all_dim}};
  } else {
    j["rope_scaling"] = nullptr;
  }
  return j;
}

}  // namespace mlamoe
