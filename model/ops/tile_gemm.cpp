// tile_gemm's kernel. This file alone is compiled with -ffp-contract=fast (model/CMakeLists.txt):
// acc += s·b must become one fused multiply-add per lane, which with the project's
// -ffp-contract=off would be a multiply and an add at half the rate. The compiler then also folds
// each broadcast of A into its FMA ({1to16}); hand-written intrinsics did not get that (one thread,
// 32×128×48: 85 GFLOP/s against 100–110 here and OpenBLAS's 113). Contraction depends on the build
// only, never on the threads.
#include "model/ops/tile_gemm.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace mlamoe::tile_gemm {

namespace {

// 6 rows × 2 vectors: 12 accumulators; per inner term 2 vector loads and 6 broadcasts folded into
// the FMAs. One thread, 32×128×48: 4 rows ran at 50–75% of OpenBLAS's rate, 6 at 90–97%, 8 at 85%.
constexpr int kRows = 6;

template <class T>
struct Vec {
  typedef T type __attribute__((vector_size(64)));
  static constexpr int kLanes = 64 / sizeof(T);
  static type load(const T* p) {
    type v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static void store(T* p, type v) { std::memcpy(p, &v, sizeof v); }
};

// C[i0:i0+R, j0:j0+NV·W] over inner terms [k0, k1). A(i, k) = a[i·a_row + k·a_inner]; B row-major.
template <class T, int R, int NV>
inline void block(int64_t i0, int64_t j0, int64_t k0, int64_t k1, T alpha, const T* a, int64_t a_row, int64_t a_inner, const T* b,
                  int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  using V = typename Vec<T>::type;
  constexpr int W = Vec<T>::kLanes;
  V acc[R][NV];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < NV; ++v) acc[r][v] = V{} * T(0);
  const T* ap = a + i0 * a_row;
  for (int64_t k = k0; k < k1; ++k) {
    V bv[NV];
    for (int v = 0; v < NV; ++v) bv[v] = Vec<T>::load(b + k * ldb + j0 + v * W);
    for (int r = 0; r < R; ++r) {
      T s = ap[r * a_row + k * a_inner];
      for (int v = 0; v < NV; ++v) acc[r][v] += s * bv[v];
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < NV; ++v) {
      T* cp = c + (i0 + r) * ldc + j0 + v * W;
      V out = acc[r][v] * alpha;
      if (accumulate) out += Vec<T>::load(cp);
      Vec<T>::store(cp, out);
    }
  }
}

// The columns past the last whole vector, one at a time, in the same order.
template <class T>
inline void tail(int64_t i0, int64_t i1, int64_t j0, int64_t j1, int64_t k0, int64_t k1, T alpha, const T* a, int64_t a_row,
                 int64_t a_inner, const T* b, int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  for (int64_t i = i0; i < i1; ++i) {
    for (int64_t j = j0; j < j1; ++j) {
      T s = T(0);
      for (int64_t k = k0; k < k1; ++k) s += a[i * a_row + k * a_inner] * b[k * ldb + j];
      T* cp = c + i * ldc + j;
      *cp = accumulate ? *cp + s * alpha : s * alpha;
    }
  }
}

// Rows [i0, i0+R) of C, columns [0, n), inner terms [k0, k1).
template <class T, int R>
inline void rows(int64_t i0, int64_t n, int64_t k0, int64_t k1, T alpha, const T* a, int64_t a_row, int64_t a_inner, const T* b,
                 int64_t ldb, bool accumulate, T* c, int64_t ldc) {
  constexpr int W = Vec<T>::kLanes;
  int64_t j = 0;
  for (; j + 2 * W <= n; j += 2 * W) block<T, R, 2>(i0, j, k0, k1, alpha, a, a_row, a_inner, b, ldb, accumulate, c, ldc);
  for (; j + W <= n; j += W) block<T, R, 1>(i0, j, k0, k1, alpha, a, a_row, a_inner, b, ldb, accumulate, c, ldc);
  if (j < n) tail<T>(i0, i0 + R, j, n, k0, k1, alpha, a, a_row, a_inner, b, ldb, accumulate, c, ldc);
}

}  // namespace

template <class T>
void gemm(int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t a_row, int64_t a_inner, const T* b, int64_t ldb,
          bool accumulate, T* c, int64_t ldc, Mask mask, int64_t off) {
  constexpr int64_t W = Vec<T>::kLanes;
  for (int64_t i0 = 0; i0 < m; i0 += kRows) {
    int64_t i1 = std::min(m, i0 + kRows), cols = n, k0 = 0, k1 = k;
    // Rounded up to whole vectors (a scalar tail would cost more than the masked columns it skips).
    if (mask == Mask::kColsBelow) cols = std::clamp<int64_t>((off + i1 + W - 1) / W * W, 0, n);
    if (mask == Mask::kInnerBelow) k1 = std::clamp<int64_t>(off + i1, 0, k);
    if (mask == Mask::kInnerFrom) k0 = std::clamp<int64_t>(i0 - off, 0, k);
    // A last partial group in blocks of 4, 2 and 1 rows (one row at a time was 15% of the
    // backward at 32-row blocks: 32 = 5·6 + 2).
    int64_t i = i0;
    auto run = [&](auto rows_tag) {
      constexpr int R = decltype(rows_tag)::value;
      for (; i + R <= i1; i += R) rows<T, R>(i, cols, k0, k1, alpha, a, a_row, a_inner, b, ldb, accumulate, c, ldc);
    };
    run(std::integral_constant<int, kRows>{});
    run(std::integral_constant<int, 4>{});
    run(std::integral_constant<int, 2>{});
    run(std::integral_constant<int, 1>{});
  }
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*, int64_t, bool, float*,
                          int64_t, Mask, int64_t);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, const double*, int64_t, bool,
                           double*, int64_t, Mask, int64_t);

}  // namespace mlamoe::tile_gemm
