// Parameter counts, FLOPs per token and KV-cache size of a config, by the formulas of model/README.md §10
// and §2.6. Used by `--dry-run`, by MFU, and checked in tests against the spec's figures.
#pragma once
#include <cstdint>

#include "model/config.h"

namespace mlamoe {

struct ModelSize {
  // Per-part parameter counts.
  int64_t attention = 0;                 // A: one MLA layer (projections and the latent norms' gains)
  int64_t attention_matmul = 0;          // A_mm: A without the q_a/kv_a norm gains
  int64_t dense_mlp = 0;                 // F_d = 3·d·I
  int64_t expert = 0;                    // E = 3·d·I_m
  int64_t moe_total = 0;                 // router N_r·d + (N_r + N_s)·E
  int64_t moe_active = 0;                // router N_r·d + (K + N_s)·E
  int64_t embedding = 0;                 // V·d (the head has as many)
  int64_t main_total = 0;                // the whole model without MTP
  int64_t mtp_per_depth = 0;             // one MTP module (its embedding and head are shared, not counted)
  int64_t total = 0;                     // main_total + D·mtp_per_depth
  int64_t active_with_embedding = 0;     // parameters used per token, main model
  int64_t active_without_embedding = 0;  // the published "activated" figure
  int64_t active_matmul = 0;             // N_mm: matmul parameters per token (no embedding, no norm gains)
  int64_t mtp_active_matmul = 0;         // N_mm,MTP per depth

  // Training FLOPs per token (forward + backward = 3x forward, matmuls only, causal attention).
  double attention_flops_per_layer = 0;  // F_attn = H·(d_qk + d_v)·(S + 1)
  double flops_per_token_main = 0;       // 6·N_mm + 3·L·F_attn
  double flops_per_token_mtp = 0;        // D·(6·N_mm,MTP + 3·F_attn)
  double flops_per_token() const { return flops_per_token_main + flops_per_token_mtp; }

  int64_t kv_cache_elements_per_token = 0;  // L·(r_kv + d_r), absorbed MLA (model/README.md §2.6)
};

// seq_len: S of the attention FLOPs.
ModelSize model_size(const ModelConfig& c, int64_t seq_len);

}  // namespace mlamoe
