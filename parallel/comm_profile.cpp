#include "parallel/comm_profile.h"

#include <algorithm>
#include <atomic>
#include <mutex>
#include <vector>

#include "model/tensor/error.h"

namespace mlamoe {

namespace {
std::atomic<bool> g_on{false};
std::mutex g_mu;  // the training thread adds; a lock keeps a helper thread's call safe too
CommStepTimes g_step;
struct DeviceWait {
  uint32_t kind;
  std::shared_ptr<cuda::Event> ready, begun, done;
};
std::vector<DeviceWait> g_device_waits;

uint32_t clamp_kind(uint32_t kind) { return std::min<uint32_t>(kind, kCommProfileKinds - 1); }
}  // namespace

void set_comm_profiling(bool on) { g_on.store(on, std::memory_order_relaxed); }
bool comm_profiling() { return g_on.load(std::memory_order_relaxed); }

void add_comm_call(uint32_t kind, int64_t bytes) {
  std::lock_guard<std::mutex> lk(g_mu);
  auto& k = g_step.kind[clamp_kind(kind)];
  k.calls += 1;
  k.bytes += static_cast<double>(bytes);
}

void add_comm_host_wait(uint32_t kind, double seconds) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_step.kind[clamp_kind(kind)].host_wait_s += seconds;
}

void add_comm_device_wait(uint32_t kind, std::shared_ptr<cuda::Event> ready, std::shared_ptr<cuda::Event> begun,
                          std::shared_ptr<cuda::Event> done) {
  std::lock_guard<std::mutex> lk(g_mu);
  g_device_waits.push_back({clamp_kind(kind), std::move(ready), std::move(begun), std::move(done)});
}

double CommStepTimes::exposed_s() const {
  double s = 0;
  for (const Kind& k : kind) s += k.host_wait_s + k.device_wait_s;
  return s;
}

void discard_comm_step_times() {
  std::lock_guard<std::mutex> lk(g_mu);
  g_step = CommStepTimes{};
  g_device_waits.clear();
}

CommStepTimes take_comm_step_times(const cuda::Event* origin) {
  std::lock_guard<std::mutex> lk(g_mu);
  CommStepTimes out = g_step;
  g_step = CommStepTimes{};
  std::vector<DeviceWait> waits = std::move(g_device_waits);
  g_device_waits.clear();
  if (waits.empty()) return out;
  MLAMOE_CHECK(origin, "take_comm_step_times: " << waits.size() << " device waits need an origin event");
  // Waits on one stream follow each other (the stream passes one before it reaches the next), so
  // their exposed stretches do not overlap and add up.
  for (const DeviceWait& w : waits) {
    double ready = origin->elapsed_ms(*w.ready), done = origin->elapsed_ms(*w.done);
    auto& k = out.kind[w.kind];
    k.device_wait_s += std::max(0.0, done - ready) / 1e3;
    k.device_busy_s += std::max(0.0, w.begun->elapsed_ms(*w.done)) / 1e3;
  }
  return out;
}

}  // namespace mlamoe
