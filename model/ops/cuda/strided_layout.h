// Host side of cuda::StridedLayout: the walk over a shape, with the strides of up to three arrays,
// in the fewest dims (size-1 dims dropped; neighbours merged where every array steps evenly
// across them, so a contiguous copy is one flat dim).
#pragma once
#include <vector>

#include "model/ops/cuda/kernel_args.h"
#include "model/tensor/tensor.h"

namespace mlamoe::cuda {

// Throws mlamoe::Error when more than kMaxDims dims remain after merging.
StridedLayout strided_layout(const Shape& shape, const std::vector<Shape>& strides);

}  // namespace mlamoe::cuda
