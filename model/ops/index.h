// Index ops: gather along the last dim (router weights of the selected experts), and the row ops
// of the MoE permute / un-permute (generic: `rows` and M are any sizes; D the row width):
//   index_select(x [rows, D], idx [M])           -> [M, D]     rows x[idx[m]]         (permute)
//   index_add(x [rows, D], idx [M], src [M, D])  -> [rows, D]  x with src[m] added to row idx[m]  (un-permute)
// In the MoE path (letters: model/modules/moe.h): scores_SE, idx_SK -> gather -> g_SK;
// x_SD, token_N -> index_select -> xp_ND; the EP regrouping index_selects [R, D] rows by [R] indices.
// Each is the other's backward. Row accumulation is deterministic: threads split columns, and every
// output row sums its sources in increasing m (on CUDA too: one thread per output element, its
// sources listed per row from a host copy of idx). idx must be on x's device; the range checks
// read a host copy of it.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// x [..., E], idx [..., k] (same leading dims, i32/i64 in [0, E)) -> [..., k]
Tensor gather(const Tensor& x, const Tensor& idx);
Tensor index_select(const Tensor& x, const Tensor& idx);
Tensor index_add(const Tensor& x, const Tensor& idx, const Tensor& src);

}  // namespace mlamoe
