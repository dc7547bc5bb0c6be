// mla_attention: MLA's training-form attention as one op (model/README.md §2.3–§2.5).
#pragma once
#include "model/ops/rope.h"
#include "model/tensor/tensor.h"

namespace mlamoe {

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
