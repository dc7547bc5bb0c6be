// Top-k indices along the last dimension (CPU twin topk_indices_cpu in model/ops/topk.cpp):
// x [rows, n] -> idx [rows, k] (i64), each row in descending order of value, equal values by lower
// index first, −inf last. One warp per row picks the k elements one after another
// (row_select.cuh). *saw_nan is set to 1 (an integer atomicMax: the same value whichever row gets
// there first) when a row holds a NaN; the op reports it as an error.
#include "model/ops/cuda/kernel_common.cuh"
#include "model/ops/cuda/row_select.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void topk_indices_kernel(const float* x, int64_t* idx, int* saw_nan, int64_t rows, int64_t n, int64_t k) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (xr[j] != xr[j]) atomicMax(saw_nan, 1);  // NaN
    float prev_v = 0.0f;
    int64_t prev_i = -1;
    for (int64_t q = 0; q < k; ++q) {
      prev_i = warp_pick_next(xr, n, prev_v, prev_i);
      if (prev_i < 0) break;  // only with NaN in the row (an error): fewer than k comparable elements
      prev_v = xr[prev_i];
      if (threadIdx.x == 0) idx[r * k + q] = prev_i;
    }
  }
}

}  // namespace

void topk_indices_cuda(const float* x, int64_t* idx, int* saw_nan, int64_t rows, int64_t n, int64_t k) {
  if (rows > 0) MLAMOE_LAUNCH(topk_indices_kernel, grid_for(rows, 1), kSelectThreads, 0, x, idx, saw_nan, rows, n, k);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
