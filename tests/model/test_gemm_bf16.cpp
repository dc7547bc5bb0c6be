// The bf16 GEMM (model/ops/gemm_bf16.h) against an exact reference: products of bf16 values are
// exact, so the f32 result may differ from the f64 sum only by f32 summation rounding, at most
// (k + 2)·u·(|alpha|·Σ|a·b| + |C|). Run twice by ctest: on the machine's own path (oneDNN where the
// CPU has AVX512-BF16) and with MLAMOE_BF16_GEMM=sgemm (operands widened to f32).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "model/ops/gemm.h"
#include "model/ops/gemm_bf16.h"
#include "model/ops/ops.h"
#include "model/tensor/error.h"

namespace mlamoe::test {

namespace {

struct Case {
  int64_t m, n, k;
  bool ta, tb;
  float alpha, beta;
};

std::vector<bf16> random_bf16(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> nd;
  std::vector<bf16> v(n);
  for (auto& x : v) x = float_to_bf16(nd(rng));
  return v;
}

void check(const Case& c, bool tiled) {
  std::mt19937 rng(static_cast<unsigned>(c.m * 7 + c.n * 3 + c.k));
  int64_t lda = (c.ta ? c.m : c.k) + 3, ldb = (c.tb ? c.k : c.n) + 5, ldc = c.n + 2;
  std::vector<bf16> a = random_bf16((c.ta ? c.k : c.m) * lda, rng), b = random_bf16((c.tb ? c.n : c.k) * ldb, rng);
  std::vector<float> out(c.m * ldc);
  std::normal_distribution<float> nd;
  for (auto& x : out) x = nd(rng);
  std::vector<float> before = out;
  if (tiled) {
    gemm_tiled(c.ta, c.tb, c.m, c.n, c.k, a.data(), lda, b.data(), ldb, c.beta, out.data(), ldc);
    ASSERT_EQ(c.alpha, 1.0f);
  } else {
#pragma omp parallel num_threads(1)
    gemm(c.ta, c.tb, c.m, c.n, c.k, c.alpha, a.data(), lda, b.data(), ldb, c.beta, out.data(), ldc);
  }
  double u = std::numeric_limits<float>::epsilon() / 2;
  for (int64_t i = 0; i < c.m; ++i) {
    for (int64_t j = 0; j < c.n; ++j) {
      double s = 0.0, mag = 0.0;
      for (int64_t kk = 0; kk < c.k; ++kk) {
        double p = static_cast<double>(bf16_to_float(c.ta ? a[kk * lda + i] : a[i * lda + kk])) *
                   bf16_to_float(c.tb ? b[j * ldb + kk] : b[kk * ldb + j]);
        s += p;
        mag += std::abs(p);
      }
      double old = before[i * ldc + j];
      double want = c.alpha * s + c.beta * old;
      double tol = (c.k + 2) * u * (std::abs(c.alpha) * mag + std::abs(c.beta * old)) + 1e-30;
      ASSERT_NEAR(out[i * ldc + j], want, tol) << bf16_gemm_path() << " path, m " << c.m << " n " << c.n << " k " << c.k << " ta "
                                               << c.ta << " tb " << c.tb << " at (" << i << ", " << j << ")";
    }
    for (int64_t j = c.n; j < ldc; ++j) ASSERT_EQ(out[i * ldc + j], before[i * ldc + j]) << "wrote past column n";
  }
}

TEST(GemmBf16, MatchesExactReference) {
  std::printf("bf16 gemm path: %s\n", bf16_gemm_path());
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float alpha : {1.0f, 0.37f})
        for (float beta : {0.0f, 1.0f}) {
          check({5, 7, 3, ta, tb, alpha, beta}, false);
          check({64, 48, 130, ta, tb, alpha, beta}, false);
          check({33, 17, 1, ta, tb, alpha, beta}, false);
        }
}

TEST(GemmBf16, TiledProductMatchesAndIgnoresThreadCount) {
  // 300 x 1100: 2 x 2 tiles of gemm_tasks, so several threads share the product.
  Case c{300, 1100, 70, false, true, 1.0f, 0.0f};
  check(c, true);
  std::mt19937 rng(3);
  std::vector<bf16> a = random_bf16(c.m * c.k, rng), b = random_bf16(c.n * c.k, rng);
  std::vector<float> one(c.m * c.n), three(c.m * c.n);
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  gemm_tiled(false, true, c.m, c.n, c.k, a.data(), c.k, b.data(), c.k, 0.0f, one.data(), c.n);
  omp_set_num_threads(3);
  gemm_tiled(false, true, c.m, c.n, c.k, a.data(), c.k, b.data(), c.k, 0.0f, three.data(), c.n);
  omp_set_num_threads(saved);
  EXPECT_EQ(std::memcmp(one.data(), three.data(), one.size() * sizeof(float)), 0) << "1 vs 3 threads differ";
}

TEST(GemmBf16, RejectsOtherBeta) {
  bf16 x = float_to_bf16(1.0f);
  float c = 0.0f;
  EXPECT_THROW(gemm(false, false, 1, 1, 1, 1.0f, &x, 1, &x, 1, 0.5f, &c, 1), Error);
}

TEST(GemmBf16, NativeWhereTheCpuHasBf16) {
  const char* force = std::getenv("MLAMOE_BF16_GEMM");
  if (force && std::string(force) == "sgemm") {
    EXPECT_STREQ(bf16_gemm_path(), "sgemm");
  } else if (__builtin_cpu_supports("avx512bf16")) {
    EXPECT_STREQ(bf16_gemm_path(), "onednn");
  } else {
    GTEST_SKIP() << "this CPU has no AVX512-BF16";
  }
}

bool all_bf16_values(const Tensor& t) {
  for (float v : t.to_vector<float>())
    if (bf16_to_float(float_to_bf16(v)) != v) return false;
  return true;
}

// linear() under AutocastBf16: the result is the exact product of the bf16-rounded operands,
// rounded to bf16 (within one bf16 step, f32 accumulation may straddle a rounding boundary); the
// gradients reaching the f32 operands are bf16 values; AutocastBf16(false) inside restores f32.
TEST(Autocast, LinearRoundsOperandsAndResult) {
  Rng rng(5);
  Tensor x = Tensor::randn({4, 7, 33}, rng).set_requires_grad(true), w = Tensor::randn({10, 33}, rng).set_requires_grad(true);
  Tensor y;
  {
    AutocastBf16 on(true);
    EXPECT_TRUE(autocast_bf16());
    y = linear(x, w);
    {
      AutocastBf16 off(false);
      EXPECT_FALSE(all_bf16_values(linear(x, w))) << "AutocastBf16(false) should give the f32 product";
    }
    EXPECT_TRUE(autocast_bf16()) << "scopes must nest";
  }
  EXPECT_FALSE(autocast_bf16());
  ASSERT_EQ(y.dtype(), DType::F32);
  EXPECT_TRUE(all_bf16_values(y));
  std::vector<float> xv = x.to_vector<float>(), wv = w.to_vector<float>(), yv = y.to_vector<float>();
  for (int64_t r = 0; r < 28; ++r) {
    for (int64_t o = 0; o < 10; ++o) {
      double s = 0.0;
      for (int64_t i = 0; i < 33; ++i)
        s += static_cast<double>(bf16_to_float(float_to_bf16(xv[r * 33 + i]))) * bf16_to_float(float_to_bf16(wv[o * 33 + i]));
      double step = std::ldexp(1.0, std::ilogb(s) - 7);  // one bf16 step at |s|
      ASSERT_NEAR(yv[r * 10 + o], s, step) << "at (" << r << ", " << o << ")";
    }
  }
  sum(y).backward();
  EXPECT_TRUE(all_bf16_values(x.grad()));
  EXPECT_TRUE(all_bf16_values(w.grad()));
}

// keep_for_backward() is lossless: under autocast an f32 tensor of bf16 values comes back as a
// bf16 tensor of the same values; one f32 value that is not a bf16 value (anywhere, not only in
// the first elements it looks at) keeps the whole tensor f32; outside autocast nothing changes.
TEST(Autocast, KeepForBackwardIsLossless) {
  Rng rng(9);
  Tensor x = Tensor::randn({300, 257}, rng);
  Tensor rounded = x.clone();
  round_to_bf16_values(rounded);
  {
    AutocastBf16 on(true);
    Tensor kept = keep_for_backward(rounded);
    ASSERT_EQ(kept.dtype(), DType::BF16);
    EXPECT_EQ(widen_kept(kept).to_vector<float>(), rounded.to_vector<float>());
    Tensor view = rounded.narrow(1, 3, 100);  // strided: kept contiguous
    EXPECT_EQ(widen_kept(keep_for_backward(view)).to_vector<float>(), view.contiguous().to_vector<float>());
    EXPECT_EQ(keep_for_backward(x).dtype(), DType::F32);
    Tensor late = rounded.clone();
    late.data<float>()[late.numel() - 1] += 1e-3f;  // past the prefix keep_for_backward checks first
    ASSERT_FALSE(all_bf16_values(late));
    Tensor kept_late = keep_for_backward(late);
    EXPECT_EQ(kept_late.dtype(), DType::F32);
    EXPECT_EQ(kept_late.to_vector<float>(), late.to_vector<float>());
  }
  EXPECT_EQ(keep_for_backward(rounded).dtype(), DType::F32) << "outside autocast tensors are kept as they are";
}

// Bf16WeightCopies: a product reads the same values as with a fresh cast (results and gradients
// bitwise equal), the copy is made once per weight, and refresh() re-rounds it after the master
// weight changes (until then the copy is, as documented, the old one).
TEST(Autocast, WeightCopiesAreReadUntilRefreshed) {
  Rng rng(6);
  Tensor x = Tensor::randn({5, 40}, rng), w = Tensor::randn({12, 40}, rng).set_requires_grad(true);
  AutocastBf16 on(true);
  Tensor fresh_y = linear(x, w);
  sum(fresh_y).backward();
  Tensor fresh_g = w.grad();
  w.zero_grad();
  Bf16WeightCopies copies({w});
  Tensor y = linear(x, w);
  sum(y).backward();
  EXPECT_EQ(y.to_vector<float>(), fresh_y.to_vector<float>());
  EXPECT_EQ(w.grad().to_vector<float>(), fresh_g.to_vector<float>());
  EXPECT_EQ(copies.bytes(), 2.0 * 12 * 40);
  linear(x, w);
  EXPECT_EQ(copies.bytes(), 2.0 * 12 * 40) << "one copy per weight, not per call";
  Tensor other = Tensor::randn({12, 40}, rng).set_requires_grad(true);  // a leaf, but not one of the weights
  linear(x, other);
  EXPECT_EQ(copies.bytes(), 2.0 * 12 * 40) << "only the weights it was given are cached";
  w.data<float>()[0] += 1.0f;  // an optimizer step
  EXPECT_EQ(linear(x, w).to_vector<float>(), y.to_vector<float>()) << "read before refresh(): the old copy";
  copies.refresh();
  Tensor after = linear(x, w);
  {
    Bf16WeightCopies fresh({w});  // a scope of its own: a fresh copy of the changed weight
    EXPECT_EQ(after.to_vector<float>(), linear(x, w).to_vector<float>());
  }
  EXPECT_NE(after.to_vector<float>(), y.to_vector<float>());
}

}  // namespace

}  // namespace mlamoe::test
