// `mlamoe train`: the command line of a training run (train/trainer.h runs it).
#pragma once
#include <string>
#include <vector>

namespace mlamoe {

// `mlamoe train --config C [--set k=v ...] [--dry-run [--ranks N] | --resume RUN_DIR |
// --init-from CKPT] [--profile]`. Under mpirun (or another MPI launcher) every rank runs it; a
// plain command line trains in one process without touching MPI. Returns the exit status.
int run_train_command(const std::vector<std::string>& args);

}  // namespace mlamoe
