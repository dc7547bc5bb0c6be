// Fused cross-entropy over logits: mean over the rows whose target is not ignore_index of
// −log softmax(logits)[target]. The probabilities are never stored: the backward recomputes them
// from the logits and the saved log-sum-exp.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// logits [N, V] (f32/f64), targets [N] (i32/i64, in [0, V) or == ignore_index) -> scalar.
// With every row ignored the loss is 0 and so is its gradient.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);

}  // namespace mlamoe
