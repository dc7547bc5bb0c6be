// Index ops: gather along the last dim (router weights of the selected experts), and the row ops
// of the MoE permute / un-permute:
//   index_select(x [N, D], idx [M])            -> [M, D]  rows x[idx[m]]         (permute)
//   index_add(x [N, D], idx [M], src [M, D])   -> [N, D]  x with src[m] added to row idx[m]  (un-permute)
// Each is the other's backward. Row accumulation is deterministic: threads split columns, and every
// output row sums its sources in increasing m.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// x [..., N], idx [..., k] (same leading dims, i32/i64 in [0, N)) -> [..., k]
Tensor gather(const Tensor& x, const Tensor& idx);
Tensor index_select(const Tensor& x, const Tensor& idx);
Tensor index_add(const Tensor& x, const Tensor& idx, const Tensor& src);

}  // namespace mlamoe
