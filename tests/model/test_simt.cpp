// The SIMT emulator (model/tensor/simt/simt.h): coordinates of every thread, a shared-memory
// reduction across barriers, a racy kernel caught by the shuffled thread order, a barrier or warp
// collective that not every thread reaches, exceptions from a kernel, warp shuffles and votes
// (full and partial warps), and atomics across blocks running in parallel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
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

// More than 48 KiB of dynamic shared memory only for a kernel that asked (as on a GPU), at most
// 227 KiB; and a block reads no zeros it did not write (shared memory starts as garbage).
void big_shared_kernel() {}
TEST(Simt, SharedMemoryBeyond48KiBNeedsTheKernelsConsent) {
  LaunchConfig cfg;
  cfg.grid = dim3(2);
  cfg.block = dim3(32);
  cfg.shared_bytes = 64 << 10;
  cfg.kernel = reinterpret_cast<const void*>(&big_shared_kernel);
  float first = 0;
  auto body = [&] {
    if (blockIdx.x == 0 && threadIdx.x == 0) first = reinterpret_cast<float*>(simt::dynamic_shared())[0];
  };
  EXPECT_THROW(launch(cfg, body), Error);
  simt::allow_shared(cfg.kernel, 64 << 10);
  launch(cfg, body);
  EXPECT_TRUE(std::isnan(first)) << "shared memory a block did not write must not read as 0";
  cfg.shared_bytes = 228 << 10;
  EXPECT_THROW(launch(cfg, body), Error);
  EXPECT_THROW(simt::allow_shared(cfg.kernel, 228 << 10), Error);
}

// Warp sums by butterfly (__shfl_xor_sync) and by halving (__shfl_down_sync, lane 0 holds the
// sum), a ballot, across full warps and a partial last warp (80 threads: 32 + 32 + 16).
TEST(Simt, WarpShufflesAndVotes) {
  LaunchConfig cfg;
  cfg.grid = dim3(3);
  cfg.block = dim3(80);
  const unsigned n = cfg.grid.count() * cfg.block.count();
  std::vector<int> xor_sum(n), down_sum(n), ballot(n);
  for (uint64_t seed : {0, 5}) {
    cfg.seed = seed;
    launch(cfg, [&] {
      unsigned g = blockIdx.x * blockDim.x + threadIdx.x, lane = threadIdx.x % 32;
      unsigned lanes = std::min(32u, blockDim.x - threadIdx.x / 32 * 32);
      int v = static_cast<int>(g), a = v, d = v;
      if (lanes == 32) {
        for (int m = 16; m > 0; m /= 2) a += __shfl_xor_sync(0xffffffffu, a, m);
        for (unsigned k = 16; k > 0; k /= 2) d += __shfl_down_sync(0xffffffffu, d, k);
      } else {  // the partial warp: its own lanes only
        unsigned mask = (1u << lanes) - 1u;
        for (int m = static_cast<int>(lanes) / 2; m > 0; m /= 2) a += __shfl_xor_sync(mask, a, m);
        for (unsigned k = lanes / 2; k > 0; k /= 2) d += __shfl_down_sync(mask, d, k);
      }
      xor_sum[g] = a;
      down_sum[g] = d;
      ballot[g] = static_cast<int>(__ballot_sync(lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u, lane % 3 == 0));
    });
    for (unsigned g = 0; g < n; ++g) {
      unsigned t = g % 80, first = g - t + t / 32 * 32, lanes = std::min(32u, 80 - t / 32 * 32);
      int sum = 0;
      unsigned bits = 0;
      for (unsigned i = 0; i < lanes; ++i) sum += static_cast<int>(first + i), bits |= (i % 3 == 0 ? 1u : 0u) << i;
      ASSERT_EQ(xor_sum[g], sum) << "thread " << g << ", seed " << seed;
      if (g == first) {
        ASSERT_EQ(down_sum[g], sum) << "lane 0 of the warp at " << first;
      }
      ASSERT_EQ(static_cast<unsigned>(ballot[g]), bits) << "thread " << g;
    }
  }
}

TEST(Simt, AtomicsAcrossBlocksRunningInParallel) {
  LaunchConfig cfg;
  cfg.grid = dim3(64);
  cfg.block = dim3(128);
  int count = 0, top = -1;
  float total = 0.0f;
  launch(cfg, [&] {
    atomicAdd(&count, 1);
    atomicAdd(&total, 0.5f);
    atomicMax(&top, static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x));
  });
  EXPECT_EQ(count, 64 * 128);
  EXPECT_EQ(total, 0.5f * 64 * 128);  // halves sum exactly in f32 at this size
  EXPECT_EQ(top, 64 * 128 - 1);
}

TEST(Simt, WarpCollectiveNotReachedByEveryLaneIsAnError) {
  LaunchConfig cfg;
  cfg.block = dim3(32);
  try {
    launch(cfg, [] {
      if (threadIdx.x == 7) return;
      __shfl_xor_sync(0xffffffffu, 1, 1);
    });
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("warp collective"), std::string::npos) << e.what();
  }
}

}  // namespace

}  // namespace mlamoe::test
