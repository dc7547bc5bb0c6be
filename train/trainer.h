// The single-process pretraining loop behind `mlamoe train`: data from the HDF5 token dataset,
// train_step per step, periodic held-out evaluation, logs (stdout, metrics.jsonl, experts.jsonl),
// and the final weights in the run directory.
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

// `mlamoe train --config C [--set k=v ...] [--dry-run | --resume RUN_DIR | --init-from CKPT]`
int run_train_command(const std::vector<std::string>& args);

}  // namespace mlamoe
