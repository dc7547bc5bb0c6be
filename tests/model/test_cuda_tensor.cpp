// CUDA tensors: storage, copies, fills and the caching allocator. The ctest cuda_tensor runs this
// in the SIMT emulator (MLAMOE_CUDA_BACKEND=simt); tools/gpu_check.sh runs it on a GPU. Skips (with
// the reason) where no CUDA backend runs.
#include <gtest/gtest.h>

#include "model/ops/ops.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/caching_allocator.h"
#include "tests/test_util.h"

namespace mlamoe {
namespace {

#define NEED_CUDA() \
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA backend running (MLAMOE_CUDA_BACKEND=simt runs the emulator)"

TEST(CudaTensor, RoundTrip) {
  NEED_CUDA();
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor d = x.to(Device::cuda(0));
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector<float>(), x.to_vector<float>());
  EXPECT_GT(Storage::live_bytes(DeviceType::CUDA), 0);
}

// The host may not read device memory, even where (the emulator) it could.
TEST(CudaTensor, HostAccessIsAnError) {
  NEED_CUDA();
  Tensor d = Tensor::zeros({4}, DType::F32, Device::cuda(0));
  test::expect_error([&] { d.data<float>(); }, "not in host memory");
  test::expect_error([&] { d.raw_data(); }, "not in host memory");
  EXPECT_NE(d.device_data<float>(), nullptr);
}

TEST(CudaTensor, FillsAndConvertingStridedCopies) {
  NEED_CUDA();
  EXPECT_EQ(Tensor::full({5}, 2.5, DType::F32, Device::cuda(0)).to_vector<float>(), std::vector<float>(5, 2.5f));
  EXPECT_EQ(Tensor::zeros({3}, DType::I64, Device::cuda(0)).to_vector<int64_t>(), std::vector<int64_t>(3, 0));
  EXPECT_EQ(Tensor::full({2}, -7, DType::I32, Device::cuda(0)).to_vector<int32_t>(), std::vector<int32_t>(2, -7));
  Rng rng(3);
  Tensor x = Tensor::randn({4, 6, 5}, rng);
  Tensor d = x.to(Device::cuda(0));
  // A transposed view made contiguous on the device, then converted to bf16 and back there.
  Tensor t = d.transpose(0, 2).contiguous();
  EXPECT_EQ(t.to_vector<float>(), x.transpose(0, 2).contiguous().to_vector<float>());
  EXPECT_EQ(d.to(DType::BF16).to(DType::F32).to_vector<float>(), x.to(DType::BF16).to(DType::F32).to_vector<float>());
  // A strided view copied straight to the host (laid out on the device first).
  EXPECT_EQ(d.narrow(1, 2, 3).to(Device::cpu()).to_vector<float>(), x.narrow(1, 2, 3).contiguous().to_vector<float>());
  // Into a strided device view from the host.
  Tensor dst = Tensor::zeros({4, 6, 5}, DType::F32, Device::cuda(0));
  Tensor view = dst.narrow(2, 1, 3);
  view.copy_(x.narrow(2, 0, 3));
  auto got = dst.to_vector<float>(), src = x.to_vector<float>();
  for (int64_t i = 0; i < 4 * 6; ++i)
    for (int64_t j = 0; j < 5; ++j) EXPECT_EQ(got[i * 5 + j], j >= 1 && j < 4 ? src[i * 5 + j - 1] : 0.0f);
}

TEST(CudaTensor, CachingAllocatorReusesBlocks) {
  NEED_CUDA();
  cuda::reset_peak_memory_stats(0);
  cuda::MemoryStats s0 = cuda::memory_stats(0);
  { Tensor a = Tensor::empty({1000, 100}, DType::F32, Device::cuda(0)); }  // allocated, then cached
  cuda::MemoryStats s1 = cuda::memory_stats(0);
  for (int step = 0; step < 5; ++step) Tensor b = Tensor::empty({1000, 100}, DType::F32, Device::cuda(0));
  cuda::MemoryStats s2 = cuda::memory_stats(0);
  EXPECT_EQ(s2.raw_allocs, s1.raw_allocs) << "a freed block of the same class must be reused";
  EXPECT_EQ(s2.hits - s1.hits, 5);
  EXPECT_EQ(s2.allocated_bytes, s0.allocated_bytes);
  EXPECT_GE(s2.peak_allocated_bytes, s0.allocated_bytes + 400000);
  EXPECT_LE(s2.peak_allocated_bytes, s0.allocated_bytes + 400000 * 9 / 8);
  cuda::release_cached_memory(0);
  EXPECT_EQ(cuda::memory_stats(0).reserved_bytes, cuda::memory_stats(0).allocated_bytes);
}

TEST(CudaTensor, SizeClassesWasteAtMostAnEighth) {
  size_t prev = 0;
  for (size_t n = 1; n < (size_t{1} << 30); n = n * 3 / 2 + 1) {
    size_t c = cuda::device_size_class(n);
    EXPECT_GE(c, n);
    if (n > (64 << 10)) EXPECT_LE(c, n + n / 8);
    EXPECT_GE(c, prev);
    prev = c;
  }
}

}  // namespace
}  // namespace mlamoe
