// The device mesh (parallel/README.md "Mesh"): world = pp × dp, ep divides dp. Rank layout, outermost
// first: pipeline stage, then expert-data-parallel index, then expert-parallel index, so an ep
// group is a run of consecutive ranks (the same node first, where all-to-all is cheapest):
//
//   rank = pp_rank·dp + edp_rank·ep + ep_rank,   dp_rank = edp_rank·ep + ep_rank
//
// Groups: dp (same stage: dense-gradient averaging, data slices), ep (consecutive: token
// all-to-all), edp (same stage and ep_rank: expert-gradient averaging), pp (same dp_rank: the
// pipeline), and embed (the first and last stage of a pipeline: the embedding both use).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "parallel/communicator.h"

namespace mlamoe {

struct MeshShape {
  int64_t world = 1, pp = 1, dp = 1, ep = 1;
  int64_t edp() const { return dp / ep; }
};

// Checks a layout against the world size and the model; throws one line naming the rule.
MeshShape mesh_shape(int64_t world, int64_t pp, int64_t ep, int64_t n_routed_experts, int64_t num_layers);

struct Mesh {
  MeshShape shape;
  int64_t rank = 0, pp_rank = 0, dp_rank = 0, ep_rank = 0, edp_rank = 0;
  std::unique_ptr<Communicator> world, dp, ep, edp, pp, embed;

  bool first_stage() const { return pp_rank == 0; }
  bool last_stage() const { return pp_rank == shape.pp - 1; }
  std::string describe() const;  // "rank 5 = (pp 1, dp 1, ep 1)"
};

// "rank 5 (pp 1, dp 1, ep 1)": any world rank's coordinates under a layout (the formula above).
std::string describe_rank(const MeshShape& shape, int64_t rank);
// The world ranks of `rank`'s group `group` ("world", "dp", "ep", "edp", "pp", "embed"), as
// make_mesh builds it; empty for any other name.
std::vector<int64_t> mesh_group(const MeshShape& shape, const std::string& group, int64_t rank);

// Builds every group from the world communicator (collective over the world). With
// `collectives` (the same ranks over NCCL: nccl_world_communicator), the groups (dp, ep, edp, pp,
// embed) are split from it instead; `world` itself (start-up agreement, loss sums) stays on MPI.
Mesh make_mesh(std::unique_ptr<Communicator> world, const MeshShape& shape, std::unique_ptr<Communicator> collectives = nullptr);

}  // namespace mlamoe
