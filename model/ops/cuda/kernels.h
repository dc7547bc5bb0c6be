// The CUDA kernels' launchers (listed in kernel_list.inc) and how an op calls them:
//   MLAMOE_CUDA_CALL(rmsnorm_forward_cuda, x, w, y, rstd, rows, d, eps);
// runs the GPU build of the kernel when the gpu backend runs and the emulator's build under simt
// (model/tensor/cuda/backend.h).
#pragma once
#include <cstdint>

#include "model/ops/cuda/kernel_args.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/dtype.h"

namespace mlamoe::cuda_simt {
#include "model/ops/cuda/kernel_list.inc"
}  // namespace mlamoe::cuda_simt

#ifdef MLAMOE_WITH_CUDA
namespace mlamoe::cuda_gpu {
#include "model/ops/cuda/kernel_list.inc"
}  // namespace mlamoe::cuda_gpu
#define MLAMOE_CUDA_CALL(fn, ...) \
  (::mlamoe::cuda::on_simt() ? ::mlamoe::cuda_simt::fn(__VA_ARGS__) : ::mlamoe::cuda_gpu::fn(__VA_ARGS__))
#else
#define MLAMOE_CUDA_CALL(fn, ...) (::mlamoe::cuda_simt::fn(__VA_ARGS__))
#endif
