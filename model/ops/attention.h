// Fused causal self-attention with separate q/k and v head dims (MLA: d_qk = d_n + d_r, d_v):
//   o[b,t,h] = Σ_{j ≤ t} softmax_j(scale · q[b,t,h]·k[b,j,h]) v[b,j,h]
// The score matrix is never materialised: queries go in blocks of kAttentionBlock rows, each
// block's scores [block, t] live in a per-thread buffer, two GEMMs per block do the work, and only
// the row log-sum-exp [B, H, T] is kept for the backward, which recomputes the block's scores.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// 32 rows: the diagonal block's masked half wastes less than with 64, and the backward's products
// with k = block rows still run near OpenBLAS's small-matrix speed (T = 256, d_qk 96: backward
// 8% faster per head than with 64; 128 is slower at both T = 128 and 256).
constexpr int64_t kAttentionBlock = 32;

// q [B, T, H, Dqk], k [B, T, H, Dqk], v [B, T, H, Dv] -> [B, T, H, Dv]
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

}  // namespace mlamoe
