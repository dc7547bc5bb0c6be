// CUDA's spellings for kernel sources compiled by g++ against the SIMT emulator (simt.h). Include
// it only in kernel sources: it defines __global__, __device__, __shared__ and __syncthreads.
#pragma once
#include "model/tensor/simt/simt.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
// One static per host thread: a host thread runs one block at a time, so this is the block's.
#define __shared__ thread_local static
#define __syncthreads() ::mlamoe::simt::syncthreads()

// Shared memory sized at launch: `extern __shared__ T name[]` on a GPU.
#define MLAMOE_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::mlamoe::simt::dynamic_shared())

namespace mlamoe::simt::compat {
// Warp shuffles and votes: warp collectives of the emulator (simt.h's warp_exchange).
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = kWarpSize) {
  return detail::shuffle(mask, v, [&](int lane) { return lane / width * width + src % width; });
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = kWarpSize) {
  return detail::shuffle(mask, v, [&](int lane) { return (lane ^ lane_mask) / width == lane / width ? lane ^ lane_mask : lane; });
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  int d = static_cast<int>(delta);
  return detail::shuffle(mask, v, [&](int lane) { return (lane + d) / width == lane / width ? lane + d : lane; });
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  int d = static_cast<int>(delta);
  return detail::shuffle(mask, v, [&](int lane) { return lane >= d && (lane - d) / width == lane / width ? lane - d : lane; });
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  unsigned lane = 0, lanes = 0;
  const uint64_t* all = warp_exchange(mask, pred != 0, lane, lanes);
  unsigned out = 0;
  for (unsigned i = 0; i < lanes; ++i) out |= static_cast<unsigned>(all[i] != 0) << i;
  return out;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, !pred) == 0; }

// Atomics: the grid's blocks run on several host threads at once, so these are real atomics.
template <class T>
T atomicAdd(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v);
}
template <class T>
T atomicMax(T* p, T v) {
  std::atomic_ref<T> a(*p);
  T old = a.load();
  while (old < v && !a.compare_exchange_weak(old, v)) {
  }
  return old;
}
template <class T>
T atomicCAS(T* p, T expected, T desired) {
  std::atomic_ref<T>(*p).compare_exchange_strong(expected, desired);
  return expected;  // the old value, as atomicCAS returns
}
template <class T>
T __ldg(const T* p) {
  return *p;
}
using ::mlamoe::simt::blockDim;
using ::mlamoe::simt::blockIdx;
using ::mlamoe::simt::dim3;
using ::mlamoe::simt::gridDim;
using ::mlamoe::simt::threadIdx;
}  // namespace mlamoe::simt::compat
