// The memory one rank of a run needs (parameters, gradients, AdamW state, activations of one
// micro-batch) under the config's parallel layout, computed before anything is allocated: printed
// by `mlamoe train --dry-run` (train/cli/dry_run.h) and checked against the machine's free memory
// before a run builds its model.
#pragma once
#include <cstdint>

#include "train/run_config.h"

namespace mlamoe {

struct MemoryPlan {
  double params_per_rank = 0;   // parameters held by one rank (elements)
  double weight_bytes = 0;      // f32 weights
  double grad_bytes = 0;        // f32 gradients
  double adam_bytes = 0;        // f32 m and v, ZeRO-1 sharded
  double activation_bytes = 0;  // saved for backward, one micro-batch (bf16 where the precision keeps them so)
  double logits_bytes = 0;      // logits + their gradient, one micro-batch (main head and MTP heads)
  // train.precision = "bf16": the bf16 copy of the weights the GEMMs read (model/README.md §6); 0 in f32.
  double bf16_copy_bytes = 0;
  double total() const { return weight_bytes + grad_bytes + adam_bytes + activation_bytes + logits_bytes + bf16_copy_bytes; }
};

// Analytic need per rank. Activations count the tensors the CPU ops save for backward, per token:
// attention projections and per-head q/k/v, the MoE's permuted rows and expert intermediates,
// each in the dtype train.precision keeps it in; experts are split over ep and layers over pp
// (even split).
MemoryPlan plan_memory(const RunConfig& rc, int64_t world_size);

// Memory this process may use, bytes: the smaller of /proc/meminfo's MemAvailable and the cgroup
// (v2 or v1) limit minus usage; 0 when neither can be read.
double available_memory_bytes();

// Before a run allocates its model: refuses (one line with the figures) when the plan of one rank
// times the ranks on this node exceeds the memory available. local_ranks: ranks of the job on
// this node.
void check_memory_plan(const RunConfig& rc, int64_t world_size, int64_t local_ranks);

}  // namespace mlamoe
