#include "model/tensor/cuda/device_copy.h"

#include "model/ops/cuda/kernels.h"
#include "model/ops/cuda/strided_layout.h"

namespace mlamoe {

void copy_on_device(Tensor& dst, const Tensor& src) {
  cuda::StridedLayout l = cuda::strided_layout(dst.shape(), {dst.strides(), src.strides()});
  MLAMOE_CUDA_CALL(copy_cuda, dst.device_raw_data(), dst.dtype(), src.device_raw_data(), src.dtype(), l);
}

void fill_on_device(Tensor& dst, double value) {
  if (value == 0.0 && dst.is_contiguous()) {  // all-zero bits in every dtype
    cuda::memset_zero(dst.device_raw_data(), dst.numel() * dtype_size(dst.dtype()), dst.device().index);
    return;
  }
  if (dst.is_contiguous()) {
    MLAMOE_CUDA_CALL(fill_cuda, dst.device_raw_data(), dst.dtype(), dst.numel(), value);
    return;
  }
  Tensor flat = Tensor::empty(dst.shape(), dst.dtype(), dst.device());
  fill_on_device(flat, value);
  copy_on_device(dst, flat);
}

}  // namespace mlamoe
