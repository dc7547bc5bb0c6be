// CUDA tensors: storage, copies, fills and the caching allocator; ops whose CUDA kernels the op table
// cannot check (route_select) and the input checks of ops on device data. The ctest cuda_tensor runs this
// in the SIMT emulator (MLAMOE_CUDA_BACKEND=simt); tools/gpu_check.sh runs it on a GPU. Skips (with
// the reason) where no CUDA backend runs.
#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "model/ops/ops.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/caching_allocator.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/simt/simt.h"
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
  // Conversions the device has no kernel for happen on the host side of a copy (i64 -> f64).
  Tensor ids = Tensor::from_vector<int64_t>({3, -1, 7}, {3}).to(Device::cuda(0));
  EXPECT_EQ(ids.to_vector<double>(), (std::vector<double>{3, -1, 7}));
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

// A block freed by work on one stream is handed only to requests on that stream (stream.h): on
// another it could be written while the first stream still reads it.
TEST(CudaTensor, CachedBlocksStayOnTheirStream) {
  NEED_CUDA();
  cuda::Stream side(0);
  cuda::MemoryStats s0 = cuda::memory_stats(0);
  { Tensor a = Tensor::empty({777, 100}, DType::F32, Device::cuda(0)); }  // cached for the default stream
  {
    cuda::StreamGuard on(side);
    EXPECT_EQ(cuda::current_stream(), side.handle());
    Tensor b = Tensor::empty({777, 100}, DType::F32, Device::cuda(0));  // not the default stream's block
  }
  cuda::MemoryStats s1 = cuda::memory_stats(0);
  EXPECT_EQ(s1.raw_allocs - s0.raw_allocs, 2);
  {
    cuda::StreamGuard on(side);
    Tensor c = Tensor::empty({777, 100}, DType::F32, Device::cuda(0));  // the side stream's own block
  }
  Tensor d = Tensor::empty({777, 100}, DType::F32, Device::cuda(0));  // the default stream's
  cuda::MemoryStats s2 = cuda::memory_stats(0);
  EXPECT_EQ(s2.raw_allocs, s1.raw_allocs);
  EXPECT_EQ(s2.hits - s1.hits, 2);
  EXPECT_EQ(cuda::current_stream(), nullptr);
}

// Events order and time work: a copy and a kernel on a side stream, waited for by the default
// stream; elapsed_ms between two events is non-negative and finite.
TEST(CudaTensor, EventsOrderStreamsAndTimeWork) {
  NEED_CUDA();
  cuda::Stream side(0);
  cuda::Event start(0), done(0);
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4}, {4}).to(Device::cuda(0));
  Tensor y;
  {
    cuda::StreamGuard on(side);
    start.record();
    y = scale(x, 2.0);
    done.record();
  }
  cuda::stream_wait(nullptr, done);  // the default stream's later work sees y
  Tensor z = add(y, x);
  EXPECT_EQ(z.to(Device::cpu()).to_vector<float>(), std::vector<float>({3, 6, 9, 12}));
  done.synchronize();
  EXPECT_TRUE(done.query());
  double ms = start.elapsed_ms(done);
  EXPECT_GE(ms, 0.0);
  EXPECT_LT(ms, 60e3);
  cuda::Event never(0);
  test::expect_error([&] { never.synchronize(); }, "never recorded");
}

// Every host wait for the device is announced to the watcher (the collective watchdog watches them:
// parallel/watchdog.h, watch_device_waits): a copy back to the host, an event's and a stream's
// synchronize, cuda::synchronize; copies to the device, which the host does not wait for, are not.
int g_waits_begun = 0, g_waits_ended = 0;
TEST(CudaTensor, HostWaitsForTheDeviceAreAnnounced) {
  NEED_CUDA();
  Tensor x = Tensor::from_vector<float>({1, 2}, {2}).to(Device::cuda(0));
  cuda::set_host_wait_watcher({[] { ++g_waits_begun; }, [] { ++g_waits_ended; }});
  std::vector<float> back = x.to(Device::cpu()).to_vector<float>();
  EXPECT_EQ(g_waits_begun, 1);
  EXPECT_EQ(g_waits_ended, 1);
  Tensor up = Tensor::from_vector<float>({3}, {1}).to(Device::cuda(0));  // to the device: queued, no wait
  Tensor within = up.clone();                                            // within the device: queued
  EXPECT_EQ(g_waits_begun, 1);
  cuda::Event e(0);
  e.record();
  e.synchronize();
  cuda::Stream s(0);
  s.synchronize();
  cuda::synchronize();
  cuda::set_host_wait_watcher({});
  EXPECT_EQ(g_waits_begun, 4);
  EXPECT_EQ(g_waits_ended, 4);
  (void)x.to(Device::cpu());  // no watcher: nothing announced
  EXPECT_EQ(g_waits_begun, 4);
  EXPECT_EQ(back, std::vector<float>({1, 2}));
}

