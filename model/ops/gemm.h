// Row-major GEMM on the CPU through OpenBLAS: C = alpha·op(A)·op(B) + beta·C (f32, f64; bf16
// operands with an f32 C are in gemm_bf16.h, through oneDNN).
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
#include <vector>

#include "model/ops/gemm_bf16.h"

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

// One product of a batch run by gemm_tasks: C = op(A)·op(B) + beta·C, plus optionally a second
// product op(A2)·op(B2) added into the same C (dX = dG·Wg + dU·Wu of an expert), with its own k.
// T: the operands' type; TC: C's (f32 for bf16 operands, else T).
template <class T, class TC = T>
struct GemmTask {
  bool ta = false, tb = false;
  int64_t m = 0, n = 0, k = 0;
  const T* a = nullptr;
  int64_t lda = 0;
  const T* b = nullptr;
  int64_t ldb = 0;
  TC beta = 0;
  TC* c = nullptr;
  int64_t ldc = 0;
  bool ta2 = false, tb2 = false;  // the optional second product (a2 == nullptr: none)
  int64_t k2 = 0;
  const T* a2 = nullptr;
  int64_t lda2 = 0;
  const T* b2 = nullptr;
  int64_t ldb2 = 0;
};

// Many independent products (the experts of an MoE layer) in one parallel region: every product is
// cut into the tiles gemm_tiled would use, and all tiles of all products are shared out among the
// threads. Small experts thus run in parallel with each other, large ones are split, and as with
// gemm_tiled the tiling depends only on the shapes, so results do not depend on the thread count.
template <class T, class TC>
void gemm_tasks(const std::vector<GemmTask<T, TC>>& tasks) {
  struct Tile {
    int32_t task;
    int64_t r0, c0;
  };
  std::vector<Tile> tiles;
  for (size_t t = 0; t < tasks.size(); ++t)
    for (int64_t r0 = 0; r0 < tasks[t].m; r0 += kGemmTileRows)
      for (int64_t c0 = 0; c0 < tasks[t].n; c0 += kGemmTileCols) tiles.push_back({static_cast<int32_t>(t), r0, c0});
  auto op_rows = [](bool trans, const T* p, int64_t ld, int64_t r0) { return trans ? p + r0 : p + r0 * ld; };
  auto op_cols = [](bool trans, const T* p, int64_t ld, int64_t c0) { return trans ? p + c0 * ld : p + c0; };
#pragma omp parallel for schedule(dynamic)
  for (size_t i = 0; i < tiles.size(); ++i) {
    const GemmTask<T, TC>& g = tasks[tiles[i].task];
    int64_t r0 = tiles[i].r0, c0 = tiles[i].c0;
    int64_t rows = std::min(kGemmTileRows, g.m - r0), cols = std::min(kGemmTileCols, g.n - c0);
    TC* c = g.c + r0 * g.ldc + c0;
    gemm(g.ta, g.tb, rows, cols, g.k, TC(1), op_rows(g.ta, g.a, g.lda, r0), g.lda, op_cols(g.tb, g.b, g.ldb, c0), g.ldb, g.beta,
         c, g.ldc);
    if (g.a2)
      gemm(g.ta2, g.tb2, rows, cols, g.k2, TC(1), op_rows(g.ta2, g.a2, g.lda2, r0), g.lda2, op_cols(g.tb2, g.b2, g.ldb2, c0),
           g.ldb2, TC(1), c, g.ldc);
  }
}

// One product cut into tiles of C run in parallel with OpenMP (one thread per tile; a single tile
// still runs inside the parallel region, so that BLAS stays on one thread). Call it outside
// parallel regions; inside one, call gemm() directly.
template <class T, class TC>
void gemm_tiled(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, TC beta,
                TC* c, int64_t ldc) {
  GemmTask<T, TC> t;
  t.ta = ta, t.tb = tb, t.m = m, t.n = n, t.k = k, t.a = a, t.lda = lda, t.b = b, t.ldb = ldb, t.beta = beta, t.c = c,
  t.ldc = ldc;
  gemm_tasks(std::vector<GemmTask<T, TC>>{t});
}

}  // namespace mlamoe
