#include "parallel/mesh.h"

#include <sstream>

#include "model/tensor/error.h"

namespace mlamoe {

MeshShape mesh_shape(int64_t world, int64_t pp, int64_t ep, int64_t n_routed_experts, int64_t num_layers) {
  MLAMOE_CHECK(pp >= 1 && world % pp == 0, "layout: " << world << " ranks are not divisible by parallel.pp = " << pp);
  MLAMOE_CHECK(pp <= num_layers, "layout: parallel.pp = " << pp << " stages for " << num_layers << " layers (at most one stage per layer)");
  int64_t dp = world / pp;
  MLAMOE_CHECK(ep >= 1 && dp % ep == 0,
               "layout: parallel.ep = " << ep << " must divide the data-parallel size " << dp << " (= " << world << " ranks / pp " << pp << ")");
  MLAMOE_CHECK(ep == 1 || (n_routed_experts > 0 && n_routed_experts % ep == 0),
               "layout: parallel.ep = " << ep << " must divide n_routed_experts = " << n_routed_experts);
  return {world, pp, dp, ep};
}

std::string Mesh::describe() const {
  std::ostringstream s;
  s << "rank " << rank << " = (pp " << pp_rank << ", dp " << dp_rank << ", ep " << ep_rank << ")";
  return s.str();
}

Mesh make_mesh(std::unique_ptr<Communicator> world, const MeshShape& shape) {
  MLAMOE_CHECK(world->size() == shape.world, "mesh: the world has " << world->size() << " ranks, the layout " << shape.world);
  Mesh m;
  m.shape = shape;
  m.rank = world->rank();
  m.pp_rank = m.rank / shape.dp;
  m.dp_rank = m.rank % shape.dp;
  m.ep_rank = m.dp_rank % shape.ep;
  m.edp_rank = m.dp_rank / shape.ep;
  int r = static_cast<int>(m.rank);
  m.dp = world->split(static_cast<int>(m.pp_rank), r);
  m.ep = world->split(static_cast<int>(m.pp_rank * shape.edp() + m.edp_rank), r);
  m.edp = world->split(static_cast<int>(m.pp_rank * shape.ep + m.ep_rank), r);
  m.pp = world->split(static_cast<int>(m.dp_rank), r);
  // The embedding is used on the first stage (input) and the last (MTP); other ranks get a group of their own.
  bool ends = m.first_stage() || m.last_stage();
  m.embed = world->split(ends ? static_cast<int>(m.dp_rank) : static_cast<int>(shape.dp + m.rank), r);
  m.world = std::move(world);
  return m;
}

}  // namespace mlamoe
