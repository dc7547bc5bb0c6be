#include "model/model_size.h"

namespace mlamoe {

ModelSize model_size(const ModelConfig& c, int64_t seq_len) {
  ModelSize s;
  const int64_t d = c.hidden_size, h = c.num_attention_heads, r_kv = c.kv_lora_rank, d_r = c.qk_rope_head_dim;
  const int64_t d_n = c.qk_nope_head_dim, d_v = c.v_head_dim, d_qk = c.qk_head_dim(), L = c.num_hidden_layers;
  const int64_t V = c.vocab_size, D = c.num_nextn_predict_layers;

  // Attention (§10): q path, joint KV down-projection, KV up-projection, output projection.
  int64_t q_matmul = c.q_lora_rank ? d * *c.q_lora_rank + *c.q_lora_rank * h * d_qk : d * h * d_qk;
  s.attention_matmul = q_matmul + d * (r_kv + d_r) + r_kv * h * (d_n + d_v) + h * d_v * d;
  s.attention = s.attention_matmul + (c.q_lora_rank ? *c.q_lora_rank : 0) + r_kv;

  s.dense_mlp = 3 * d * c.intermediate_size;
  s.expert = 3 * d * c.moe_intermediate_size;
  const int64_t n_r = c.n_routed_experts, n_s = c.n_shared_experts, k = c.num_experts_per_tok;
  s.moe_total = n_r * d + (n_r + n_s) * s.expert;
  s.moe_active = n_r * d + (k + n_s) * s.expert;
  s.embedding = V * d;

  int64_t ffn_total = 0, ffn_active = 0;
  for (int64_t l = 0; l < L; ++l) {
    bool moe = c.is_moe_layer(l);
    ffn_total += moe ? s.moe_total : s.dense_mlp;
    ffn_active += moe ? s.moe_active : s.dense_mlp;
  }
  const int64_t norms = 2 * d;  // input_layernorm + post_attention_layernorm
  s.main_total = L * (s.attention + norms) + ffn_total + 2 * s.embedding + d;
  // MTP depth (§5, §10): eh_proj [d, 2d], enorm, hnorm, shared_head.norm, one decoder block with a
  // MoE FFN (V3 puts it at index L, past first_k_dense_replace). Embedding and head are shared.
  s.mtp_per_depth = 2 * d * d + 3 * d + s.attention + norms + (c.is_moe() ? s.moe_total : s.dense_mlp);
  s.total = s.main_total + D * s.mtp_per_depth;

  s.active_without_embedding = L * (s.attention + norms) + ffn_active + s.embedding + d;
  s.active_with_embedding = s.active_without_embedding + s.embedding;
  // Router, experts and dense MLPs are all matmuls; of the embeddings only the head is one.
  s.active_matmul = L * s.attention_matmul + ffn_active + s.embedding;
  s.mtp_active_matmul = 2 * d * d + s.attention_matmul + (c.is_moe() ? s.moe_active : s.dense_mlp) + s.embedding;

  s.attention_flops_per_layer = static_cast<double>(h) * static_cast<double>(d_qk + d_v) * static_cast<double>(seq_len + 1);
  s.flops_per_token_main =
      6.0 * static_cast<double>(s.active_matmul) + 3.0 * static_cast<double>(L) * s.attention_flops_per_layer;
  s.flops_per_token_mtp =
      static_cast<double>(D) * (6.0 * static_cast<double>(s.mtp_active_matmul) + 3.0 * s.attention_flops_per_layer);
  s.kv_cache_elements_per_token = L * (r_kv + d_r);
  return s;
}

}  // namespace mlamoe
