// A register-tiled product for attention's small tiles (internal to model/ops).
//
// Attention multiplies matrices of 32–256 rows and columns over inner dimensions of 32–192, and
// the causal mask zeroes part of each diagonal block. OpenBLAS packs its operands on every such
// call and computes the masked part too (a fifth of the scores at T = 128). This kernel runs at
// about OpenBLAS's rate on these shapes and packs nothing: it keeps a 6-row × 2-vector block of C in registers (a vector is
// 64 bytes: 16 floats or 8 doubles), broadcasts A's elements and loads B's rows as they lie, and
// skips, per 6-row group, the inner terms or columns that the mask makes zero.
//
// Each C element is Σ_k in ascending k, one fused multiply-add per term where the CPU has FMA,
// then times alpha (and added to C when accumulating): the result depends on the shapes and the
// mask only, never on the thread count; the skipped terms are exact zeros, so no kept value changes.
#pragma once
#include <cstdint>

namespace mlamoe::tile_gemm {

// Which part of the product the causal mask leaves nonzero, for each group of C's rows [i0, i1):
//   kNone        all of it;
//   kColsBelow   columns j < off + i1 only, rounded up to whole vectors (those past are not
//                written: S = Q·Kᵀ and dO·Vᵀ, whose masked entries the caller overwrites);
//   kInnerBelow  inner terms k < off + i1 (A[i, k] = 0 beyond: P·V, dS·K);
//   kInnerFrom   inner terms k ≥ i0 − off (A[i, k] = 0 before: Pᵀ·dO, dSᵀ·Q).
enum class Mask { kNone, kColsBelow, kInnerBelow, kInnerFrom };

// C [m, n] = alpha·A·B (+ C when accumulate), A(i, k) = a[i·a_row + k·a_inner] (so Aᵀ of a
// row-major matrix is a_row = 1, a_inner = its ld), B [k, n] row-major with ldb, C with ldc; the
// mask (with its offset) as described at Mask. Single-threaded: callers parallelise over heads.
// Defined for float and double.
template <class T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_row, int64_t a_inner, const T* b, int64_t ldb,
          bool accumulate, T* c, int64_t ldc, Mask mask = Mask::kNone, int64_t off = 0);

}  // namespace mlamoe::tile_gemm
