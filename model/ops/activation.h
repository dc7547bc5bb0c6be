// Pointwise activations: silu, sigmoid, and fused SwiGLU (silu(gate) ⊙ up, the expert and dense
// MLP nonlinearity; fusing it saves one activation-sized tensor in forward and backward).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor silu(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor swiglu(const Tensor& gate, const Tensor& up);  // same shapes

}  // namespace mlamoe
