// Activation recomputation (checkpointing): trade compute for memory.
//
// recompute(fn, inputs) runs fn(inputs) without recording a graph, so none of fn's intermediate
// activations stay alive until the backward; only the inputs are kept. When the backward reaches
// the result, fn runs again on the saved inputs with recording on, and the gradient is
// back-propagated through that fresh graph: into the inputs (returned to the outer backward) and
// into every parameter fn uses (accumulated into their .grad directly, firing the grad-ready hook
// as any backward does). fn must be deterministic: the same inputs give the same result (MoE
// routing depends only on its input and the correction bias, which changes after the step).
// Collectives inside fn (expert-parallel dispatch) run again in the backward, on every rank alike.
#pragma once
#include <functional>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

using RecomputeFn = std::function<Tensor(const std::vector<Tensor>&)>;

Tensor recompute(const RecomputeFn& fn, const std::vector<Tensor>& inputs);

}  // namespace mlamoe
