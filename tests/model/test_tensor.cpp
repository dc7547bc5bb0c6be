// Tensor: factories, views share storage, contiguous(), dtype conversion (bf16 rounding), and the
// error messages of bad shapes and dtypes.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>

#include "model/ops/ops.h"
#include "model/tensor/host_allocator.h"

namespace mlamoe {
namespace {

// Expects `stmt` to throw mlamoe::Error whose message contains `needle`.
#define EXPECT_ERROR(stmt, needle)                                                                 \
  do {                                                                                             \
    try {                                                                                          \
      stmt;                                                                                        \
      ADD_FAILURE() << "expected an error containing '" << needle << "'";                          \
    } catch (const Error& e) {                                                                     \
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what(); \
    }                                                                                              \
  } while (0)

Tensor iota_f32(const Shape& s) {
  std::vector<float> v(shape_numel(s));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return Tensor::from_vector(v, s);
}

TEST(Tensor, FactoriesAndMetadata) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), Shape({2, 3}));
  EXPECT_EQ(z.strides(), Shape({3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::F32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_TRUE(z.is_contiguous());
  for (float v : z.to_vector<float>()) EXPECT_EQ(v, 0.0f);
  EXPECT_EQ(Tensor::full({}, 2.5).item(), 2.5);
  EXPECT_EQ(Tensor::arange(4).to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3}));
}

TEST(Tensor, ViewsShareStorage) {
  Tensor x = iota_f32({2, 3, 4});
  Tensor t = x.transpose(0, 2);  // [4, 3, 2]
  EXPECT_EQ(t.shape(), Shape({4, 3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.storage(), x.storage());
  Tensor n = x.narrow(2, 1, 2);  // [2, 3, 2]
  EXPECT_EQ(n.storage(), x.storage());
  EXPECT_EQ(n.to_vector<float>()[0], 1.0f);
  EXPECT_EQ(n.to_vector<float>()[1], 2.0f);
  Tensor r = x.reshape({6, 4});  // contiguous: a view
  EXPECT_EQ(r.storage(), x.storage());
  Tensor s = x.slice(1, -2, 3);  // rows 1..2 of dim 1
  EXPECT_EQ(s.shape(), Shape({2, 2, 4}));
  EXPECT_EQ(s.to_vector<float>()[0], 4.0f);
  // Writing through a view changes the base.
  n.fill_(-1.0);
  EXPECT_EQ(x.to_vector<float>()[1], -1.0f);
  EXPECT_EQ(x.to_vector<float>()[0], 0.0f);
}

TEST(Tensor, ContiguousCopiesInLogicalOrder) {
  Tensor x = iota_f32({2, 3});
  Tensor t = x.transpose(0, 1).contiguous();  // [[0,3],[1,4],[2,5]]
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_NE(t.storage(), x.storage());
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor e = Tensor::from_vector<float>({1, 2}, {2, 1}).expand({3, 2, 4});
  EXPECT_EQ(e.strides()[0], 0);
  EXPECT_EQ(e.contiguous().to_vector<float>()[4], 2.0f);
}

TEST(Tensor, Bf16StorageRoundsToNearestEven) {
  // 1 + 2^-8 is exactly halfway between two bf16 values: ties go to the even mantissa (1.0).
  Tensor x = Tensor::from_vector<float>({1.0f + 1.0f / 256, 1.0f + 3.0f / 256, -2.5f, 1e-3f}, {4});
  std::vector<float> y = x.to(DType::BF16).to(DType::F32).to_vector<float>();
  EXPECT_EQ(y[0], 1.0f);
  EXPECT_EQ(y[1], 1.0f + 4.0f / 256);
  EXPECT_EQ(y[2], -2.5f);
  EXPECT_NEAR(y[3], 1e-3f, 1e-3f / 128);
  EXPECT_EQ(x.to(DType::BF16).storage()->nbytes(), 8u);  // 2 bytes per element
}

TEST(Tensor, ClearErrors) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  EXPECT_ERROR(matmul(a, b), "inner dimensions differ, f32[2, 3] cpu x f32[4, 5] cpu");
  EXPECT_ERROR(add(a, b), "do not broadcast");
  EXPECT_ERROR(a.reshape({5}), "has 6 elements");
  EXPECT_ERROR(a.narrow(1, 2, 5), "out of range");
  EXPECT_ERROR(a.data<double>(), "tensor is f32, accessed as f64");
  EXPECT_ERROR(rmsnorm(a, Tensor::ones({4}), 1e-6), "weight has 4 elements, x's last dim is 3");
  EXPECT_ERROR(add(a, a.to(DType::F64)), "dtype mismatch");
  EXPECT_ERROR(silu(a.to(DType::BF16)), "bf16 is a storage type");
  EXPECT_ERROR(embedding(Tensor::zeros({5, 2}), Tensor::from_vector<int64_t>({1, 7}, {2})),
               "token id 7 at position 1 is outside the vocabulary [0, 5)");
  EXPECT_ERROR(cross_entropy(Tensor::zeros({2, 3}), Tensor::from_vector<int64_t>({0, 3}, {2})), "target 3 at row 1");
  EXPECT_ERROR(topk(a, 4), "k = 4 must be in [1, 3]");
  EXPECT_ERROR(Tensor().shape(), "undefined");
  EXPECT_ERROR(Tensor::zeros({2}, DType::I64).set_requires_grad(true), "cannot have a gradient");
  EXPECT_ERROR(causal_attention(Tensor::zeros({1, 2, 3, 4}), Tensor::zeros({1, 2, 3, 4}), Tensor::zeros({1, 3, 3, 4}), 1.0),
               "must match q");
}

TEST(Tensor, TopkBreaksTiesTowardLowerIndex) {
  Tensor x = Tensor::from_vector<float>({0.5f, 0.9f, 0.5f, 0.9f, -INFINITY, 0.5f}, {1, 6});
  TopK r = topk(x, 4);
  EXPECT_EQ(r.indices.to_vector<int64_t>(), (std::vector<int64_t>{1, 3, 0, 2}));
  EXPECT_EQ(r.values.to_vector<float>(), (std::vector<float>{0.9f, 0.9f, 0.5f, 0.5f}));
  EXPECT_ERROR(topk(Tensor::from_vector<float>({NAN, 1.0f}, {2}), 1), "NaN");
}

TEST(Tensor, CudaUnavailableIsAClearError) {
  if (cuda_device_count() > 0) GTEST_SKIP() << "a GPU is present";
  EXPECT_ERROR(Tensor::zeros({2}, DType::F32, Device::cuda(0)), "CUDA");
}

}  // namespace
// Gradient norms: Σ x² in f64 equals the plain sum, with the same bits on 1 and 2 threads.
TEST(Reduce, SumOfSquaresIsExactEnoughAndThreadIndependent) {
  Rng rng(4);
  Tensor x = Tensor::randn({300001}, rng);
  std::vector<float> v = x.to_vector<float>();
  double plain = 0;
  for (float f : v) plain += static_cast<double>(f) * f;
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  double one = sum_of_squares(x);
  omp_set_num_threads(2);
  double two = sum_of_squares(x);
  omp_set_num_threads(saved);
  EXPECT_NEAR(one, plain, 1e-12 * plain);
  EXPECT_EQ(one, two);
  Tensor y = x.clone();
  scale_(y, 0.5);
  EXPECT_EQ(y.to_vector<float>()[12345], v[12345] * 0.5f);
}