// route_select on the device picks exactly the CPU's experts (the selection is discrete): random
// scores, every third token's quantised to quarters so that experts and groups tie, with and
// without a bias, both group scores, under two emulator thread orders.
TEST(CudaOps, RouteSelectMatchesCpuExactly) {
  NEED_CUDA();
  const int64_t S = 37, E = 64;
  Rng rng(11);
  std::vector<float> v = Tensor::uniform({S, E}, rng, 0.0, 1.0).to_vector<float>();
  for (int64_t t = 0; t < S; t += 3)
    for (int64_t e = 0; e < E; ++e) v[t * E + e] = std::round(v[t * E + e] * 4.0f) / 4.0f;
  Tensor s = Tensor::from_vector(v, {S, E});
  Tensor bias = Tensor::randn({E}, rng, 0.05);
  Tensor s_dev = s.to(Device::cuda(0)), bias_dev = bias.to(Device::cuda(0));
  const RouteSpec specs[] = {{8, 8, 4, GroupScore::Top2Sum},  {8, 8, 4, GroupScore::Max},  {6, 1, 1, GroupScore::Top2Sum},
                             {5, 16, 3, GroupScore::Top2Sum}, {40, 4, 3, GroupScore::Max}, {64, 2, 2, GroupScore::Top2Sum}};
  for (const RouteSpec& spec : specs) {
    for (bool with_bias : {false, true}) {
      std::vector<int64_t> cpu = route_select(s, with_bias ? bias : Tensor(), spec).to_vector<int64_t>();
      for (uint64_t seed : {1u, 977u}) {
        simt::set_launch_seed(seed);
        Tensor idx = route_select(s_dev, with_bias ? bias_dev : Tensor(), spec);
        EXPECT_TRUE(idx.device().is_cuda());
        EXPECT_EQ(idx.to_vector<int64_t>(), cpu) << "top_k " << spec.top_k << ", " << spec.n_group << " groups, keep "
                                                 << spec.topk_group << ", bias " << with_bias << ", seed " << seed;
        EXPECT_EQ(expert_counts(idx, E), expert_counts(Tensor::from_vector(cpu, {S, spec.top_k}), E));
      }
    }
  }
  v[5 * E + 7] = std::nanf("");
  test::expect_error(
      [&] {
        route_select(Tensor::from_vector(v, {S, E}).to(Device::cuda(0)), Tensor(), specs[0]);
      },
      "contain NaN");
}

// permute_by_expert on the device is the CPU's permutation exactly: random indices (every fifth
// expert empty, expert 0 taking a large share of the rows, more rows than the sort's threads), one
// token, and no token; an index out of range is one error on both.
TEST(CudaOps, PermuteByExpertMatchesCpuExactly) {
  NEED_CUDA();
  Rng rng(7);
  for (auto [s_tok, k, n_experts] : {std::tuple<int64_t, int64_t, int64_t>{1000, 6, 64}, {1, 8, 16}, {0, 4, 8}, {300, 1, 3}}) {
    std::vector<int64_t> idx(s_tok * k);
    for (int64_t i = 0; i < s_tok * k; ++i) {
      int64_t e = static_cast<int64_t>(rng.next_u64() % static_cast<uint64_t>(n_experts));
      idx[i] = e % 5 == 1 ? 0 : e;  // every fifth expert gets nothing, expert 0 a large share
    }
    Tensor host = Tensor::from_vector(idx, {s_tok, k});
    Permutation cpu = permute_by_expert(host, n_experts);
    simt::set_launch_seed(3);
    Permutation dev = permute_by_expert(host.to(Device::cuda(0)), n_experts);
    EXPECT_TRUE(dev.token.device().is_cuda());
    EXPECT_EQ(dev.offsets, cpu.offsets) << s_tok << " tokens";
    EXPECT_EQ(dev.token.to(Device::cpu()).to_vector<int64_t>(), cpu.token.to_vector<int64_t>()) << s_tok << " tokens";
    EXPECT_EQ(dev.slot.to(Device::cpu()).to_vector<int64_t>(), cpu.slot.to_vector<int64_t>()) << s_tok << " tokens";
  }
  Tensor bad = Tensor::from_vector<int64_t>({0, 3, 9, 1}, {2, 2});
  test::expect_error([&] { permute_by_expert(bad, 4); }, "expert index 9 at position 2 is outside [0, 4)");
  test::expect_error([&] { permute_by_expert(bad.to(Device::cuda(0)), 4); }, "1 of the 4 expert indices are outside [0, 4)");
}

