// A SIMT emulator: CUDA's execution model on the CPU, so that kernel sources compile with g++ and
// run where no GPU is (the CUDA backend issue, part 1; HIP-CPU is the model, written anew).
//
// A launch runs the grid's blocks in parallel on the host's OpenMP threads. The threads of one
// block run as fibers (ucontext) on one host thread and switch at __syncthreads. Between two
// barriers the fibers run one after another in an order shuffled from the launch's seed, the
// block and the phase, so a kernel whose result depends on the order of unsynchronised threads
// gives different results under different seeds instead of passing by luck; a thread that leaves
// the kernel while others wait at a barrier is an error (on a GPU: undefined behaviour).
//
// Kernel sources include simt/cuda_compat.h for CUDA's spellings (__global__, __shared__,
// threadIdx, ...); this header is the engine.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>

namespace mlamoe::simt {

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  unsigned count() const { return x * y * z; }
};

// The running thread's coordinates. A host thread runs one block's fibers at a time, and the
// scheduler sets these before it resumes each fiber.
extern thread_local dim3 threadIdx, blockIdx, blockDim, gridDim;

struct LaunchConfig {
  dim3 grid, block;
  size_t shared_bytes = 0;        // dynamic shared memory per block
  uint64_t seed = 0;              // the thread order between barriers (different seeds: different orders)
  size_t stack_bytes = 64 << 10;  // per thread (fiber); a kernel with large local arrays needs more
  const void* kernel = nullptr;   // the kernel's identity, for allow_shared (MLAMOE_LAUNCH sets it)
};

// Dynamic shared memory per block: up to 48 KiB for any kernel, beyond that (up to 227 KiB, sm_90)
// only for a kernel that asked first, as cudaFuncSetAttribute(MaxDynamicSharedMemorySize) does on a
// GPU: a launch that would fail there fails here (MLAMOE_ALLOW_SHARED in kernel_common.cuh).
constexpr size_t kDefaultSharedBytes = 48 << 10;
constexpr size_t kMaxSharedBytes = 227 << 10;
void allow_shared(const void* kernel, size_t bytes);

// Runs kernel() once per thread of cfg.grid × cfg.block. Throws mlamoe::Error on a bad
// configuration, on a barrier that not every thread of a block reaches, or with the first
// exception a thread threw.
void launch(const LaunchConfig& cfg, const std::function<void()>& kernel);

// The seed of the next MLAMOE_LAUNCH (model/ops/cuda/kernel_common.cuh): one more than the last
// launch's, counted from MLAMOE_SIMT_SEED (default 1) or from set_launch_seed. Two runs of a
// program then shuffle every launch the same way, and a test can run a kernel under other orders.
uint64_t next_launch_seed();
void set_launch_seed(uint64_t seed);

// __syncthreads(): this fiber waits until every thread of its block has arrived.
void syncthreads();

// The running block's dynamic shared memory (cfg.shared_bytes bytes, 16-byte aligned).
unsigned char* dynamic_shared();

constexpr unsigned kWarpSize = 32;  // warps are 32 consecutive threads of a block, in x-fastest order

// A warp collective: every lane of the running thread's warp deposits `value` and waits until all
// have; returns the warp's values (lane i's at [i]) and sets this thread's lane and the warp's lane
// count (fewer than 32 in a partial last warp). `mask` must name the whole warp.
const uint64_t* warp_exchange(unsigned mask, uint64_t value, unsigned& lane, unsigned& lanes);

// The helpers behind cuda_compat.h's warp shuffles (values of at most 8 bytes). A source lane
// outside the warp (or past a partial warp's end) gives the caller's own value, as
// __shfl_down_sync does past the end on a GPU.
namespace detail {
template <class T>
uint64_t bits(T v) {
  static_assert(sizeof(T) <= 8, "warp shuffles move at most 8 bytes");
  uint64_t u = 0;
  std::memcpy(&u, &v, sizeof(T));
  return u;
}
template <class T>
T from_bits(uint64_t u) {
  T v;
  std::memcpy(&v, &u, sizeof(T));
  return v;
}
// The value of lane src (computed from the caller's lane), or the caller's own outside the warp.
template <class T, class F>
T shuffle(unsigned mask, T v, F src_of) {
  unsigned lane = 0, lanes = 0;
  const uint64_t* all = warp_exchange(mask, bits(v), lane, lanes);
  int src = src_of(static_cast<int>(lane));
  return src >= 0 && src < static_cast<int>(lanes) ? from_bits<T>(all[src]) : v;
}
}  // namespace detail

}  // namespace mlamoe::simt
