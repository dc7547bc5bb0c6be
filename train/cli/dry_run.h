// `mlamoe train --dry-run`: what a config costs before anything is allocated: parameter counts,
// FLOPs per token, KV-cache bytes, and the memory plan of one rank (train/memory_plan.h) under the
// config's parallel layout.
#pragma once
#include <cstdint>

#include "train/run_config.h"

namespace mlamoe {

// world_size: the ranks to plan for (a layout the run would refuse is refused here too).
void print_dry_run(const RunConfig& rc, int64_t world_size);

}  // namespace mlamoe
