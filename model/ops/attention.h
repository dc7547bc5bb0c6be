// Fused causal self-attention with separate q/k and v head dims (MLA: d_qk = d_n + d_r, d_v):
//   o[b,t,h] = Σ_{j ≤ t} softmax_j(scale · q[b,t,h]·k[b,j,h]) v[b,j,h]
// The score matrix is never materialised: queries go in blocks of kAttentionBlock rows, each
// block's scores [block, t] live in a per-thread buffer, two GEMMs per block do the work, and only
// the row log-sum-exp [B, H, T] is kept for the backward, which recomputes the block's scores.
#pragma once
#include "model/ops/rope.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

// 32 rows: the diagonal block's masked half wastes less than with 64, and the backward's products
// with k = block rows still run near OpenBLAS's small-matrix speed (T = 256, d_qk 96: backward
// 8% faster per head than with 64; 128 is slower at both T = 128 and 256).
constexpr int64_t kAttentionBlock = 32;

// q [B, T, H, Dqk], k [B, T, H, Dqk], v [B, T, H, Dv] -> [B, T, H, Dv]
Tensor causal_attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale);

// MLA's attention read straight from its projections (model/README.md §2.3), with no per-head key
// or value tensors formed in between:
//   q    [B, T, H, d_n + d_r]  q_b_proj's output, rotary part not yet rotated
//   kv   [B, T, H, d_n + d_v]  kv_b_proj's output: k_nope then v of each head
//   k_pe [B, T, d_r]           the rotary key shared by all heads, not yet rotated (may be a view
//                              with strided rows, e.g. a narrow of kv_a_proj_with_mqa's output)
//   rope cos/sin [T, d_r/2]    the positions' tables (rope_tables / attention_context)
// Returns causal_attention(concat(q_n, rope(q_r)), concat(k_nope, rope(k_pe) for every head), v,
// scale) [B, T, H, d_v]. The rotations happen as each head's q and k are read; k_pe's gradient
// is the sum of the heads' gradients, rotated back. Errors: shapes that disagree, odd d_r, tables
// not [T, d_r/2], mixed dtypes, non-CPU tensors.
Tensor mla_attention(const Tensor& q, const Tensor& kv, const Tensor& k_pe, const RopeTables& rope, int64_t qk_nope_head_dim,
                     double scale);

}  // namespace mlamoe
