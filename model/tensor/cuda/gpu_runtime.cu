// The CUDA runtime calls behind backend.h's gpu backend: memory, copies, synchronisation.
// Kernels run on the default stream (stream 0), so the caching allocator may hand a freed block to
// the next request at once: every use of it is ordered after the last one.
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/error.h"

namespace mlamoe::cuda_gpu {

namespace {
void check(cudaError_t e, const char* what) { MLAMOE_CHECK(e == cudaSuccess, "CUDA: " << what << ": " << cudaGetErrorString(e)); }
}  // namespace

int gpu_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return n;
}

void* gpu_malloc_or_null(size_t nbytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, nbytes == 0 ? 1 : nbytes);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    return nullptr;
  }
  check(e, "cudaMalloc");
  return p;
}

void gpu_free(void* p, int device) {
  cudaSetDevice(device);
  cudaFree(p);
}

void gpu_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes) {
  cudaMemcpyKind kind = !dst_on_device   ? cudaMemcpyDeviceToHost
                        : !src_on_device ? cudaMemcpyHostToDevice
                                         : cudaMemcpyDeviceToDevice;
  check(cudaMemcpy(dst, src, nbytes, kind), "cudaMemcpy");
}

void gpu_memset_zero(void* p, size_t nbytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemsetAsync(p, 0, nbytes, 0), "cudaMemsetAsync");
}

void gpu_synchronize() {
  check(cudaDeviceSynchronize(), "a kernel failed (MLAMOE_CUDA_SYNC=1 waits after every launch and names the kernel)");
}

std::string gpu_device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

void gpu_check_launch_config(int error, const char* kernel) { check(static_cast<cudaError_t>(error), kernel); }

void gpu_check_launch(const char* kernel) {
  check(cudaGetLastError(), kernel);
  // MLAMOE_CUDA_SYNC=1 waits after every launch, so an error is reported by the kernel that caused it.
  static const bool sync_each = [] {
    const char* e = std::getenv("MLAMOE_CUDA_SYNC");
    return e && std::string(e) == "1";
  }();
  if (sync_each) check(cudaDeviceSynchronize(), kernel);
}

}  // namespace mlamoe::cuda_gpu
