// The exposed-communication table of `mlamoe train --profile`: each step's waits for
// communication (parallel/comm_profile.h), summed over the run, then averaged per step and over
// the ranks, with the busiest rank beside the mean (ranks differ: a pipeline's first stage waits
// for the others, ep ranks wait for the slowest in their exchange).
#pragma once
#include <cstdint>

#include "parallel/comm_profile.h"
#include "parallel/communicator.h"

namespace mlamoe {

class CommReport {
 public:
  // One step's figures (take_comm_step_times) and its wall time in seconds.
  void add_step(const CommStepTimes& t, double step_seconds);
  // Collective over `world` (every rank calls it; null for one process); rank 0 prints the table.
  void print(Communicator* world, int rank) const;

 private:
  CommStepTimes total_;
  int64_t steps_ = 0;
  double step_seconds_ = 0, worst_step_exposed_s_ = 0;
};

}  // namespace mlamoe
