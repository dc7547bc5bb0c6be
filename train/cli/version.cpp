#include "train/cli/version.h"

#include <omp.h>

#include <cstdio>
#include <string>

#include "model/ops/gemm_bf16.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/device.h"
#include "train/gemm_peak.h"

extern "C" int openblas_get_parallel(void);

namespace mlamoe {

int print_version() {
#ifdef MLAMOE_WITH_CUDA
  const char* cuda = "on";
#else
  const char* cuda = "off";
#endif
  std::printf(
      "mlamoe 0.2\n  CUDA backend: nvcc kernels %s; running: %s (devices: %d; MLAMOE_CUDA_BACKEND=simt: the SIMT emulator)\n"
      "  OpenMP threads: %d\n  OpenBLAS: %s, %s kernels\n  bf16 GEMM: %s\n",
      cuda, cuda::backend_name(cuda::backend()), cuda_device_count(), omp_get_max_threads(),
      openblas_get_parallel() == 2   ? "OpenMP build"
      : openblas_get_parallel() == 1 ? "pthread build"
                                     : "serial build",
      blas_kernel_name().c_str(),
      std::string(bf16_gemm_path()) == "onednn" ? "oneDNN (the CPU multiplies bf16)" : "sgemm on widened operands");
  return 0;
}

}  // namespace mlamoe
