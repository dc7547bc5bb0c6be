// Rotary position embedding with interleaved pairs (model/README.md §2.3; CPU twin rope_rotate_cpu in
// model/ops/rope.cpp): x [B, T, H, d] (d = 2·half), cos/sin [T, half]. For the pair i of a row at
// position t, with s = sign·sin[t, i]:
//   y[2i]   = x[2i]·cos[t, i] − x[2i+1]·s
//   y[2i+1] = x[2i]·s         + x[2i+1]·cos[t, i]
// sign = +1 rotates forward (the forward pass), −1 back (the backward: the rotation's transpose).
// One thread per pair: no sums, so every thread order gives the same bits.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void rope_rotate_kernel(const float* x, const float* cos, const float* sin, float* y, int64_t t, int64_t h,
                                   int64_t half, int64_t pairs, float sign) {
  for (int64_t p = global_thread(); p < pairs; p += grid_threads()) {
    int64_t i = p % half;             // the pair within its row
    int64_t ti = (p / half / h) % t;  // the row's position: rows are (b, t, h) in row-major order
    float c = cos[ti * half + i], s = sign * sin[ti * half + i];
    float x0 = x[2 * p], x1 = x[2 * p + 1];
    y[2 * p] = x0 * c - x1 * s;
    y[2 * p + 1] = x0 * s + x1 * c;
  }
}

}  // namespace

void rope_rotate_cuda(const float* x, const float* cos, const float* sin, float* y, int64_t b, int64_t t, int64_t h, int64_t d,
                      float sign) {
  int64_t half = d / 2, pairs = b * t * h * half;
  if (pairs > 0) MLAMOE_LAUNCH(rope_rotate_kernel, grid_for(pairs), kThreads, 0, x, cos, sin, y, t, h, half, pairs, sign);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
