// Top-k along the last dimension with deterministic ties: equal values are ordered by lower index
// first (model/README.md §3.2), so routing is reproducible on every backend and thread count.
// Letters: the MoE legend in model/modules/moe.h; in routing the last dimension is the E experts
// and k the K experts per token.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

struct TopK {
  Tensor values;   // [..., k], same dtype as x, differentiable (a gather of x)
  Tensor indices;  // [..., k], i64, in descending order of value
};

// x [..., E], 1 <= k <= E. −inf entries (masked experts) sort last; NaN is rejected.
TopK topk(const Tensor& x, int64_t k);

}  // namespace mlamoe
