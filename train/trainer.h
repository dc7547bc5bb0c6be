// The training loop behind `mlamoe train` (the command line is train/cli/train_command.h): set-up
// agreed by every rank, data from the HDF5 token dataset, train_step per step, periodic held-out
// evaluation, one StepMetrics record per step handed to the log sinks (train/monitor/), the
// checkpoint cadence, and the final weights in the run directory.
#pragma once
#include <string>

#include "train/run_config.h"

namespace mlamoe {

class MpiRuntime;

// How a run starts: fresh, resumed from its newest complete checkpoint (exactly where it stopped,
// under any layout), or initialised from a checkpoint's weights with a new optimizer and schedule.
struct StartOptions {
  std::string resume_dir;  // --resume RUN_DIR
  std::string init_from;   // --init-from CHECKPOINT
  bool profile = false;    // --profile: print where the step time went at the end
};

// mpi: null for a single process; under mpirun, every rank calls this with the same config.
int run_training(const RunConfig& rc, MpiRuntime* mpi, const StartOptions& start = {});

}  // namespace mlamoe
