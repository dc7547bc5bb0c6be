// The AdamW update of one parameter tensor (train/optimizer.cpp has the formula and its source,
// torch.optim.AdamW), elementwise on the device, with the same f32 arithmetic in the same order
// as the CPU loop (no FMA contraction on either side: --fmad=false, -ffp-contract=off; IEEE sqrt
// and division), so both give the same bits per element.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void adamw_update_kernel(float* p, const float* g, float* m, float* v, int64_t n, cuda::AdamWScalars s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float gi = g ? g[i] : 0.0f;
    float mi = s.beta1 * m[i] + s.one_minus_beta1 * gi;
    float vi = s.beta2 * v[i] + s.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * s.decay_mul - s.step * mi / (sqrtf(vi) * s.rsqrt_bc2 + s.eps);
  }
}

}  // namespace

void adamw_update_cuda(float* p, const float* g, float* m, float* v, int64_t n, const cuda::AdamWScalars& s) {
  if (n > 0) MLAMOE_LAUNCH(adamw_update_kernel, grid_for(n), kThreads, 0, p, g, m, v, n, s);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
