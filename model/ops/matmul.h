// Matrix products (GEMMs through OpenBLAS, and oneDNN for bf16):
//   matmul(a [M, K], b [K, N])            -> [M, N]
//   matmul(a [B, M, K], b [B, K, N])      -> [B, M, N]   (batched)
//   matmul(a [..., M, K], b [K, N])       -> [..., M, N] (leading dims of a folded into M)
//   linear(x [..., in], w [out, in])      -> [..., out]  (x·wᵀ, the HF/PyTorch weight layout)
// Transposed operands (e.g. w.transpose(0, 1)) are passed to BLAS as transposes, not copied.
// Two bf16 operands: a bf16 GEMM (gemm_bf16.h: oneDNN where the CPU has bf16 instructions) with an
// f32 result; the backward rounds the incoming gradient to bf16 for its products and returns bf16
// gradients (as torch.autocast). One bf16 operand and one f32: both widened to f32. Inside an
// AutocastBf16 scope (autocast.h) linear() of f32 operands runs as a bf16 GEMM.
#pragma once
#include "model/tensor/tensor.h"

namespace mlamoe {

Tensor matmul(const Tensor& a, const Tensor& b);
Tensor linear(const Tensor& x, const Tensor& w);

}  // namespace mlamoe
