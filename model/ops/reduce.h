// Reductions: sum and mean over all elements or along one dimension.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor sum(const Tensor& x);  // scalar (shape [])
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);

}  // namespace mlamoe
