// Exposed communication for `mlamoe train --profile` (parallel/README.md "Overlap"): how long each
// step waits for communication that nothing hid, per group of the mesh. Off unless turned on; off,
// it costs one relaxed load per call.
//
// Two clocks, because a wait happens on the host or on a device:
//   - host: seconds the training thread spent inside a blocking call or a Request::wait (the
//     Communicator front times them). On the CPU this is the exposed communication: the rank
//     computes nothing meanwhile. With MPI on device buffers it includes draining the device's
//     queued work before the staging copy.
//   - device (NCCL): a call on device buffers returns at once and the compute stream waits for it
//     on the device. The NCCL communicator records, per wait, an event on the waiting stream where
//     it starts to wait (`ready`), one on the communication stream where the call begins
//     (`begun`) and one where it ends (`done`). Exposed = max(0, done - ready); time on the
//     communication stream = done - begun (both with the waits for peers). Read once the step's
//     device work has finished.
// Groups are the mesh's kinds (comm_kind_of: "world", "dp", "ep", "edp", "pp", "embed", "group").
#pragma once
#include <array>
#include <cstdint>
#include <memory>

#include "model/tensor/cuda/stream.h"

namespace mlamoe {

inline constexpr int kCommProfileKinds = 7;  // comm_kind_name(0..6)

void set_comm_profiling(bool on);
bool comm_profiling();

// One call's payload (the front's byte statistics), and a blocked stretch of the training thread.
void add_comm_call(uint32_t kind, int64_t bytes);
void add_comm_host_wait(uint32_t kind, double seconds);
// One device wait (events as above; shared: the call's `done` may serve several waits).
void add_comm_device_wait(uint32_t kind, std::shared_ptr<cuda::Event> ready, std::shared_ptr<cuda::Event> begun,
                          std::shared_ptr<cuda::Event> done);

// One step's figures per kind, in seconds (bytes, calls as counts).
struct CommStepTimes {
  struct Kind {
    double calls = 0, bytes = 0, host_wait_s = 0, device_wait_s = 0, device_busy_s = 0;
  };
  std::array<Kind, kCommProfileKinds> kind{};
  double exposed_s() const;  // Σ over kinds of host + device waits
};

// The figures since the last call, and clears them. Device waits are resolved against `origin`,
// an event recorded on the compute stream before any of them; the caller has synchronised the
// step's end (every event has completed). Without device waits, origin may be null.
CommStepTimes take_comm_step_times(const cuda::Event* origin);
// Drops what was gathered since the last take (communication between steps: logs, evaluation).
void discard_comm_step_times();

}  // namespace mlamoe
