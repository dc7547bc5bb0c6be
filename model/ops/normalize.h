// Normalisation of non-negative scores to sum 1 over the last dimension: y = x / Σ x. The router
// uses it twice (model/README.md §3.2 step 5: the top-K weights s_i / Σ_Sel s_j; §4.2: s'_{i,t} = s_{i,t}
// / Σ_j s_{j,t} in the sequence-wise balance loss).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// x [..., N] -> [..., N]. No epsilon: a row that sums to 0 is an error (the sigmoid/softmax scores
// it is meant for are strictly positive).
Tensor normalize_rows(const Tensor& x);

}  // namespace mlamoe
