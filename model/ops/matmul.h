// Matrix products (GEMMs through OpenBLAS):
//   matmul(a [M, K], b [K, N])            -> [M, N]
//   matmul(a [B, M, K], b [B, K, N])      -> [B, M, N]   (batched)
//   matmul(a [..., M, K], b [K, N])       -> [..., M, N] (leading dims of a folded into M)
//   linear(x [..., in], w [out, in])      -> [..., out]  (x·wᵀ, the HF/PyTorch weight layout)
// Transposed operands (e.g. w.transpose(0, 1)) are passed to BLAS as transposes, not copied.
// bf16 operands are widened to f32 (bf16 storage, f32 accumulation).
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& w);

}  // namespace mlamoe
