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

namespace mlamoe::simt::compat {
using ::mlamoe::simt::blockDim;
using ::mlamoe::simt::blockIdx;
using ::mlamoe::simt::dim3;
using ::mlamoe::simt::gridDim;
using ::mlamoe::simt::threadIdx;
}  // namespace mlamoe::simt::compat
