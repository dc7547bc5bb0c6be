// CUDA memory for Storage: plain cudaMalloc/cudaFree for now (a caching allocator replaces this with
// the CUDA backend), and copies in every direction.
#include <cuda_runtime.h>

#include "model/tensor/error.h"
#include "model/tensor/storage.h"

namespace mlamoe {

namespace {
void check_cuda(cudaError_t e, const char* what) { MLAMOE_CHECK(e == cudaSuccess, what << ": " << cudaGetErrorString(e)); }
}  // namespace

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

namespace detail {

void* cuda_alloc(size_t nbytes, int device) {
  MLAMOE_CHECK(device < cuda_device_count(), "CUDA device " << device << " requested, " << cuda_device_count() << " present");
  check_cuda(cudaSetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  check_cuda(cudaMalloc(&p, nbytes == 0 ? 1 : nbytes), "cudaMalloc");
  return p;
}

void cuda_free(void* p, int device) {
  cudaSetDevice(device);
  cudaFree(p);
}

void cuda_copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  cudaMemcpyKind kind = dst_device.is_cpu()   ? cudaMemcpyDeviceToHost
                        : src_device.is_cpu() ? cudaMemcpyHostToDevice
                                              : cudaMemcpyDeviceToDevice;
  check_cuda(cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy");
}

}  // namespace detail
}  // namespace mlamoe
