// SiLU, sigmoid and SwiGLU (y = silu(g)·u, MODEL_SPEC §3) and their gradients, elementwise.
// The sigmoid is the overflow-free form the CPU uses: e = exp(−|x|), 1/(1+e) or e/(1+e).
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

__device__ inline float sigmoid(float x) {
  float e = expf(-fabsf(x));
  float r = 1.0f / (1.0f + e);
  return x >= 0.0f ? r : e * r;
}

__global__ void act_forward_kernel(int act, const float* x, float* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float s = sigmoid(x[i]);
    y[i] = act == 0 ? x[i] * s : s;
  }
}

// silu'(x) = s·(1 + x·(1 − s)); sigmoid'(x) = s·(1 − s)
__global__ void act_backward_kernel(int act, const float* x, const float* dy, float* dx, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float s = sigmoid(x[i]);
    dx[i] = dy[i] * (act == 0 ? s * (1.0f + x[i] * (1.0f - s)) : s * (1.0f - s));
  }
}

__global__ void swiglu_forward_kernel(const float* g, const float* u, float* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = g[i] * sigmoid(g[i]) * u[i];
}

__global__ void swiglu_backward_kernel(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float gi = g[i], ui = u[i], s = sigmoid(gi);
    if (dg) dg[i] = dy[i] * ui * s * (1.0f + gi * (1.0f - s));
    if (du) du[i] = dy[i] * gi * s;
  }
}

// bf16 autocast's SwiGLU between two expert products (experts.cpp's swiglu_rows and backward with
// T = bf16): computed in f32 from the f32 g and u, stored as the bf16 operand of the next GEMM.
__global__ void swiglu_bf16_forward_kernel(const float* g, const float* u, bf16_t* y, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) y[i] = f32_to_bf16(g[i] * sigmoid(g[i]) * u[i]);
}

// dy is the f32 gradient of a bf16 operand, so it is rounded to bf16 first (as a bf16 product's
// incoming gradient is); dg and du are rounded as they are stored for their GEMMs.
__global__ void swiglu_bf16_backward_kernel(const float* g, const float* u, const float* dy, bf16_t* dg, bf16_t* du, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    float d = bf16_to_f32(f32_to_bf16(dy[i]));
    float gi = g[i], ui = u[i], s = sigmoid(gi);
    dg[i] = f32_to_bf16(d * ui * s * (1.0f + gi * (1.0f - s)));
    du[i] = f32_to_bf16(d * gi * s);
  }
}

}  // namespace

void act_forward_cuda(int act, const float* x, float* y, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(act_forward_kernel, grid_for(n), kThreads, 0, act, x, y, n);
}

void act_backward_cuda(int act, const float* x, const float* dy, float* dx, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(act_backward_kernel, grid_for(n), kThreads, 0, act, x, dy, dx, n);
}

void swiglu_forward_cuda(const float* g, const float* u, float* y, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(swiglu_forward_kernel, grid_for(n), kThreads, 0, g, u, y, n);
}

void swiglu_backward_cuda(const float* g, const float* u, const float* dy, float* dg, float* du, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(swiglu_backward_kernel, grid_for(n), kThreads, 0, g, u, dy, dg, du, n);
}

void swiglu_forward_cuda(const float* g, const float* u, bf16* y, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(swiglu_bf16_forward_kernel, grid_for(n), kThreads, 0, g, u, device_bf16(y), n);
}

void swiglu_backward_cuda(const float* g, const float* u, const float* dy, bf16* dg, bf16* du, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(swiglu_bf16_backward_kernel, grid_for(n), kThreads, 0, g, u, dy, device_bf16(dg), device_bf16(du), n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
