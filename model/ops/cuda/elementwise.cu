// Elementwise arithmetic with broadcasting (add, sub, mul), scale and the in-place add that
// accumulates gradients. f32.
#include "model/ops/cuda/kernel_common.cuh"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

template <int kOp>
__global__ void binary_kernel(float* out, const float* a, const float* b, cuda::StridedLayout l) {
  for (int64_t i = global_thread(); i < l.numel; i += grid_threads()) {
    int64_t off[3];
    walk_offsets(l, i, off);
    float x = a[off[1]], y = b[off[2]];
    out[off[0]] = kOp == 0 ? x + y : kOp == 1 ? x - y : x * y;
  }
}

__global__ void scale_kernel(float* out, const float* x, int64_t n, float s) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) out[i] = x[i] * s;
}

__global__ void add_inplace_kernel(float* dst, const float* src, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) dst[i] += src[i];
}

}  // namespace

void binary_cuda(cuda::BinaryOp op, float* out, const float* a, const float* b, const cuda::StridedLayout& l) {
  if (l.numel == 0) return;
  switch (op) {
    case cuda::BinaryOp::Add:
      MLAMOE_LAUNCH(binary_kernel<0>, grid_for(l.numel), kThreads, 0, out, a, b, l);
      return;
    case cuda::BinaryOp::Sub:
      MLAMOE_LAUNCH(binary_kernel<1>, grid_for(l.numel), kThreads, 0, out, a, b, l);
      return;
    case cuda::BinaryOp::Mul:
      MLAMOE_LAUNCH(binary_kernel<2>, grid_for(l.numel), kThreads, 0, out, a, b, l);
      return;
  }
}

void scale_cuda(float* out, const float* x, int64_t n, float s) {
  if (n > 0) MLAMOE_LAUNCH(scale_kernel, grid_for(n), kThreads, 0, out, x, n, s);
}

void add_inplace_cuda(float* dst, const float* src, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(add_inplace_kernel, grid_for(n), kThreads, 0, dst, src, n);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
