// The model configuration: the Hugging Face DeepSeek `config.json` fields, verbatim (CONTRIBUTING.md "Code habits"
// item 5), so a downloaded DeepSeek-V2-Lite / V2 / V3 config.json parses as it is, plus three
// fields of ours for training (model/README.md §9). Parsing rejects unknown fields, wrong types and
// impossible combinations with one message naming the field and the rule.
//
// A run config file holds these fields at its top level beside the "train", "data" and "parallel"
// sections, which belong to train/ and are skipped here.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace mlamoe {

struct RopeScaling {                                // YaRN (model/README.md §2.3); only type "yarn" is supported
  std::string type;                                 // e.g. "yarn"
  double factor = 1.0;                              // e.g. 40
  int64_t original_max_position_embeddings = 4096;  // e.g. 4096
  double beta_fast = 32.0;                          // e.g. 32
  double beta_slow = 1.0;                           // e.g. 1
  double mscale = 1.0;                              // e.g. 1.0 (V3), 0.707 (V2)
  double mscale_all_dim = 0.0;                      // e.g. 1.0 (V3), 0.707 (V2)
};

struct ModelConfig {
  std::string model_type = "deepseek_v3";   // e.g. "deepseek_v3", "deepseek_v2"
  int64_t vocab_size = 0;                   // e.g. 129280
  int64_t hidden_size = 0;                  // e.g. 7168
  int64_t intermediate_size = 0;            // e.g. 18432 (dense layers)
  int64_t moe_intermediate_size = 0;        // e.g. 2048 (one expert)
  int64_t num_hidden_layers = 0;            // e.g. 61
  int64_t num_attention_heads = 0;          // e.g. 128
  int64_t num_key_value_heads = 0;          // e.g. 128 (unused by MLA; kept for HF compatibility)
  int64_t n_shared_experts = 0;             // e.g. 1
  int64_t n_routed_experts = 0;             // e.g. 256; 0 (HF: null) means a dense model
  double routed_scaling_factor = 1.0;       // e.g. 2.5
  int64_t kv_lora_rank = 0;                 // e.g. 512
  std::optional<int64_t> q_lora_rank;       // e.g. 1536; empty (HF: null) means a plain q_proj
  int64_t qk_rope_head_dim = 0;             // e.g. 64
  int64_t qk_nope_head_dim = 0;             // e.g. 128
  int64_t v_head_dim = 0;                   // e.g. 128
  std::string topk_method = "noaux_tc";     // "noaux_tc" (V3), "group_limited_greedy" (V2), "greedy" (V2-Lite)
  int64_t n_group = 1;                      // e.g. 8
  int64_t topk_group = 1;                   // e.g. 4
  int64_t num_experts_per_tok = 0;          // e.g. 8
  int64_t moe_layer_freq = 1;               // e.g. 1
  int64_t first_k_dense_replace = 0;        // e.g. 3
  bool norm_topk_prob = true;               // e.g. true (V3), false (V2)
  std::string scoring_func = "sigmoid";     // "sigmoid" (V3) or "softmax" (V2)
  double aux_loss_alpha = 0.0;              // e.g. 0.001: the V2 expert-level balance loss weight
  bool seq_aux = true;                      // e.g. true: that loss per sequence
  std::string hidden_act = "silu";          // only "silu"
  int64_t max_position_embeddings = 0;      // e.g. 163840
  double initializer_range = 0.02;          // e.g. 0.02
  double rms_norm_eps = 1e-6;               // e.g. 1e-6
  double rope_theta = 10000.0;              // e.g. 10000
  std::optional<RopeScaling> rope_scaling;  // null for from-scratch 4K training
  bool attention_bias = false;              // must be false
  double attention_dropout = 0.0;           // must be 0
  bool tie_word_embeddings = false;         // must be false (DeepSeek unties embedding and head)
  int64_t num_nextn_predict_layers = 0;     // e.g. 1 (MTP depth D); absent in V2 configs
  std::optional<int64_t> bos_token_id;      // e.g. 0
  std::optional<int64_t> eos_token_id;      // e.g. 1

  // Ours (model/README.md §9), not in HF configs:
  double bias_update_speed = 0.0;  // γ of the aux-loss-free bias update, e.g. 1e-3
  double seq_aux_alpha = 0.0;      // α of the complementary sequence-wise balance loss, e.g. 1e-4
  double mtp_loss_weight = 0.0;    // λ of the MTP loss, e.g. 0.3

  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }  // d_qk
  bool is_moe() const { return n_routed_experts > 0; }
  // HF rule (model/README.md §1): MoE iff experts exist, l >= first_k_dense_replace and l % moe_layer_freq == 0.
  bool is_moe_layer(int64_t layer) const { return is_moe() && layer >= first_k_dense_replace && layer % moe_layer_freq == 0; }
};

// Parses the model fields of a config (a whole run config or a bare HF config.json) and validates
// them. `where` names the source in messages (a file path). Throws mlamoe::Error.
ModelConfig parse_model_config(const nlohmann::json& j, const std::string& where);

// The fields that decide the weights' shapes and the forward maths, with defaults filled in (so a
// config that leaves a field at its default equals one that spells it out). Not part of it: the
// training knobs (bias_update_speed, seq_aux_alpha, aux_loss_alpha, seq_aux, mtp_loss_weight),
// model_type, max_position_embeddings, initializer_range, the token ids, the fields that must have
// one value (attention_bias, attention_dropout, tie_word_embeddings) and HF bookkeeping fields.
nlohmann::json architecture_fields(const ModelConfig& c);

// Upper bounds of the size fields, checked at parse time so that no later size, byte or FLOP count
// can overflow 64 bits and no per-layer loop runs for hours. Each is far above every released
// DeepSeek model (V3: vocab 129,280, hidden 7,168, 61 layers, 128 heads, 256 experts, MoE width
// 2,048, dense width 18,432, context 163,840).
struct ModelLimits {
  static constexpr int64_t vocab_size = int64_t{1} << 22;         // 4,194,304
  static constexpr int64_t hidden_size = int64_t{1} << 16;        // 65,536
  static constexpr int64_t intermediate_size = int64_t{1} << 18;  // 262,144 (dense and MoE widths)
  static constexpr int64_t num_hidden_layers = 1024;
  static constexpr int64_t num_attention_heads = 1024;
  static constexpr int64_t head_dim = 4096;                             // qk_nope, qk_rope, v head dims
  static constexpr int64_t lora_rank = int64_t{1} << 16;                // kv_lora_rank, q_lora_rank
  static constexpr int64_t experts = 4096;                              // n_routed_experts, n_shared_experts
  static constexpr int64_t max_position_embeddings = int64_t{1} << 24;  // 16,777,216
  static constexpr int64_t num_nextn_predict_layers = 16;
};

// Checks ranges (ModelLimits) and combinations (heads, groups, top-k, ...); parse_model_config
// calls it. Throws one line naming the field, its value and the rule.
void validate_model_config(const ModelConfig& c, const std::string& where);

}  // namespace mlamoe
