// Row-major GEMM with bf16 operands and an f32 result: C = alpha·op(A)·op(B) + beta·C.
//
// Where the CPU has bf16 dot-product instructions (AVX512-BF16, or AMX), the product goes through
// oneDNN's matmul primitive (`brg:avx512_core_bf16` on Zen 4: 2.1–2.3× OpenBLAS's sgemm on one
// thread for the model's shapes). Elsewhere both operands are widened to f32 and multiplied by
// sgemm. A product of two bf16 numbers is exact in f32 and both accumulate in f32, so the two
// paths differ only in summation order (tests/model/test_gemm_bf16.cpp bounds both against an
// exact reference).
//
// Like gemm(), this runs on the calling thread: mlamoe tiles C itself (gemm_tasks), so results do
// not depend on the thread count. oneDNN primitives are built for one thread (the calling
// thread's OpenMP thread count is set to 1 while one is created) and cached per shape, leading
// dimensions, transposes, alpha and beta: creating one costs ~250 µs, running a tile ~10–100 µs.
#pragma once
#include <cstdint>

#include "model/tensor/dtype.h"

namespace mlamoe {

// a: op(A) is [m, k] (A is [k, m] with leading dimension lda when ta); b: op(B) is [k, n]; c: [m, n]
// with ldc. beta must be 0 (C is overwritten) or 1 (added to); alpha any. Throws on another beta.
void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const bf16* a, int64_t lda, const bf16* b, int64_t ldb,
          float beta, float* c, int64_t ldc);

// Which path gemm() above takes on this machine: "onednn" or "sgemm". The environment variable
// MLAMOE_BF16_GEMM=sgemm forces the widening path (read once, at the first call), so that tests
// and benchmarks can compare the two on a CPU that has both.
const char* bf16_gemm_path();

}  // namespace mlamoe
