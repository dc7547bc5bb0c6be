// Multi-head Latent Attention (model/README.md §2), the training form with explicit per-head keys and
// values (§2.5), and the absorbed decode form whose cache holds only the normalised KV latent and
// the rotated shared key per token (§2.6).
//
// Dimension letters (CONTRIBUTING.md "Dimension legend"): B sequences, T tokens per sequence, D hidden,
// H heads; the maths' symbols of model/README.md §0 for the rest: d_n / d_r / d_v the nope / rope / value
// head dims, r_q / r_kv the query / KV latent ranks.
#pragma once
#include <string>

#include "model/config.h"
#include "model/modules/parameters.h"
#include "model/ops/rope.h"

namespace mlamoe {

// What every attention layer of one forward shares: RoPE tables for its positions and the softmax
// scale τ (1/sqrt(d_n + d_r), times the YaRN mscale² when rope_scaling is set).
struct AttentionContext {
  RopeTables rope;  // cos/sin [T, d_r/2] for positions start .. start+T-1, on the model's device
  double scale = 0.0;
};
// The tables are computed on the host and moved to `device` once here, not by every layer.
AttentionContext attention_context(const ModelConfig& c, int64_t start, int64_t len, DType dtype, Device device = Device::cpu());

// Per-layer KV cache of the absorbed form: [capacity, r_kv] latents and [capacity, d_r] keys.
struct MlaCache {
  Tensor kv;  // ĉ_kv, the kv_a_layernorm output
  Tensor pe;  // RoPE_p(k_pe), already rotated
  int64_t length = 0;
};

struct MlaAttention {
  MlaAttention(ParamInit& init, const std::string& prefix, const ModelConfig& c);

  // x [B, T, D] -> [B, T, D], causal over the T positions of ctx.
  Tensor forward(const Tensor& x, const AttentionContext& ctx) const;
  // One new token per batch row, x [B, 1, D] at position cache.length (ctx built for that one
  // position); appends its latent and rotated key to the cache. No autograd.
  Tensor decode(const Tensor& x, const AttentionContext& ctx, MlaCache& cache) const;
  MlaCache new_cache(int64_t batch, int64_t capacity) const;

  const ModelConfig& cfg;
  Tensor q_a_proj;            // [r_q, D]          (with a query latent)
  Tensor q_a_layernorm;       // [r_q]
  Tensor q_b_proj;            // [H·d_qk, r_q]
  Tensor q_proj;              // [H·d_qk, D]       (without one: q_lora_rank null)
  Tensor kv_a_proj_with_mqa;  // [r_kv + d_r, D]
  Tensor kv_a_layernorm;      // [r_kv]
  Tensor kv_b_proj;           // [H·(d_n + d_v), r_kv]
  Tensor o_proj;              // [D, H·d_v]

 private:
  Tensor queries(const Tensor& x) const;  // [B, T, H, d_qk], not yet rotated
};

}  // namespace mlamoe