// The checks the CPU ops make on host data hold for device inputs too (read from a host copy).
TEST(CudaOps, InputChecksOnDeviceData) {
  NEED_CUDA();
  Device dev = Device::cuda(0);
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3}).to(dev);
  Tensor bad = Tensor::from_vector<int64_t>({0, 3}, {2}).to(dev);
  test::expect_error([&] { index_select(x, bad); }, "outside [0, 2)");
  test::expect_error([&] { index_add(x, bad, x); }, "outside [0, 2)");
  test::expect_error([&] { gather(x, Tensor::from_vector<int64_t>({0, 3}, {2, 1}).to(dev)); }, "outside [0, 3)");
  test::expect_error([&] { embedding(x, Tensor::from_vector<int32_t>({1, 2}, {2}).to(dev)); }, "outside the vocabulary");
  test::expect_error([&] { cross_entropy(x, Tensor::from_vector<int64_t>({1, 3}, {2}).to(dev)); }, "outside [0, 3)");
  test::expect_error([&] { topk(Tensor::from_vector<float>({1, std::nanf(""), 2}, {1, 3}).to(dev), 2); }, "NaN");
  test::expect_error([&] { normalize_rows(Tensor::from_vector<float>({1, 2, 0, 0}, {2, 2}).to(dev)); }, "sums to 0");
  test::expect_error([&] { moe_combine(x, x.narrow(1, 0, 1), Tensor::from_vector<int64_t>({0, 0}, {2})); }, "repeated");
  // i32 indices and host token ids for a device table work as on the CPU
  Tensor ids = Tensor::from_vector<int32_t>({1, 0, 1}, {3});
  EXPECT_EQ(embedding(x, ids).to_vector<float>(), embedding(x.to(Device::cpu()), ids).to_vector<float>());
}

// bf16 autocast on the device (model/autograd/autocast.h): a product's result is rounded as on the
// CPU, and a tensor of bf16 values is kept for the backward in half the bytes, exactly; one value
// that is not a bf16 value keeps the whole tensor in f32.
TEST(CudaTensor, AutocastRoundsAndKeepsBf16ValuesExactly) {
  NEED_CUDA();
  std::vector<float> v = {1.0f, 3.14159f, -2.5e-3f, 65504.7f, 1e-30f, -7.0f};
  Tensor host = Tensor::from_vector(v, {2, 3});
  Tensor dev = host.to(Device::cuda(0));
  round_to_bf16_values(host);
  round_to_bf16_values(dev);
  EXPECT_EQ(dev.to(Device::cpu()).to_vector<float>(), host.to_vector<float>());
  AutocastBf16 on(true);
  Tensor kept = keep_for_backward(dev);
  EXPECT_EQ(kept.dtype(), DType::BF16);
  EXPECT_TRUE(kept.device().is_cuda());
  EXPECT_EQ(widen_kept_on_cuda(kept).to(Device::cpu()).to_vector<float>(), host.to_vector<float>());
  Tensor f32 = Tensor::from_vector(v, {2, 3}).to(Device::cuda(0));  // 3.14159f is not a bf16 value
  EXPECT_EQ(keep_for_backward(f32).dtype(), DType::F32);
  AutocastBf16 off(false);
  EXPECT_EQ(keep_for_backward(dev).dtype(), DType::F32);  // outside autocast nothing is narrowed
}

TEST(CudaTensor, SizeClassesWasteAtMostAnEighth) {
  size_t prev = 0;
  for (size_t n = 1; n < (size_t{1} << 30); n = n * 3 / 2 + 1) {
    size_t c = cuda::device_size_class(n);
    EXPECT_GE(c, n);
    if (n > (64 << 10)) {
      EXPECT_LE(c, n + n / 8);
    }
    EXPECT_GE(c, prev);
    prev = c;
  }
}

}  // namespace
}  // namespace mlamoe
