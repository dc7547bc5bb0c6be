// CUDA's spellings for kernel sources compiled by g++ against the SIMT emulator (simt.h). Include
// it only in kernel sources: it defines __global__, __device__, __shared__ and __syncthreads.
#pragma once
#include "model/tensor/simt/simt.h"

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
// One static per host thread: a host thread runs one block at a time, so this is the block's.
#define __shared__ thread_local static
#define __syncthreads() ::mlamoe::simt::syncthreads()

// Shared memory sized at launch: `extern __shared__ T name[]` on a GPU.
#define MLAMOE_DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::mlamoe::simt::dynamic_shared())

namespace mlamoe::simt::compat {
template <class T>
T __shfl_sync(unsigned mask, T v, int src, int width = kWarpSize) {
  return shfl_sync(mask, v, src, width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = kWarpSize) {
  return shfl_xor_sync(mask, v, lane_mask, width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  return shfl_down_sync(mask, v, delta, width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = kWarpSize) {
  return shfl_up_sync(mask, v, delta, width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ballot_sync(mask, pred != 0); }
inline int __any_sync(unsigned mask, int pred) { return ballot_sync(mask, pred != 0) != 0; }
inline int __all_sync(unsigned mask, int pred) { return ballot_sync(mask, pred != 0) == ballot_sync(mask, true); }
template <class T>
T atomicAdd(T* p, T v) {
  return atomic_add(p, v);
}
template <class T>
T atomicMax(T* p, T v) {
  return atomic_max(p, v);
}
template <class T>
T atomicCAS(T* p, T expected, T desired) {
  return atomic_cas(p, expected, desired);
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
