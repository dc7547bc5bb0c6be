// concat and split along one dimension. split returns narrow views (no copy); concat copies.
#pragma once
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace mlamoe
