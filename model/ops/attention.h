// Fused causal self-attention with separate q/k and v head dims (MLA: d_qk = d_n + d_r, d_v):
//   o[b,t,h] = Σ_{j ≤ t} softmax_j(scale · q[b,t,h]·k[b,j,h]) v[b,j,h]
// The score matrix is never materialised: queries go in blocks of kAttentionBlock rows, each
// block's scores [block, t] live in a per-thread buffer, two GEMMs per block do the work, and only
// the row log-sum-exp [B, H, T] is kept for the backward, which recomputes the block's scores.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

constexpr int64_t kAttentionBlock = 64;

// q [B, T, H, Dqk], k [B, T, H, Dqk], v [B, T, H, Dv] -> [B, T, H, Dv]
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

}  // namespace mlamoe
