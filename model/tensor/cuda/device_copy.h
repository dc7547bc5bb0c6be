// Tensor::copy_ and Tensor::fill_ for CUDA tensors: strided and converting copies within one
// device, and fills, as kernels (model/ops/cuda/copy.cu).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

void copy_on_device(Tensor& dst, const Tensor& src);  // same shape, same CUDA device
void fill_on_device(Tensor& dst, double value);

}  // namespace mlamoe
