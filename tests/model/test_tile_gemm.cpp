// tile_gemm (attention's register-tiled product) against a plain triple loop: every mask, with
// and without accumulation, transposed and plain A, shapes that end in partial row groups,
// partial vectors and scalar tails, in float and double.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "model/ops/tile_gemm.h"

namespace mlamoe::test {

namespace {

using tile_gemm::Mask;

struct Case {
  int64_t m, n, k, off;
  Mask mask;
  bool transposed_a, accumulate;
};

// The entries of C the kernel promises: all, except columns past off + (group end) under
// kColsBelow (group = 6 rows; the kernel may write a few more there, rounded up to a vector).
bool promised(const Case& c, int64_t i, int64_t j) {
  if (c.mask != Mask::kColsBelow) return true;
  int64_t group_end = std::min(c.m, (i / 6 + 1) * 6);
  return j < c.off + group_end;
}

// The A the masked modes assume: zero where the mask says the kernel may skip the term.
template <class T>
std::vector<T> make_a(const Case& c, std::mt19937& rng) {
  std::normal_distribution<double> nd;
  std::vector<T> a(c.m * c.k);
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t kk = 0; kk < c.k; ++kk) {
      bool zero = (c.mask == Mask::kInnerBelow && kk > c.off + i) || (c.mask == Mask::kInnerFrom && kk < i - c.off);
      T v = zero ? T(0) : static_cast<T>(nd(rng));
      if (c.transposed_a)
        a[kk * c.m + i] = v;
      else
        a[i * c.k + kk] = v;
    }
  }
  return a;
}

template <class T>
void check(const Case& c) {
  // The worst-case rounding of a k-term sum, the alpha product and the accumulation: (k + 2)·u
  // relative to Σ|terms| (+ |C| when accumulating), u = the unit roundoff of T.
  double tol = (c.k + 2) * std::numeric_limits<T>::epsilon() / 2;
  std::mt19937 rng(static_cast<unsigned>(c.m * 131 + c.n * 17 + c.k));
  std::normal_distribution<double> nd;
  std::vector<T> a = make_a<T>(c, rng), b(c.k * (c.n + 3)), cm(c.m * (c.n + 5));
  for (auto& x : b) x = static_cast<T>(nd(rng));
  for (auto& x : cm) x = static_cast<T>(nd(rng));
  std::vector<T> ref = cm;
  int64_t ldb = c.n + 3, ldc = c.n + 5;
  int64_t a_row = c.transposed_a ? 1 : c.k, a_inner = c.transposed_a ? c.m : 1;
  T alpha = T(0.7);
  tile_gemm::gemm<T>(c.m, c.n, c.k, alpha, a.data(), a_row, a_inner, b.data(), ldb, c.accumulate, cm.data(), ldc, c.mask, c.off);
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      if (!promised(c, i, j)) continue;
      double s = 0.0, mag = 0.0;
      for (int64_t kk = 0; kk < c.k; ++kk) {
        double p = static_cast<double>(a[i * a_row + kk * a_inner]) * b[kk * ldb + j];
        s += p;
        mag += std::abs(p);
      }
      double want = alpha * s + (c.accumulate ? static_cast<double>(ref[i * ldc + j]) : 0.0);
      ASSERT_NEAR(cm[i * ldc + j], want,
                  tol * (std::abs(alpha) * mag + (c.accumulate ? std::abs(ref[i * ldc + j]) : 0.0)) + 1e-300)
          << "m " << c.m << " n " << c.n << " k " << c.k << " mask " << static_cast<int>(c.mask) << " at (" << i << ", " << j
          << ")";
    }
    for (int64_t j = c.n; j < ldc; ++j) ASSERT_EQ(cm[i * ldc + j], ref[i * ldc + j]) << "wrote past column n";
  }
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (Mask mask : {Mask::kNone, Mask::kColsBelow, Mask::kInnerBelow, Mask::kInnerFrom}) {
    for (bool tr : {false, true}) {
      for (bool acc : {false, true}) {
        out.push_back({32, 48, 40, 8, mask, tr, acc});  // 32 = 5 groups of 6 + 2 rows; 48 = two vectors + one (float)
        out.push_back({13, 37, 9, 0, mask, tr, acc});   // tails everywhere
        out.push_back({6, 32, 70, 64, mask, tr, acc});  // one whole group, off past the block
        out.push_back({40, 16, 33, 3, mask, tr, acc});
      }
    }
  }
  return out;
}

TEST(TileGemm, MatchesTripleLoopFloat) {
  for (const Case& c : cases()) check<float>(c);
}

TEST(TileGemm, MatchesTripleLoopDouble) {
  for (const Case& c : cases()) check<double>(c);
}

}  // namespace

}  // namespace mlamoe::test
