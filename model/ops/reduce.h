// Reductions: sum and mean over all elements or along one dimension.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor sum(const Tensor& x);  // scalar (shape [])
Tensor sum(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor mean(const Tensor& x);
Tensor mean(const Tensor& x, int64_t dim, bool keepdim = false);

// Σ x², accumulated in f64 (gradient norms; not recorded by autograd). Summed in fixed chunks
// whose partial sums are added in order, so the result has the same bits on any thread count.
double sum_of_squares(const Tensor& x);
// x *= s in place (gradient clipping; not recorded by autograd). x must be contiguous.
void scale_(Tensor& x, double s);

}  // namespace mlamoe
