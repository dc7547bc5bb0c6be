// Row-major GEMM on the CPU through OpenBLAS: C = alpha·op(A)·op(B) + beta·C.
//
// OpenBLAS never threads a GEMM here: mlamoe parallelises GEMMs itself, by cutting C into tiles
// whose size depends only on the matrix shape (gemm_tiled), so every element of C is computed by
// the same kernel call whatever the number of threads, and results are bitwise identical on 1 or 64
// cores. (OpenBLAS's own threading changes the blocking, and the rounding, with the thread count.)
// Every BLAS call is made from inside an active OpenMP region, where the OpenMP build of OpenBLAS
// runs on the calling thread. (Not openblas_set_num_threads(1): in that build it sets the OpenMP
// thread count of the whole program.)
#pragma once
#include <cblas.h>

#include <algorithm>
#include <cstdint>

namespace mlamoe {

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda, const float* b,
                 int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

inline void gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda, const double* b,
                 int64_t ldb, double beta, double* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

// Tile sizes: large enough to keep OpenBLAS's kernels at full speed, small enough to give two or
// more tiles to the shapes of a training step.
constexpr int64_t kGemmTileRows = 256;
constexpr int64_t kGemmTileCols = 1024;

// The same product, cut into tiles of C run in parallel with OpenMP (one thread per tile; a single
// tile still runs inside the parallel region, so that BLAS stays on one thread). Call it outside
// parallel regions; inside one, call gemm() directly.
template <class T>
void gemm_tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda, const T* b, int64_t ldb,
                T beta, T* c, int64_t ldc) {
  int64_t tm = (m + kGemmTileRows - 1) / kGemmTileRows, tn = (n + kGemmTileCols - 1) / kGemmTileCols;
  auto tile = [&](int64_t i) {
    int64_t r0 = (i / tn) * kGemmTileRows, c0 = (i % tn) * kGemmTileCols;
    int64_t rows = std::min(kGemmTileRows, m - r0), cols = std::min(kGemmTileCols, n - c0);
    const T* at = ta ? a + r0 : a + r0 * lda;  // op(A) rows r0.. (columns of A when transposed)
    const T* bt = tb ? b + c0 * ldb : b + c0;  // op(B) columns c0..
    gemm(ta, tb, rows, cols, k, alpha, at, lda, bt, ldb, beta, c + r0 * ldc + c0, ldc);
  };
#pragma omp parallel for schedule(dynamic)
  for (int64_t i = 0; i < tm * tn; ++i) tile(i);
}

}  // namespace mlamoe
