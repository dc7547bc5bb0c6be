// Embedding lookup: out[..., :] = weight[ids[...], :]; the backward scatters rows into dweight.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// weight [V, D] (f32/f64), ids [...] (i32/i64, each in [0, V)) -> [..., D]
Tensor embedding(const Tensor& weight, const Tensor& ids);

}  // namespace mlamoe
