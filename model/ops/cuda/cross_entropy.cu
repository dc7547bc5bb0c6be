// Cross-entropy over logits (CPU twins in model/ops/cross_entropy.cpp): x [N, V], targets [N] (i64),
// rows whose target is `ignore` not counted.
//   forward:  lse_r = m_r + log Σ_j exp(x_rj − m_r) (m_r the row's max), one warp per row;
//             loss  = Σ_{counted r} (lse_r − x_r,t_r) / count, the row losses summed in row order
//             (double, fixed-order partials then a fixed tree), written to a device scalar.
//   backward: dx_rj = g·exp(x_rj − lse_r) − g·[j = t_r] with g = dloss/count (0 for ignored rows),
//             one thread per element. g is read from the device scalar dloss, so no host sync.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void cross_entropy_rows_kernel(const float* x, const int64_t* tgt, float* lse, float* row_loss, int64_t rows,
                                          int64_t v, int64_t ignore) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* xr = x + r * v;
    float m = -INFINITY;
    for (int64_t j = lane; j < v; j += 32) m = fmaxf(m, xr[j]);
    m = warp_max(m);
    float z = 0.0f;
    for (int64_t j = lane; j < v; j += 32) z += expf(xr[j] - m);
    z = warp_sum(z);
    if (lane == 0) {
      float l = m + logf(z);
      lse[r] = l;
      row_loss[r] = tgt[r] != ignore ? l - xr[tgt[r]] : 0.0f;
    }
  }
}

// One block: thread i sums rows i, i + blockDim, ... in order (double), then a fixed tree.
__global__ void cross_entropy_total_kernel(const float* row_loss, float* loss, int64_t rows, int64_t count) {
  __shared__ double partial[kThreads];
  double s = 0.0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) s += row_loss[r];
  partial[threadIdx.x] = s;
  __syncthreads();
  for (unsigned half = blockDim.x / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) partial[threadIdx.x] += partial[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) loss[0] = static_cast<float>(count > 0 ? partial[0] / static_cast<double>(count) : 0.0);
}

__global__ void cross_entropy_backward_kernel(const float* x, const int64_t* tgt, const float* lse, const float* dloss, float* dx,
                                              int64_t rows, int64_t v, int64_t ignore, int64_t count) {
  // g in double, then rounded, as the CPU computes it from dloss.item()
  const float g = count > 0 ? static_cast<float>(static_cast<double>(dloss[0]) / static_cast<double>(count)) : 0.0f;
  for (int64_t t = global_thread(); t < rows * v; t += grid_threads()) {
    int64_t r = t / v, j = t % v, tr = tgt[r];
    if (tr == ignore) {
      dx[t] = 0.0f;
      continue;
    }
    float d = g * expf(x[t] - lse[r]);
    dx[t] = j == tr ? d - g : d;
  }
}

}  // namespace

void cross_entropy_forward_cuda(const float* x, const int64_t* tgt, float* lse, float* row_loss, float* loss, int64_t rows,
                                int64_t v, int64_t ignore, int64_t count) {
  if (rows > 0)
    MLAMOE_LAUNCH(cross_entropy_rows_kernel, grid_for_rows(rows), kThreads, 0, x, tgt, lse, row_loss, rows, v, ignore);
  MLAMOE_LAUNCH(cross_entropy_total_kernel, 1, kThreads, 0, row_loss, loss, rows, count);
}

void cross_entropy_backward_cuda(const float* x, const int64_t* tgt, const float* lse, const float* dloss, float* dx,
                                 int64_t rows, int64_t v, int64_t ignore, int64_t count) {
  if (rows * v > 0)
    MLAMOE_LAUNCH(cross_entropy_backward_kernel, grid_for(rows * v), kThreads, 0, x, tgt, lse, dloss, dx, rows, v, ignore, count);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
