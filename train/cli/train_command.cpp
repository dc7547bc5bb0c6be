#include "train/cli/train_command.h"

#include <cstdlib>
#include <memory>

#include "model/tensor/error.h"
#include "parallel/mpi_runtime.h"
#include "train/cli/cli_args.h"
#include "train/cli/dry_run.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace mlamoe {

namespace {

// Under mpirun (Open MPI), a PMI/PMIx launcher (MPICH's, Slurm's srun) the trainer joins MPI; a
// plain command line stays a single process without touching MPI.
bool launched_by_mpi() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v)) return true;
  const char* n = std::getenv("SLURM_NTASKS");
  return std::getenv("SLURM_PROCID") && n && std::atoll(n) > 1;
}

}  // namespace

int run_train_command(const std::vector<std::string>& args) {
  CliArgs a("train", args, {"dry-run", "profile"}, {"set"});
  std::string config = a.get("config", "");
  int64_t ranks = a.get_int("ranks", 0, 1, 1 << 24);  // dry-run default: the smallest layout, pp·ep ranks
  std::vector<std::string> overrides = a.get_all("set");
  std::string device = a.get("device", "");  // --device cuda: train.device
  if (!device.empty()) overrides.push_back("train.device=" + device);
  bool dry = a.has_switch("dry-run");
  StartOptions start{a.get("resume", ""), a.get("init-from", ""), false};
  start.profile = a.has_switch("profile");
  a.reject_unknown();
  MLAMOE_CHECK(start.resume_dir.empty() || start.init_from.empty(), "train: --resume and --init-from exclude each other");
  MLAMOE_CHECK(!config.empty(), "train: --config FILE is required");
  MLAMOE_CHECK(dry || ranks == 0, "train: --ranks only plans a layout with --dry-run (launch ranks with mpirun)");
  if (dry) {
    RunConfig rc = load_run_config(config, overrides);
    print_dry_run(rc, ranks > 0 ? ranks : rc.parallel.pp * rc.parallel.ep);
    return 0;
  }
  if (!launched_by_mpi()) return run_training(load_run_config(config, overrides), nullptr, start);
  MpiRuntime mpi(nullptr, nullptr);
  std::unique_ptr<RunConfig> rc;
  std::string err;
  try {
    rc = std::make_unique<RunConfig>(load_run_config(config, overrides));
  } catch (const Error& e) {
    err = e.what();
  }
  auto world = mpi_world_communicator();
  if (any_rank_failed(world.get(), err)) return 1;
  return run_training(*rc, &mpi, start);
}

}  // namespace mlamoe