// The host cache hands a freed block back for the next request of its size class, and when full
// evicts the least recently freed blocks, so that a size no longer asked for gives way to a new one.
TEST(HostAllocator, ReusesBlocksAndEvictsTheOldestWhenFull) {
  const size_t mb = 1 << 20;
  host_allocator_release();
  host_allocator_reset_peak();
  void* a = host_alloc(3 * mb);
  host_free(a, 3 * mb);
  HostAllocatorStats before = host_allocator_stats();
  void* b = host_alloc(3 * mb - 1000);  // same size class
  EXPECT_EQ(b, a);
  EXPECT_EQ(host_allocator_stats().hits, before.hits + 1);
  host_free(b, 3 * mb - 1000);

  // Fill the cache with 8 blocks of 16 MiB (the peak live bytes become 128 MiB + what the process
  // holds), then ask for 96 MiB twice: live + cached would pass 1.5× the peak, so the oldest
  // blocks make room, and the second request is served from the cache.
  host_allocator_release();
  host_allocator_reset_peak();
  std::vector<void*> old;
  for (int i = 0; i < 8; ++i) old.push_back(host_alloc(16 * mb));
  for (void* p : old) host_free(p, 16 * mb);
  void* big = host_alloc(96 * mb);
  host_free(big, 96 * mb);
  HostAllocatorStats full = host_allocator_stats();
  EXPECT_LE(full.live_bytes + full.cached_bytes, full.peak_live_bytes * 3 / 2);
  EXPECT_LT(full.cached_bytes, static_cast<int64_t>((128 + 96) * mb));  // some 16 MiB blocks went back
  void* again = host_alloc(96 * mb);
  EXPECT_EQ(again, big);
  EXPECT_EQ(host_allocator_stats().hits, full.hits + 1);
  host_free(again, 96 * mb);
  host_allocator_release();
  EXPECT_EQ(host_allocator_stats().cached_bytes, 0);
}

}  // namespace mlamoe
