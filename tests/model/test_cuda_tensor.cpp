// CUDA storage: host -> device -> host round trip. Skips (with the reason) where no GPU is present
// or the build has no CUDA backend.
#include <gtest/gtest.h>

#include "model/ops/ops.h"

namespace mlamoe {
namespace {

TEST(CudaTensor, RoundTrip) {
  if (cuda_device_count() == 0) GTEST_SKIP() << "no CUDA device (or a CPU-only build): nothing to test here";
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor d = x.to(Device::cuda(0));
  EXPECT_TRUE(d.device().is_cuda());
  EXPECT_EQ(d.to(Device::cpu()).to_vector<float>(), x.to_vector<float>());
  EXPECT_GT(Storage::live_bytes(DeviceType::CUDA), 0);
}

}  // namespace
}  // namespace mlamoe
