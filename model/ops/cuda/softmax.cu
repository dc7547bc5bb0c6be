// Softmax over the last dimension, one block per row: max, Σ exp(x − max), then y = exp(x − max)/Σ.
// Backward: dx = y ⊙ (dy − Σ dy ⊙ y).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void softmax_forward_kernel(const float* x, float* y, int64_t rows, int64_t n) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* xr = x + r * n;
    float m = -INFINITY;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = fmaxf(m, xr[j]);
    m = block_max(m, scratch);
    float s = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += expf(xr[j] - m);
    s = block_sum(s, scratch);
    float inv = 1.0f / s;
    float* yr = y + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = expf(xr[j] - m) * inv;
  }
}

__global__ void softmax_backward_kernel(const float* y, const float* dy, float* dx, int64_t rows, int64_t n) {
  __shared__ float scratch[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float* yr = y + r * n;
    const float* gr = dy + r * n;
    float dot = 0.0f;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dot += yr[j] * gr[j];
    dot = block_sum(dot, scratch);
    float* dr = dx + r * n;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) dr[j] = yr[j] * (gr[j] - dot);
  }
}

}  // namespace

void softmax_forward_cuda(const float* x, float* y, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(softmax_forward_kernel, grid_for(rows, 1), kThreads, 0, x, y, rows, n);
}

void softmax_backward_cuda(const float* y, const float* dy, float* dx, int64_t rows, int64_t n) {
  if (rows > 0) MLAMOE_LAUNCH(softmax_backward_kernel, grid_for(rows, 1), kThreads, 0, y, dy, dx, rows, n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
