// Elementwise arithmetic with broadcasting (add, sub, mul), scale, the in-place add that
// accumulates gradients, and bf16 autocast's rounding of a product's f32 result. f32.
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

// p[i] = the bf16 nearest p[i] (ties to even), kept as f32: autocast.h's round_to_bf16_values.
__global__ void round_to_bf16_kernel(float* p, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) p[i] = bf16_to_f32(f32_to_bf16(p[i]));
}

// dst[i] = src[i]'s upper 16 bits, exact when src[i] is a bf16 value (low 16 bits zero);
// *inexact = 1 when some src[i] is not (dst is then not used). Every writer writes the same 1, so
// no order matters. autocast.cpp's narrow_exact on the device.
__global__ void narrow_to_bf16_kernel(const float* src, bf16_t* dst, int64_t n, int* inexact) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) {
    uint32_t u = f32_bits(src[i]);
    if (u & 0xffffu) *inexact = 1;
    dst[i] = bf16_from_bits(static_cast<uint16_t>(u >> 16));
  }
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

void round_to_bf16_cuda(float* p, int64_t n) {
  if (n > 0) MLAMOE_LAUNCH(round_to_bf16_kernel, grid_for(n), kThreads, 0, p, n);
}

void narrow_to_bf16_cuda(const float* src, bf16* dst, int64_t n, int* inexact) {
  if (n > 0) MLAMOE_LAUNCH(narrow_to_bf16_kernel, grid_for(n), kThreads, 0, src, device_bf16(dst), n, inexact);
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
