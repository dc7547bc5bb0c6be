// Softmax over the last dimension (the V2 router's scores; attention has its own fused kernel).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor softmax(const Tensor& x);  // x [..., N] -> [..., N]

}  // namespace mlamoe
