// Softmax over the last dimension, one warp per row: max, Σ exp(x − max), then y = exp(x − max)/Σ.
// Backward: dx = y ⊙ (dy − Σ dy ⊙ y).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void softmax_forward_kernel(const float* x, float* y, int64_t rows, int64_t n) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* xr = x + r * n;
    float m = -INFINITY;
    for (int64_t j = lane; j < n; j += 32) m = fmaxf(m, xr[j]);
    m = warp_max(m);
    float s = 0.0f;
    for (int64_t j = lane; j < n; j += 32) s += expf(xr[j] - m);
    s = warp_sum(s);
    float inv = 1.0f / s;
    float* yr = y + r * n;
    for (int64_t j = lane; j < n; j += 32) yr[j] = expf(xr[j] - m) * inv;
  }
}

__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows, int64_t n) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float dot = 0.0f;
    for (int64_t j = lane; j < n; j += 32) dot += yr[j] * gr[j];
    dot = warp_sum(dot);
    float* dr = dx + r * n;
    for (int64_t j = lane; j < n; j += 32) dr[j] = yr[j] * (gr[j] - dot);
  }
}

}  // namespace

void softmax_forward_cuda(const float* x, float* y, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(softmax_forward_kernel, grid_for_rows(rows), kThreads, 0, x, y, rows, n);
}

void softmax_backward_cuda(const float* y, const float* dy, float* dx, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(softmax_backward_kernel, grid_for_rows(rows), kThreads, 0, y, dy, dx, rows, n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
