// The `mlamoe train --profile` table printed at the end of a run: seconds per phase of the step,
// then the forward and backward time by op family (model/autograd's profiling), and how well the
// host allocator's cache served the steady state.
#pragma once
#include <map>
#include <string>

#include "model/tensor/host_allocator.h"

namespace mlamoe {

// phase: seconds per phase name over the run (rank 0's view); total: the run's seconds;
// after_first_step: the allocator's statistics once the first step had warmed its cache.
void print_profile(const std::map<std::string, double>& phase, double total, const HostAllocatorStats& after_first_step);

}  // namespace mlamoe
