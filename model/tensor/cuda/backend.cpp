#include "model/tensor/cuda/backend.h"

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <optional>
#include <string>
#include <utility>

#include "model/tensor/error.h"

namespace mlamoe {

namespace cuda {

namespace {

bool build_has_gpu() {
#ifdef MLAMOE_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int gpu_devices() {
#ifdef MLAMOE_WITH_CUDA
  return cuda_gpu::gpu_device_count();
#else
  return 0;
#endif
}

Backend choose() {
  const char* env = std::getenv("MLAMOE_CUDA_BACKEND");
  std::string want = env ? env : "";
  if (want == "simt") return Backend::Simt;
  if (want == "gpu") {
    MLAMOE_CHECK(build_has_gpu(),
                 "MLAMOE_CUDA_BACKEND=gpu, but this build has no CUDA backend (configure with -DMLAMOE_CUDA=ON)");
    return Backend::Gpu;
  }
  MLAMOE_CHECK(want.empty(), "MLAMOE_CUDA_BACKEND must be 'gpu' or 'simt', got '" << want << "'");
  return gpu_devices() > 0 ? Backend::Gpu : Backend::None;
}

int simt_devices() {
  const char* env = std::getenv("MLAMOE_SIMT_DEVICES");
  if (!env) return 1;
  char* end = nullptr;
  long n = std::strtol(env, &end, 10);
  MLAMOE_CHECK(*env && *end == '\0' && n >= 1 && n <= 64,
               "MLAMOE_SIMT_DEVICES must be an integer in [1, 64], got '" << env << "'");
  return static_cast<int>(n);
}

void check_device(int device) {
  int n = cuda_device_count();
  MLAMOE_CHECK(backend() != Backend::None, "a CUDA tensor was requested, but "
                                               << (build_has_gpu() ? "no GPU is visible" : "this build has no CUDA backend")
                                               << " (MLAMOE_CUDA_BACKEND=simt runs the CUDA kernels in the SIMT emulator)");
  MLAMOE_CHECK(device >= 0 && device < n,
               "CUDA device " << device << " requested, " << n << " present (backend " << backend_name(backend()) << ")");
}

}  // namespace

Backend backend() {
  static Backend b = choose();
  return b;
}

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::Gpu:
      return "gpu";
    case Backend::Simt:
      return "simt";
    case Backend::None:
      break;
  }
  return "none";
}

namespace {

// The emulator's allocations, for device_of_pointer: start address -> (end, device).
struct SimtBlocks {
  std::mutex mutex;
  std::map<uintptr_t, std::pair<uintptr_t, int>> blocks;
};
SimtBlocks& simt_blocks() {
  static SimtBlocks* b = new SimtBlocks;  // never destroyed: tensors freed during exit still find it
  return *b;
}

}  // namespace

void* raw_alloc(size_t nbytes, int device) {
  check_device(device);
  if (backend() == Backend::Simt) {
    // 256-byte aligned as cudaMalloc's; uninitialised (cudaMalloc does not clear either).
    void* p = ::operator new(nbytes == 0 ? 1 : nbytes, std::align_val_t(256), std::nothrow);
    if (p) {
      std::lock_guard<std::mutex> lock(simt_blocks().mutex);
      auto start = reinterpret_cast<uintptr_t>(p);
      simt_blocks().blocks[start] = {start + (nbytes == 0 ? 1 : nbytes), device};
    }
    return p;
  }
#ifdef MLAMOE_WITH_CUDA
  return cuda_gpu::gpu_malloc_or_null(nbytes, device);
#else
  return nullptr;
#endif
}

void raw_free(void* p, int device) {
  if (backend() == Backend::Simt) {
    {
      std::lock_guard<std::mutex> lock(simt_blocks().mutex);
      simt_blocks().blocks.erase(reinterpret_cast<uintptr_t>(p));
    }
    ::operator delete(p, std::align_val_t(256));
    return;
  }
#ifdef MLAMOE_WITH_CUDA
  cuda_gpu::gpu_free(p, device);
#else
  (void)p, (void)device;
#endif
}

namespace {
// One pointer, so that a wait sees a begin and its end from the same watcher. A replaced watcher
// is never freed (set twice per run at most): a wait in progress may still hold it.
std::atomic<const HostWaitWatcher*> g_watcher{nullptr};
}  // namespace

void set_host_wait_watcher(HostWaitWatcher w) {
  g_watcher.store(w.begin ? new HostWaitWatcher(w) : nullptr, std::memory_order_release);
}

HostWait::HostWait() {
  const HostWaitWatcher* w = g_watcher.load(std::memory_order_acquire);
  if (w && w->begin) {
    end_ = w->end;
    w->begin();
  }
}

HostWait::~HostWait() {
  if (end_) end_();
}

void copy(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  std::optional<HostWait> waiting;  // a copy to the host waits for the work queued before it
  if (!dst_device.is_cuda()) waiting.emplace();
  if (backend() == Backend::Simt) {
    std::memcpy(dst, src, nbytes);
    return;
  }
  MLAMOE_CHECK(backend() == Backend::Gpu, "a copy to or from a CUDA tensor, but no CUDA backend is running");
#ifdef MLAMOE_WITH_CUDA
  cuda_gpu::gpu_copy(dst, dst_device.is_cuda(), src, src_device.is_cuda(), nbytes);
#else
  (void)dst_device, (void)src_device;
#endif
}

void memset_zero(void* p, size_t nbytes, int device) {
  if (backend() == Backend::Simt) {
    std::memset(p, 0, nbytes);
    return;
  }
#ifdef MLAMOE_WITH_CUDA
  cuda_gpu::gpu_memset_zero(p, nbytes, device);
#else
  (void)p, (void)nbytes, (void)device;
#endif
}

void synchronize() {
  HostWait waiting;
#ifdef MLAMOE_WITH_CUDA
  if (backend() == Backend::Gpu) cuda_gpu::gpu_synchronize();
#endif
}

int device_of_pointer(const void* p) {
  switch (backend()) {
    case Backend::Simt: {
      std::lock_guard<std::mutex> lock(simt_blocks().mutex);
      auto& blocks = simt_blocks().blocks;
      auto a = reinterpret_cast<uintptr_t>(p);
      auto it = blocks.upper_bound(a);
      if (it == blocks.begin()) return -1;
      --it;
      return a < it->second.first ? it->second.second : -1;
    }
    case Backend::Gpu:
#ifdef MLAMOE_WITH_CUDA
      return cuda_gpu::gpu_pointer_device(p);
#else
      return -1;
#endif
    case Backend::None:
      break;
  }
  return -1;
}

std::string device_identity(int device) {
  check_device(device);
#ifdef MLAMOE_WITH_CUDA
  if (backend() == Backend::Gpu) return cuda_gpu::gpu_pci_bus_id(device);
#endif
  return "simt:" + std::to_string(device);
}

void set_device(int device) {
  check_device(device);
#ifdef MLAMOE_WITH_CUDA
  if (backend() == Backend::Gpu) cuda_gpu::gpu_set_device(device);
#endif
}

std::string device_name(int device) {
  check_device(device);
  if (backend() == Backend::Simt) return "SIMT emulator";
#ifdef MLAMOE_WITH_CUDA
  return cuda_gpu::gpu_device_name(device);
#else
  return "none";
#endif
}

}  // namespace cuda

int cuda_device_count() {
  switch (cuda::backend()) {
    case cuda::Backend::Simt:
      return cuda::simt_devices();
    case cuda::Backend::Gpu:
      return cuda::gpu_devices();
    case cuda::Backend::None:
      break;
  }
  return 0;
}

}  // namespace mlamoe
