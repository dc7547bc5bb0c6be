// The SIMT emulator (model/tensor/simt/simt.h): coordinates of every thread, a shared-memory
// reduction across barriers, a racy kernel caught by the shuffled thread order, a barrier that not
// every thread reaches, and exceptions from a kernel.
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <vector>

#include "model/tensor/error.h"
#include "model/tensor/simt/cuda_compat.h"

namespace mlamoe::test {

namespace {

using namespace mlamoe::simt::compat;  // NOLINT: the kernels below use CUDA's names
using simt::launch;
using simt::LaunchConfig;

__global__ void write_ids(int* out) {
  unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  unsigned thread = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * blockDim.count() + thread] = static_cast<int>(block * 10000 + thread);
}

TEST(Simt, EveryThreadSeesItsCoordinates) {
  LaunchConfig cfg;
  cfg.grid = dim3(3, 2, 2);
  cfg.block = dim3(5, 3, 2);
  std::vector<int> out(cfg.grid.count() * cfg.block.count(), -1);
  launch(cfg, [&] { write_ids(out.data()); });
  for (unsigned b = 0; b < cfg.grid.count(); ++b)
    for (unsigned t = 0; t < cfg.block.count(); ++t) ASSERT_EQ(out[b * cfg.block.count() + t], static_cast<int>(b * 10000 + t));
}

// Tree reduction in shared memory: correct only if every level waits at __syncthreads.
__global__ void block_sum(const float* in, float* out, bool synchronised) {
  __shared__ float buf[256];
  unsigned t = threadIdx.x;
  buf[t] = in[blockIdx.x * blockDim.x + t];
  if (synchronised) __syncthreads();
  for (unsigned stride = blockDim.x / 2; stride > 0; stride /= 2) {
    if (t < stride) buf[t] += buf[t + stride];
    if (synchronised) __syncthreads();
  }
  if (t == 0) out[blockIdx.x] = buf[0];
}

std::vector<float> run_sum(bool synchronised, uint64_t seed, const std::vector<float>& in, unsigned blocks) {
  std::vector<float> out(blocks, 0.0f);
  LaunchConfig cfg;
  cfg.grid = dim3(blocks);
  cfg.block = dim3(256);
  cfg.seed = seed;
  launch(cfg, [&] { block_sum(in.data(), out.data(), synchronised); });
  return out;
}

TEST(Simt, SharedMemoryReductionAcrossBarriers) {
  const unsigned blocks = 6;
  std::vector<float> in(blocks * 256);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(i % 7);  // small integers: sums are exact
  for (uint64_t seed : {0, 1, 2, 3}) {
    std::vector<float> out = run_sum(true, seed, in, blocks);
    for (unsigned b = 0; b < blocks; ++b) {
      float expected = 0;
      for (unsigned t = 0; t < 256; ++t) expected += in[b * 256 + t];
      ASSERT_EQ(out[b], expected) << "block " << b << ", seed " << seed;
    }
  }
}

// The same reduction without its barriers reads shared values before other threads wrote them:
// the shuffled order makes the result depend on the seed (and be wrong), as on a GPU.
TEST(Simt, RacyKernelIsCaughtByTheShuffledOrder) {
  const unsigned blocks = 2;
  std::vector<float> in(blocks * 256, 1.0f);
  std::set<float> results;
  int wrong = 0;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::vector<float> out = run_sum(false, seed, in, blocks);
    results.insert(out[0]);
    wrong += out[0] != 256.0f;
  }
  EXPECT_GT(results.size(), 1u) << "the unsynchronised kernel gave the same result under every seed";
  EXPECT_GT(wrong, 0);
}

__global__ void early_exit() {
  if (threadIdx.x == 3) return;  // skips the barrier the others wait at
  __syncthreads();
}

TEST(Simt, BarrierNotReachedByEveryThreadIsAnError) {
  LaunchConfig cfg;
  cfg.block = dim3(8);
  try {
    launch(cfg, [] { early_exit(); });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("1 of 8 threads left the kernel while 7 wait at __syncthreads"), std::string::npos)
        << e.what();
  }
}

TEST(Simt, KernelExceptionsAndBadLaunchesReachTheCaller) {
  LaunchConfig cfg;
  cfg.grid = dim3(4);
  cfg.block = dim3(16);
  EXPECT_THROW(launch(cfg,
                      [] {
                        __syncthreads();
                        if (blockIdx.x == 2 && threadIdx.x == 5) throw Error("thread (2, 5) failed");
                      }),
               Error);
  cfg.block = dim3(2048);
  EXPECT_THROW(launch(cfg, [] {}), Error);
}

TEST(Simt, DynamicSharedMemoryIsPerBlock) {
  LaunchConfig cfg;
  cfg.grid = dim3(5);
  cfg.block = dim3(32);
  cfg.shared_bytes = 32 * sizeof(int);
  std::vector<int> out(5, 0);
  launch(cfg, [&] {
    int* s = reinterpret_cast<int*>(simt::dynamic_shared());
    s[threadIdx.x] = static_cast<int>(blockIdx.x * 100 + threadIdx.x);
    __syncthreads();
    if (threadIdx.x == 0) {
      int total = 0;
      for (int i = 0; i < 32; ++i) total += s[i];
      out[blockIdx.x] = total;
    }
  });
  for (int b = 0; b < 5; ++b) EXPECT_EQ(out[b], b * 100 * 32 + 31 * 32 / 2);
}

}  // namespace

}  // namespace mlamoe::test
