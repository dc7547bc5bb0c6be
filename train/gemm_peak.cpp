#include "train/gemm_peak.h"

#include <algorithm>
#include <chrono>

#include "model/ops/ops.h"

extern "C" char* openblas_get_corename(void);

namespace mlamoe {

std::string blas_kernel_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

double measure_gemm_gflops(DType operands) {
  NoGrad ng;
  const int64_t n = 1024;
  Rng rng(1);
  Tensor a = Tensor::randn({n, n}, rng).to(operands), b = Tensor::randn({n, n}, rng).to(operands);
  // The best of many repeats over a quarter of a second: the peak is what the machine can do, and a
  // shared machine's noise only ever slows a repeat down, but a slow stretch can last a while.
  // (The first repeat also pays for OpenBLAS's buffers and page faults.)
  double best = 1e30;
  auto start = std::chrono::steady_clock::now();
  for (int rep = 0; rep < 64; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    Tensor c = matmul(a, b);
    auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    if (rep >= 8 && std::chrono::duration<double>(t1 - start).count() > 0.25) break;
  }
  return 2.0 * n * n * n / best / 1e9;
}

}  // namespace mlamoe
