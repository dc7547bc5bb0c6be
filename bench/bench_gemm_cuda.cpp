// The CUDA backend's GEMM ceiling: the rate of mlamoe::matmul on square device operands (cuBLAS
// cublasGemmStridedBatchedEx on a GPU, f32 accumulation, never TF32; cblas in the SIMT emulator),
// timed by CUDA events (model/tensor/cuda/stream.h). tools/gpu_check.sh reports the training
// benchmark's TFLOP/s against it as well as against the datasheet peak.
//
//   MLAMOE_CUDA_BACKEND=gpu build/bench/bench_gemm_cuda [--size N] [--reps R]
//
// Prints one JSON line per operand type: {"dtype", "n", "ms", "tflops", "backend", "device"}.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "model/ops/ops.h"
#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/error.h"

using namespace mlamoe;

namespace {

// The fastest of `reps` products C = A·B of n×n operands of `dtype`, in milliseconds.
double best_ms(DType dtype, int64_t n, int reps) {
  Rng rng(1);
  Tensor a = Tensor::randn({n, n}, rng).to(dtype).to(Device::cuda(0));
  Tensor b = Tensor::randn({n, n}, rng).to(dtype).to(Device::cuda(0));
  Tensor warm = matmul(a, b);  // cuBLAS picks its kernel and the allocator caches the output
  cuda::synchronize();
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    cuda::Event start(0), end(0);
    start.record();
    Tensor c = matmul(a, b);
    end.record();
    end.synchronize();
    best = std::min(best, start.elapsed_ms(end));
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    bool gpu = cuda::backend() == cuda::Backend::Gpu;
    int64_t n = gpu ? 8192 : 512;
    int reps = gpu ? 10 : 3;
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      MLAMOE_CHECK(i + 1 < argc && (a == "--size" || a == "--reps"), "usage: bench_gemm_cuda [--size N] [--reps R]");
      if (a == "--size")
        n = std::atoll(argv[++i]);
      else
        reps = std::atoi(argv[++i]);
    }
    MLAMOE_CHECK(cuda_device_count() > 0, "no CUDA backend (MLAMOE_CUDA_BACKEND=gpu or simt)");
    MLAMOE_CHECK(n > 0 && reps > 0, "--size and --reps must be positive");
    for (DType dt : {DType::BF16, DType::F32}) {
      double ms = best_ms(dt, n, reps);
      double tflops = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / (ms * 1e-3) / 1e12;
      std::printf("{\"dtype\": \"%s\", \"n\": %lld, \"ms\": %.4f, \"tflops\": %.4f, \"backend\": \"%s\", \"device\": \"%s\"}\n",
                  dtype_name(dt), static_cast<long long>(n), ms, tflops, cuda::backend_name(cuda::backend()),
                  cuda::device_name(0).c_str());
    }
    return 0;
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_gemm_cuda: %s\n", e.what());
    return 1;
  }
}
