// The single-process pretraining loop behind `mlamoe train`: data from the HDF5 token dataset,
// train_step per step, periodic held-out evaluation, logs (stdout, metrics.jsonl, experts.jsonl),
// and the final weights in the run directory.
#pragma once
#include "train/run_config.h"

namespace mlamoe {

class MpiRuntime;

// mpi: null for a single process; under mpirun, every rank calls this with the same config.
int run_training(const RunConfig& rc, MpiRuntime* mpi);

// `mlamoe train --config C [--set k=v ...] [--dry-run]`
int run_train_command(const std::vector<std::string>& args);

}  // namespace mlamoe
