// The CUDA runtime calls behind backend.h's gpu backend: memory, copies, synchronisation, streams
// and events. Copies and fills go to the calling thread's current stream (stream.h), as kernels do.
#include <cuda_runtime.h>

#include <cstdlib>
#include <string>

#include "model/tensor/cuda/backend.h"
#include "model/tensor/cuda/stream.h"
#include "model/tensor/error.h"

namespace mlamoe::cuda_gpu {

namespace {
void check(cudaError_t e, const char* what) { MLAMOE_CHECK(e == cudaSuccess, "CUDA: " << what << ": " << cudaGetErrorString(e)); }
cudaStream_t current() { return static_cast<cudaStream_t>(cuda::current_stream()); }
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
  // On the current stream, after the work queued there. Only a copy to the host waits for it: a
  // copy within the device stays queued, and one from (pageable) host memory returns once the
  // bytes are staged, so the source may be reused at once.
  check(cudaMemcpyAsync(dst, src, nbytes, kind, current()), "cudaMemcpyAsync");
  if (!dst_on_device) check(cudaStreamSynchronize(current()), "a kernel before a copy failed (MLAMOE_CUDA_SYNC=1 names it)");
}

void gpu_memset_zero(void* p, size_t nbytes, int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaMemsetAsync(p, 0, nbytes, current()), "cudaMemsetAsync");
}

void gpu_synchronize() {
  check(cudaDeviceSynchronize(), "a kernel failed (MLAMOE_CUDA_SYNC=1 waits after every launch and names the kernel)");
}

std::string gpu_device_name(int device) {
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  return prop.name;
}

int gpu_pointer_device(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return a.type == cudaMemoryTypeDevice ? a.device : -1;
}

void gpu_set_device(int device) { check(cudaSetDevice(device), "cudaSetDevice"); }

std::string gpu_pci_bus_id(int device) {
  char id[64] = {0};
  check(cudaDeviceGetPCIBusId(id, sizeof(id), device), "cudaDeviceGetPCIBusId");
  return id;
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

void* gpu_stream_create(int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaStream_t s = nullptr;
  check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
  return s;
}

void gpu_stream_destroy(void* stream, int device) {
  cudaSetDevice(device);
  cudaStreamDestroy(static_cast<cudaStream_t>(stream));
}

void gpu_stream_synchronize(void* stream) {
  check(cudaStreamSynchronize(static_cast<cudaStream_t>(stream)), "a kernel on the stream failed");
}

void gpu_stream_wait_event(void* stream, void* event) {
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0), "cudaStreamWaitEvent");
}

void* gpu_event_create(int device) {
  check(cudaSetDevice(device), "cudaSetDevice");
  cudaEvent_t e = nullptr;
  check(cudaEventCreate(&e), "cudaEventCreate");
  return e;
}

void gpu_event_destroy(void* event) { cudaEventDestroy(static_cast<cudaEvent_t>(event)); }

void gpu_event_record(void* event, void* stream) {
  check(cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream)), "cudaEventRecord");
}

void gpu_event_synchronize(void* event) {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(event)), "a kernel before the event failed (MLAMOE_CUDA_SYNC=1 names it)");
}

bool gpu_event_query(void* event) {
  cudaError_t e = cudaEventQuery(static_cast<cudaEvent_t>(event));
  if (e == cudaErrorNotReady) return false;
  check(e, "cudaEventQuery");
  return true;
}

float gpu_event_elapsed_ms(void* start, void* end) {
  float ms = 0;
  check(cudaEventElapsedTime(&ms, static_cast<cudaEvent_t>(start), static_cast<cudaEvent_t>(end)), "cudaEventElapsedTime");
  return ms;
}

}  // namespace mlamoe::cuda_gpu
