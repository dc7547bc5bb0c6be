// Row normalisation (CPU twin in model/ops/normalize.cpp), rows of n elements, one warp per row:
//   forward:  z = Σ_j x_j,  y = x · (1/z);  sums[r] = z, and *zero_row = 1 when some z is 0
//   backward: dx_j = (dy_j − Σ_i dy_i·y_i) · (1/z)
// The row sums are warp_sum's fixed-order butterfly. *zero_row is only ever set to 1 (an integer
// atomicMax), so its value does not depend on which rows' threads get there first.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void normalize_rows_forward_kernel(const float* x, float* y, float* sums, int* zero_row, int64_t rows, int64_t n) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* xr = x + r * n;
    float z = 0.0f;
    for (int64_t j = lane; j < n; j += 32) z += xr[j];
    z = warp_sum(z);
    if (lane == 0) {
      sums[r] = z;
      if (z == 0.0f) atomicMax(zero_row, 1);
    }
    float inv = 1.0f / z;
    float* yr = y + r * n;
    for (int64_t j = lane; j < n; j += 32) yr[j] = xr[j] * inv;
  }
}

__global__ void normalize_rows_backward_kernel(const float* y, const float* sums, const float* dy, float* dx, int64_t rows,
                                               int64_t n) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float dot = 0.0f;
    for (int64_t j = lane; j < n; j += 32) dot += gr[j] * yr[j];
    dot = warp_sum(dot);
    float inv = 1.0f / sums[r];
    float* dr = dx + r * n;
    for (int64_t j = lane; j < n; j += 32) dr[j] = (gr[j] - dot) * inv;
  }
}

}  // namespace

void normalize_rows_forward_cuda(const float* x, float* y, float* sums, int* zero_row, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(normalize_rows_forward_kernel, grid_for_rows(rows), kThreads, 0, x, y, sums, zero_row, rows, n);
}

void normalize_rows_backward_cuda(const float* y, const float* sums, const float* dy, float* dx, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(normalize_rows_backward_kernel, grid_for_rows(rows), kThreads, 0, y, sums, dy, dx, rows, n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
