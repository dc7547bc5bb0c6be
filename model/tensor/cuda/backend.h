// Which machine runs the kernels of CUDA tensors, chosen once per process:
//   gpu   the CUDA runtime and the nvcc-compiled kernels (builds with MLAMOE_WITH_CUDA, a GPU visible);
//   simt  the same kernel sources compiled by g++ and run by the SIMT emulator (model/tensor/simt/),
//         with "device" memory in host RAM. Every build has it: it is how the CUDA kernels are
//         tested on machines without a GPU (CI), and how they are compared with the GPU's.
// MLAMOE_CUDA_BACKEND=gpu|simt picks one; unset, it is gpu where a GPU is visible and none
// otherwise (a CUDA tensor is then a clear error). MLAMOE_SIMT_DEVICES=N gives the emulator N
// devices (default 1).
//
// The raw memory functions here are what the caching allocator (caching_allocator.h) draws on;
// tensors never call them directly.
#pragma once
#include <cstddef>
#include <string>

#include "model/tensor/device.h"

namespace mlamoe::cuda {

enum class Backend { None, Gpu, Simt };

Backend backend();  // decided on the first call (reads MLAMOE_CUDA_BACKEND), then fixed
const char* backend_name(Backend b);
inline bool on_simt() { return backend() == Backend::Simt; }

// Device memory straight from the backend (cudaMalloc or aligned host memory): nullptr when the
// device is out of memory; throws mlamoe::Error for a device that does not exist.
void* raw_alloc(size_t nbytes, int device);
void raw_free(void* p, int device);

// Copies between host and device or within a device (dst and src as tensors' devices say), on
// the current stream after the work queued there. A copy to the host waits for it (the bytes are
// there on return); a copy to the device is queued (its host source may be reused on return).
void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes);
// nbytes of zero bits at p on `device`, in stream order.
void memset_zero(void* p, size_t nbytes, int device);
// Waits until every kernel launched so far has finished (and reports its error, if any).
void synchronize();
// The CUDA device whose memory holds p (anywhere inside an allocation), or -1 for host memory (and
// for everything when no backend runs). The communicator stages device buffers through the host
// with it (parallel/host_staging.h).
int device_of_pointer(const void* p);
// What names the physical device across processes: the PCI bus id on a GPU ("0000:1b:00.0", the
// same whichever CUDA_VISIBLE_DEVICES numbering a process sees), "simt:<index>" in the emulator.
std::string device_identity(int device);
// Makes `device` the one this process's kernels, copies and allocations use (once, at start-up:
// one device per rank, train/trainer.cpp picks it from the node-local rank).
void set_device(int device);
// The device's name as the driver gives it ("NVIDIA H200"), or "SIMT emulator".
std::string device_name(int device);

// ---- Host waits for the device ----
// Every place the host waits for queued device work (copy(), synchronize(), Stream and Event
// synchronize) is announced to a watcher, so that the collective watchdog (parallel/watchdog.h)
// sees a rank stuck there: an NCCL call on device buffers returns at once, and a peer that never
// joins it shows up only later, as a host wait for the device that does not end. One watcher per
// process (its functions are called on the waiting thread); {nullptr, nullptr} removes it.
struct HostWaitWatcher {
  void (*begin)() = nullptr;
  void (*end)() = nullptr;
};
void set_host_wait_watcher(HostWaitWatcher w);
// Brackets one host wait (announces it to the watcher, if any).
class HostWait {
 public:
  HostWait();
  ~HostWait();
  HostWait(const HostWait&) = delete;
  HostWait& operator=(const HostWait&) = delete;

 private:
  void (*end_)() = nullptr;
};

}  // namespace mlamoe::cuda

// The nvcc-compiled side of the gpu backend (gpu_runtime.cu; only in builds with MLAMOE_WITH_CUDA).
namespace mlamoe::cuda_gpu {
int gpu_device_count();  // 0 when no GPU is visible or the driver is missing
void* gpu_malloc_or_null(size_t nbytes, int device);
void gpu_free(void* p, int device);
void gpu_copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t nbytes);
void gpu_memset_zero(void* p, size_t nbytes, int device);
void gpu_synchronize();
void gpu_check_launch(const char* kernel);
std::string gpu_device_name(int device);  // after every launch: the launch error, if any
int gpu_pointer_device(const void* p);    // cudaPointerGetAttributes: the device of device memory, else -1
void gpu_set_device(int device);
std::string gpu_pci_bus_id(int device);
// The result of a launch-configuration call (cudaFuncSetAttribute), passed as an int (cudaError_t).
void gpu_check_launch_config(int error, const char* kernel);
// Streams and events (stream.h), as opaque cudaStream_t / cudaEvent_t.
void* gpu_stream_create(int device);
void gpu_stream_destroy(void* stream, int device);
void gpu_stream_synchronize(void* stream);
void gpu_stream_wait_event(void* stream, void* event);
void* gpu_event_create(int device);
void gpu_event_destroy(void* event);
void gpu_event_record(void* event, void* stream);
void gpu_event_synchronize(void* event);
bool gpu_event_query(void* event);
float gpu_event_elapsed_ms(void* start, void* end);
}  // namespace mlamoe::cuda_gpu
