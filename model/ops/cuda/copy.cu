// Strided and converting copies on the device (Tensor::copy_, contiguous(), to(dtype)) and fills.
#include "model/ops/cuda/kernel_common.cuh"
#include "model/tensor/error.h"

namespace mlamoe::MLAMOE_KERNEL_NS {

namespace {

template <class D, class S>
__device__ inline D convert(S v) {
  return static_cast<D>(v);
}
template <>
__device__ inline bf16_t convert<bf16_t, float>(float v) {
  return f32_to_bf16(v);
}
template <>
__device__ inline float convert<float, bf16_t>(bf16_t v) {
  return bf16_to_f32(v);
}

template <class D, class S>
__global__ void copy_kernel(D* dst, const S* src, cuda::StridedLayout l) {
  for (int64_t i = global_thread(); i < l.numel; i += grid_threads()) {
    int64_t off[2];
    walk_offsets(l, i, off);
    dst[off[0]] = convert<D, S>(src[off[1]]);
  }
}

template <class D, class S>
void launch_copy(void* dst, const void* src, const cuda::StridedLayout& l) {
  auto kernel = copy_kernel<D, S>;
  MLAMOE_LAUNCH(kernel, grid_for(l.numel), kThreads, 0, static_cast<D*>(dst), static_cast<const S*>(src), l);
}

template <class U>
__global__ void fill_kernel(U* dst, U value, int64_t n) {
  for (int64_t i = global_thread(); i < n; i += grid_threads()) dst[i] = value;
}

}  // namespace

void copy_cuda(void* dst, DType dst_dtype, const void* src, DType src_dtype, const cuda::StridedLayout& l) {
  if (l.numel == 0) return;
  if (dst_dtype == src_dtype) {  // a move of bits: by element size
    switch (dtype_size(dst_dtype)) {
      case 1:
        return launch_copy<uint8_t, uint8_t>(dst, src, l);
      case 2:
        return launch_copy<uint16_t, uint16_t>(dst, src, l);
      case 4:
        return launch_copy<uint32_t, uint32_t>(dst, src, l);
      default:
        return launch_copy<uint64_t, uint64_t>(dst, src, l);
    }
  }
  auto is = [&](DType d, DType s) { return dst_dtype == d && src_dtype == s; };
  if (is(DType::BF16, DType::F32)) return launch_copy<bf16_t, float>(dst, src, l);
  if (is(DType::F32, DType::BF16)) return launch_copy<float, bf16_t>(dst, src, l);
  if (is(DType::F64, DType::F32)) return launch_copy<double, float>(dst, src, l);
  if (is(DType::F32, DType::F64)) return launch_copy<float, double>(dst, src, l);
  if (is(DType::I64, DType::I32)) return launch_copy<int64_t, int32_t>(dst, src, l);
  if (is(DType::I32, DType::I64)) return launch_copy<int32_t, int64_t>(dst, src, l);
  throw Error(std::string("copy: no CUDA conversion from ") + dtype_name(src_dtype) + " to " + dtype_name(dst_dtype));
}

void fill_cuda(void* dst, DType dtype, int64_t n, double value) {
  if (n == 0) return;
  // The element's bits, made on the host (bf16 rounds to nearest even as everywhere else).
  auto fill = [&](auto bits) {
    using U = decltype(bits);
    auto kernel = fill_kernel<U>;
    MLAMOE_LAUNCH(kernel, grid_for(n), kThreads, 0, static_cast<U*>(dst), bits, n);
  };
  switch (dtype) {
    case DType::F32: {
      float v = static_cast<float>(value);
      uint32_t u;
      std::memcpy(&u, &v, 4);
      return fill(u);
    }
    case DType::F64: {
      uint64_t u;
      std::memcpy(&u, &value, 8);
      return fill(u);
    }
    case DType::BF16:
      return fill(float_to_bf16(static_cast<float>(value)).bits);
    case DType::I32:
      return fill(static_cast<uint32_t>(static_cast<int32_t>(value)));
    case DType::I64:
      return fill(static_cast<uint64_t>(static_cast<int64_t>(value)));
    case DType::U8:
      return fill(static_cast<uint8_t>(value));
  }
}

}  // namespace mlamoe::MLAMOE_KERNEL_NS
