// RMSNorm (MODEL_SPEC §1): y = w ⊙ x·rstd with rstd = 1/sqrt(mean(x²) + eps), one warp per row.
// Backward, with x̂ = x·rstd and g = dy ⊙ w: dx = rstd·(g − x̂·mean(g ⊙ x̂)), dw = Σ_rows dy ⊙ x̂
// (summed per chunk of kRowChunk rows, then the chunks in order: no atomics, a fixed order).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void rmsnorm_forward_kernel(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t d,
                                       float eps) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* xr = x + r * d;
    float ss = 0.0f;
    for (int64_t j = lane; j < d; j += 32) ss += xr[j] * xr[j];
    ss = warp_sum(ss);
    float rs = 1.0f / sqrtf(ss / static_cast<float>(d) + eps);
    if (lane == 0) rstd[r] = rs;
    float* yr = y + r * d;
    for (int64_t j = lane; j < d; j += 32) yr[j] = w[j] * (xr[j] * rs);
  }
}

__global__ void rmsnorm_dx_kernel(const float* dy, const float* x, const float* w, const float* rstd, float* dx, int64_t rows,
                                  int64_t d) {
  const unsigned lane = lane_id();
  for (int64_t r = warp_row(); r < rows; r += warp_rows_stride()) {
    const float* xr = x + r * d;
    const float* gr = dy + r * d;
    float rs = rstd[r], dot = 0.0f;
    for (int64_t j = lane; j < d; j += 32) dot += gr[j] * w[j] * xr[j] * rs;
    float m = warp_sum(dot) / static_cast<float>(d);
    float* dr = dx + r * d;
    for (int64_t j = lane; j < d; j += 32) dr[j] = rs * (gr[j] * w[j] - xr[j] * rs * m);
  }
}

constexpr int64_t kRowChunk = cuda::kRmsnormRowChunk;

// partial[c, j] = Σ over the rows of chunk c of dy[r, j]·x[r, j]·rstd[r]
__global__ void rmsnorm_dw_partial_kernel(const float* dy, const float* x, const float* rstd, float* partial, int64_t rows,
                                          int64_t d, int64_t chunks) {
  for (int64_t t = global_thread(); t < chunks * d; t += grid_threads()) {
    int64_t c = t / d, j = t % d;
    float s = 0.0f;
    for (int64_t r = c * kRowChunk; r < rows && r < (c + 1) * kRowChunk; ++r) s += dy[r * d + j] * (x[r * d + j] * rstd[r]);
    partial[t] = s;
  }
}

__global__ void sum_chunks_kernel(const float* partial, float* dw, int64_t d, int64_t chunks) {
  for (int64_t j = global_thread(); j < d; j += grid_threads()) {
    float s = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) s += partial[c * d + j];
    dw[j] = s;
  }
}

}  // namespace

void rmsnorm_forward_cuda(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t d, double eps) {
  if (rows == 0) return;
  MLAMOE_LAUNCH(rmsnorm_forward_kernel, grid_for_rows(rows), kThreads, 0, x, w, y, rstd, rows, d, static_cast<float>(eps));
}

void rmsnorm_backward_cuda(const float* dy, const float* x, const float* w, const float* rstd, float* dx, float* dw,
                           float* scratch, int64_t rows, int64_t d) {
  if (dx && rows > 0) MLAMOE_LAUNCH(rmsnorm_dx_kernel, grid_for_rows(rows), kThreads, 0, dy, x, w, rstd, dx, rows, d);
  if (dw) {
    int64_t chunks = (rows + kRowChunk - 1) / kRowChunk;
    if (chunks > 0)
      MLAMOE_LAUNCH(rmsnorm_dw_partial_kernel, grid_for(chunks * d), kThreads, 0, dy, x, rstd, scratch, rows, d, chunks);
    MLAMOE_LAUNCH(sum_chunks_kernel, grid_for(d), kThreads, 0, scratch, dw, d, chunks);
  }
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
