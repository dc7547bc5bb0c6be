// What every kernel source (model/ops/cuda/*.cu) includes. A .cu file is compiled twice:
//   - by nvcc, into namespace mlamoe::cuda_gpu, for the GPU (builds with MLAMOE_WITH_CUDA);
//   - by g++, into namespace mlamoe::cuda_simt, for the SIMT emulator (every build; the CMake
//     glob wraps each .cu in a generated .cpp that defines MLAMOE_SIMT_BUILD).
// This header hides the difference: MLAMOE_KERNEL_NS names the namespace, MLAMOE_LAUNCH launches
// a kernel either way, bf16_t is the device's bf16 type, and CUDA's spellings (__global__,
// threadIdx, __syncthreads, shuffles, atomics) come from simt/cuda_compat.h under g++.
//
// Kernels must give the same result under every thread order the emulator shuffles (no float
// atomics, no unsynchronised shared reads), so results are the same from run to run on the GPU.
#pragma once
#include <cstdint>

#include "model/ops/cuda/kernels.h"

#ifdef MLAMOE_SIMT_BUILD
#include <cmath>
#include <cstring>

#include "model/tensor/simt/cuda_compat.h"
#define MLAMOE_KERNEL_NS cuda_simt
// A GPU needs a kernel's consent to more than 48 KiB of dynamic shared memory; the emulator does not.
#define MLAMOE_ALLOW_SHARED(kernel, bytes) ::mlamoe::simt::allow_shared(reinterpret_cast<const void*>(kernel), (bytes))
// kernel<<<grid, block, shared_bytes>>>(args...) in the emulator: every thread calls
// kernel(args...), the thread order shuffled from the next launch seed (simt.h).
#define MLAMOE_LAUNCH(kernel, grid, block, shared_bytes, ...)                                                            \
  ::mlamoe::simt::launch(                                                                                                \
      ::mlamoe::simt::LaunchConfig{::mlamoe::simt::dim3(grid), ::mlamoe::simt::dim3(block), (shared_bytes),              \
                                   ::mlamoe::simt::next_launch_seed(), 64 << 10, reinterpret_cast<const void*>(kernel)}, \
      [&] { kernel(__VA_ARGS__); })
#else
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#define MLAMOE_KERNEL_NS cuda_gpu
#define MLAMOE_ALLOW_SHARED(kernel, bytes)     \
  ::mlamoe::cuda_gpu::gpu_check_launch_config( \
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)), #kernel)
// On the calling thread's current stream (stream.h).
#define MLAMOE_LAUNCH(kernel, grid, block, shared_bytes, ...)                                                              \
  do {                                                                                                                     \
    kernel<<<(grid), (block), (shared_bytes), static_cast<cudaStream_t>(::mlamoe::cuda::current_stream())>>>(__VA_ARGS__); \
    ::mlamoe::cuda_gpu::gpu_check_launch(#kernel);                                                                         \
  } while (0)
// `extern __shared__` under nvcc; a pointer into the emulator's per-block buffer under g++.
#define MLAMOE_DYNAMIC_SHARED(T, name)                         \
  extern __shared__ __align__(16) unsigned char mlamoe_smem[]; \
  T* name = reinterpret_cast<T*>(mlamoe_smem)
#endif

namespace mlamoe::MLAMOE_KERNEL_NS {

#ifdef MLAMOE_SIMT_BUILD
using namespace ::mlamoe::simt::compat;
using bf16_t = ::mlamoe::bf16;
__device__ inline float bf16_to_f32(bf16_t v) { return ::mlamoe::bf16_to_float(v); }
__device__ inline bf16_t f32_to_bf16(float v) { return ::mlamoe::float_to_bf16(v); }
__device__ inline uint32_t f32_bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}
__device__ inline bf16_t bf16_from_bits(uint16_t b) { return bf16_t{b}; }
// Grid-stride loops cover any grid; the emulator runs a small one (fewer fibers to switch).
constexpr int64_t kMaxGridBlocks = 8;
#else
using bf16_t = __nv_bfloat16;
__device__ inline float bf16_to_f32(bf16_t v) { return __bfloat162float(v); }
__device__ inline bf16_t f32_to_bf16(float v) { return __float2bfloat16_rn(v); }
__device__ inline uint32_t f32_bits(float v) { return __float_as_uint(v); }
__device__ inline bf16_t bf16_from_bits(uint16_t b) { return __ushort_as_bfloat16(b); }
constexpr int64_t kMaxGridBlocks = 1024;
#endif

// The device's bf16 pointer for a host-typed one (the launchers' signatures use mlamoe::bf16).
inline bf16_t* device_bf16(::mlamoe::bf16* p) { return reinterpret_cast<bf16_t*>(p); }
inline const bf16_t* device_bf16(const ::mlamoe::bf16* p) { return reinterpret_cast<const bf16_t*>(p); }

constexpr int kThreads = 256;  // threads per block of the elementwise kernels

// Blocks for a grid-stride loop over n items, `per_block` per block and round.
inline unsigned grid_for(int64_t n, int64_t per_block = kThreads) {
  int64_t b = (n + per_block - 1) / per_block;
  return static_cast<unsigned>(b < 1 ? 1 : b > kMaxGridBlocks ? kMaxGridBlocks : b);
}

__device__ inline int64_t global_thread() { return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ inline int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// ---- Warp-per-row kernels: each warp takes whole rows (a grid-stride loop over rows); its 32
// lanes stride over a row's elements and combine their partial results with warp_sum / warp_max.
// The butterfly gives every lane the same bits, whatever the order the lanes run in. ----
constexpr int kRowWarps = kThreads / 32;  // rows in flight per block

inline unsigned grid_for_rows(int64_t rows) { return grid_for(rows, kRowWarps); }

__device__ inline unsigned lane_id() { return threadIdx.x % 32; }
__device__ inline int64_t warp_row() { return static_cast<int64_t>(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; }
__device__ inline int64_t warp_rows_stride() { return static_cast<int64_t>(gridDim.x) * (blockDim.x / 32); }

__device__ inline float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ inline float warp_max(float v) {
  for (int off = 16; off > 0; off /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS

namespace mlamoe::MLAMOE_KERNEL_NS {

// Offsets of element i of walk l in its first `arrays` arrays (l.stride[a]).
template <int kArrays>
__device__ inline void walk_offsets(const cuda::StridedLayout& l, int64_t i, int64_t (&off)[kArrays]) {
  for (int a = 0; a < kArrays; ++a) off[a] = 0;
  for (int d = l.nd - 1; d >= 0; --d) {
    int64_t c = i % l.shape[d];
    i /= l.shape[d];
    for (int a = 0; a < kArrays; ++a) off[a] += c * l.stride[a][d];
  }
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
