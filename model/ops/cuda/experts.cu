// The routed experts' two fused ops on the device (CPU twins in model/ops/experts.cpp): f32, and
// expert_swiglu with bf16 operands under autocast. Letters: the MoE legend in model/modules/moe.h.
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
#include <type_traits>

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

// One product of the experts' loop, row-major C = op(A)·op(B) with f32 result: f32 operands, or
// bf16 operands with f32 accumulation (autocast).
void product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda, const float* b, int64_t ldb,
             float* c, int64_t ldc) {
  gemm_cuda(ta, tb, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
}
void product(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const bf16* a, int64_t lda, const bf16* b, int64_t ldb, float* c,
             int64_t ldc) {
  gemm_bf16_cuda(ta, tb, m, n, k, a, lda, 0, b, ldb, 0, c, ldc, 0, 1);
}

// T: the operands' type (x, weights, a = silu(g)·u, dy, dg, du); h, y, da and the gradients are f32.
template <class T>
void forward(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const T* x, const T* const* gate,
             const T* const* up, const T* const* down, float* h, T* a, float* y) {
  const int64_t rows = offsets[e_count], w = width;
  float* hg = h;             // [R, I] gate pre-activations
  float* hu = h + rows * w;  // [R, I] up pre-activations
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    product(false, true, c, w, d, x + r0 * d, d, gate[e], d, hg + r0 * w, w);
    product(false, true, c, w, d, x + r0 * d, d, up[e], d, hu + r0 * w, w);
  }
  if constexpr (std::is_same_v<T, bf16>) round_to_bf16_cuda(h, 2 * rows * w);  // gate and up results are bf16 values
  swiglu_forward_cuda(hg, hu, a, rows * w);
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    product(false, true, c, d, w, a + r0 * w, w, down[e], w, y + r0 * d, d);
  }
}

// Scratch: a, dg, du [R, I] of T; da [R, I] and dx_up [R, D] (du_e up_e, added to dx: a GEMM
// overwrites its output) of f32.
template <class T>
void backward(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const T* x, const T* const* gate,
              const T* const* up, const T* const* down, const float* h, const T* dy, float* dx, float* const* dgate,
              float* const* dup, float* const* ddown, T* a, T* dg, T* du, float* da, float* dx_up) {
  const int64_t rows = offsets[e_count], w = width;
  const float* hg = h;
  const float* hu = h + rows * w;
  swiglu_forward_cuda(hg, hu, a, rows * w);  // recomputed rather than kept from the forward
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    product(false, false, c, w, d, dy + r0 * d, d, down[e], w, da + r0 * w, w);
    if (ddown[e]) product(true, false, d, w, c, dy + r0 * d, d, a + r0 * w, w, ddown[e], w);
  }
  swiglu_backward_cuda(hg, hu, da, dg, du, rows * w);  // bf16: da rounded first, dg and du stored as bf16
  for (int64_t e = 0; e < e_count; ++e) {
    int64_t r0 = offsets[e], c = offsets[e + 1] - r0;
    if (dx) {
      product(false, false, c, d, w, dg + r0 * w, w, gate[e], d, dx + r0 * d, d);
      product(false, false, c, d, w, du + r0 * w, w, up[e], d, dx_up + r0 * d, d);
    }
    if (dgate[e]) product(true, false, w, d, c, dg + r0 * w, w, x + r0 * d, d, dgate[e], d);
    if (dup[e]) product(true, false, w, d, c, du + r0 * w, w, x + r0 * d, d, dup[e], d);
  }
  if (dx) add_inplace_cuda(dx, dx_up, rows * d);
}

}  // namespace

void expert_swiglu_forward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const float* x,
                                const float* const* gate, const float* const* up, const float* const* down, float* h, float* a,
                                float* y) {
  forward(offsets, e_count, d, width, x, gate, up, down, h, a, y);
}

void expert_swiglu_forward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const bf16* x,
                                const bf16* const* gate, const bf16* const* up, const bf16* const* down, float* h, bf16* a,
                                float* y) {
  forward(offsets, e_count, d, width, x, gate, up, down, h, a, y);
}

void expert_swiglu_backward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const float* x,
                                 const float* const* gate, const float* const* up, const float* const* down, const float* h,
                                 const float* dy, float* dx, float* const* dgate, float* const* dup, float* const* ddown,
                                 float* scratch) {
  const int64_t ri = offsets[e_count] * width;
  backward(offsets, e_count, d, width, x, gate, up, down, h, dy, dx, dgate, dup, ddown, scratch, scratch + ri, scratch + 2 * ri,
           scratch + 3 * ri, scratch + 4 * ri);
}

void expert_swiglu_backward_cuda(const int64_t* offsets, int64_t e_count, int64_t d, int64_t width, const bf16* x,
                                 const bf16* const* gate, const bf16* const* up, const bf16* const* down, const float* h,
                                 const bf16* dy, float* dx, float* const* dgate, float* const* dup, float* const* ddown,
                                 float* scratch, bf16* scratch16) {
  const int64_t ri = offsets[e_count] * width;
  backward(offsets, e_count, d, width, x, gate, up, down, h, dy, dx, dgate, dup, ddown, scratch16, scratch16 + ri,
           scratch16 + 2 * ri, scratch, scratch + ri);
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
