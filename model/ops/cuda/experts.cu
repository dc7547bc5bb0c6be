// The routed experts' two fused ops on the device (CPU twins in model/ops/experts.cpp), f32 only
// (the bf16 autocast path is the CPU's). Letters: the MoE legend in model/modules/moe.h.
//
// expert_swiglu: expert e owns rows offsets[e] .. offsets[e+1] − 1 of x [R, D];
//   g_e = x_e gate_eᵀ, u_e = x_e up_eᵀ   (h [2, R, I]: every expert's g rows, then every u row)
//   a = silu(g) ⊙ u                     (activation.cu's swiglu kernels, over all R·I at once)
//   y_e = a_e down_eᵀ
// and its backward (a recomputed from h):
//   da_e = dy_e down_e, ddown_e = dy_eᵀ a_e, (dg, du) = swiglu's backward of da,
//   dx_e = dg_e gate_e + du_e up_e, dgate_e = dg_eᵀ x_e, dup_e = du_eᵀ x_e.
// A loop over experts of cuBLAS GEMMs on row slices (gemm.cu): each product has a fixed order.
// Keeping g and u as two [R, I] blocks (not the CPU's [R, 2I] rows) lets the elementwise kernels
// run over contiguous arrays.
//
// moe_combine: y[s] = Σ_q w[s, q]·yp[row_of[s·K + q]] (q in order, one thread per element of y);
//   backward dyp[r] = w[slot[r]]·dy[slot[r] / K] and dw[a] = dy[a / K] · yp[row_of[a]] (one warp
//   per assignment, warp_sum's fixed butterfly).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__global__ void moe_combine_forward_kernel(const float* yp, const float* w, const int64_t* row_of, float* y, int64_t s_tok,
                                           int64_t k, int64_t d) {
  for (int64_t t = global_thread(); t < s_tok * d; t += grid_threads()) {
    int64_t s = t / d, j = t % d;
    float acc = 0.0f;
    for (int64_t q = 0; q < k; ++q) acc += w[s * k + q] * yp[row_of[s * k + q] * d + j];
    y[t] = acc;
  }
}

__global__ void moe_combine_dyp_kernel(const float* w, const int64_t* slot, const float* dy, float* dyp, int64_t k, int64_t d,
                                       int64_t n) {
  for (int64_t t = global_thread(); t < n * d; t += grid_threads()) {
    int64_t r = t / d, j = t % d, a = slot[r];
    dyp[t] = w[a] * dy[(a / k) * d + j];
  }
}

__global__ void moe_combine_dw_kernel(const float* yp, const int64_t* row_of, const float* dy, float* dw, int64_t k, int64_t d,
                                      int64_t n) {
  const unsigned lane = lane_id();
  for (int64_t a = warp_row(); a < n; a += warp_rows_stride()) {
    const float* g = dy + (a / k) * d;
    const float* src = yp + row_of[a] * d;
    float acc = 0.0f;
    for (int64_t j = lane; j < d; j += 32) acc += g[j] * src[j];
    acc = warp_sum(acc);
    if (lane == 0) dw[a] = acc;
  }
}

}  // namespace

void expert_swiglu_forward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const float* x,
                                const float* const* gate, const float* const* up, const float* const* down, float* h, float* a,
                                float* y) {
  const int64_t rows = offsets[e_count], w = width;
  float* hg = h;             // [R, I] gate pre-activations
  float* hu = h + rows * w;  // [R, I] up pre-activations
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    gemm_cuda(false, true, c, w, d, x + r0 * d, d, 0, gate[e], d, 0, hg + r0 * w, w, 0, 1);
    gemm_cuda(false, true, c, w, d, x + r0 * d, d, 0, up[e], d, 0, hu + r0 * w, w, 0, 1);
  }
  swiglu_forward_cuda(hg, hu, a, rows * w);
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    gemm_cuda(false, true, c, d, w, a + r0 * w, w, 0, down[e], w, 0, y + r0 * d, d, 0, 1);
  }
}

void expert_swiglu_backward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const float* x,
                                 const float* const* gate, const float* const* up, const float* const* down, const float* h,
                                 const float* dy, float* dx, float* const* dgate, float* const* dup, float* const* ddown,
                                 float* scratch) {
  const int64_t rows = offsets[e_count], w = width;
  const float* hg = h;
  const float* hu = h + rows * w;
  float* a = scratch;            // [R, I] silu(g) ⊙ u, recomputed
  float* da = a + rows * w;      // [R, I]
  float* dg = da + rows * w;     // [R, I]
  float* du = dg + rows * w;     // [R, I]
  float* dx_up = du + rows * w;  // [R, D] du_e up_e, added to dx (gemm_cuda overwrites its output)
  swiglu_forward_cuda(hg, hu, a, rows * w);
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    gemm_cuda(false, false, c, w, d, dy + r0 * d, d, 0, down[e], w, 0, da + r0 * w, w, 0, 1);
    if (ddown[e]) gemm_cuda(true, false, d, w, c, dy + r0 * d, d, 0, a + r0 * w, w, 0, ddown[e], w, 0, 1);
  }
  swiglu_backward_cuda(hg, hu, da, dg, du, rows * w);
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    if (dx) {
      gemm_cuda(false, false, c, d, w, dg + r0 * w, w, 0, gate[e], d, 0, dx + r0 * d, d, 0, 1);
      gemm_cuda(false, false, c, d, w, du + r0 * w, w, 0, up[e], d, 0, dx_up + r0 * d, d, 0, 1);
    }
    if (dgate[e]) gemm_cuda(true, false, w, d, c, dg + r0 * w, w, 0, x + r0 * d, d, 0, dgate[e], d, 0, 1);
    if (dup[e]) gemm_cuda(true, false, w, d, c, du + r0 * w, w, 0, x + r0 * d, d, 0, dup[e], d, 0, 1);
  }
  if (dx) add_inplace_cuda(dx, dx_up, rows * d);
}

void moe_combine_forward_cuda(const float* yp, const float* w, const int64_t* row_of, float* y, int64_t s_tok, int64_t k,
                              int64_t d) {
  if (s_tok * d > 0) MLAMOE_LAUNCH(moe_combine_forward_kernel, grid_for(s_tok * d), kThreads, 0, yp, w, row_of, y, s_tok, k, d);
}

void moe_combine_backward_cuda(const float* yp, const float* w, const int64_t* slot, const int64_t* row_of, const float* dy,
                               float* dyp, float* dw, int64_t s_tok, int64_t k, int64_t d) {
  int64_t n = s_tok * k;
  if (dyp && n * d > 0) MLAMOE_LAUNCH(moe_combine_dyp_kernel, grid_for(n * d), kThreads, 0, w, slot, dy, dyp, k, d, n);
  if (dw && n > 0) MLAMOE_LAUNCH(moe_combine_dw_kernel, grid_for_rows(n), kThreads, 0, yp, row_of, dy, dw, k, d, n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
