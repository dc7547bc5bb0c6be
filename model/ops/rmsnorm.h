// Fused RMSNorm over the last dimension (model/README.md §1): y = w ⊙ x / sqrt(mean(x²) + eps).
// Forward keeps 1/rms per row for the backward; the normalised x is recomputed there, not stored.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

// x [..., D], weight [D] -> [..., D]
Tensor rmsnorm(const Tensor& x, const Tensor& weight, double eps);

// Raw kernels (the CPU oracle; a CUDA twin takes the same arguments).
template <class T>
void rmsnorm_forward_cpu(const T* x, const T* w, T* y, T* rstd, int64_t rows, int64_t d, double eps);
// X = T, or bf16 for an x kept as bf16 under autocast (model/autograd/autocast.h), read in place.
template <class T, class X = T>
void rmsnorm_backward_cpu(const T* dy, const X* x, const T* w, const T* rstd, T* dx, T* dw, int64_t rows, int64_t d);

}  // namespace mlamoe
