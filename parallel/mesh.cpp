#include "parallel/mesh.h"

#include <sstream>

#include "model/tensor/error.h"

namespace mlamoe {

MeshShape mesh_shape(int64_t world, int64_t pp, int64_t ep, int64_t n_routed_experts, int64_t num_layers) {
  MLAMOE_CHECK(pp >= 1 && world % pp == 0, "layout: " << world << " ranks are not divisible by parallel.pp = " << pp);
  MLAMOE_CHECK(pp <= num_layers,
               "layout: parallel.pp = " << pp << " stages for " << num_layers << " layers (at most one stage per layer)");
  int64_t dp = world / pp;
  MLAMOE_CHECK(ep >= 1 && dp % ep == 0, "layout: parallel.ep = " << ep << " must divide the data-parallel size " << dp
                                                                 << " (= " << world << " ranks / pp " << pp << ")");
  MLAMOE_CHECK(ep == 1 || (n_routed_experts > 0 && n_routed_experts % ep == 0),
               "layout: parallel.ep = " << ep << " must divide n_routed_experts = " << n_routed_experts);
  return {world, pp, dp, ep};
}

std::string Mesh::describe() const {
  std::ostringstream s;
  s << "rank " << rank << " = (pp " << pp_rank << ", dp " << dp_rank << ", ep " << ep_rank << ")";
  return s.str();
}

std::string describe_rank(const MeshShape& shape, int64_t rank) {
  int64_t dp_rank = rank % shape.dp;
  std::ostringstream s;
  s << "rank " << rank << " (pp " << rank / shape.dp << ", dp " << dp_rank << ", ep " << dp_rank % shape.ep << ")";
  return s.str();
}

std::vector<int64_t> mesh_group(const MeshShape& s, const std::string& group, int64_t rank) {
  const int64_t pp_rank = rank / s.dp, dp_rank = rank % s.dp, ep_rank = dp_rank % s.ep, edp_rank = dp_rank / s.ep;
  std::vector<int64_t> g;
  if (group == "world") {
    for (int64_t r = 0; r < s.world; ++r) g.push_back(r);
  } else if (group == "dp") {
    for (int64_t d = 0; d < s.dp; ++d) g.push_back(pp_rank * s.dp + d);
  } else if (group == "ep") {
    for (int64_t e = 0; e < s.ep; ++e) g.push_back(pp_rank * s.dp + edp_rank * s.ep + e);
  } else if (group == "edp") {
    for (int64_t e = 0; e < s.edp(); ++e) g.push_back(pp_rank * s.dp + e * s.ep + ep_rank);
  } else if (group == "pp") {
    for (int64_t p = 0; p < s.pp; ++p) g.push_back(p * s.dp + dp_rank);
  } else if (group == "embed") {
    bool ends = pp_rank == 0 || pp_rank == s.pp - 1;
    if (!ends) return {rank};
    g.push_back(dp_rank);
    if (s.pp > 1) g.push_back((s.pp - 1) * s.dp + dp_rank);
  }
  return g;
}

Mesh make_mesh(std::unique_ptr<Communicator> world, const MeshShape& shape, std::unique_ptr<Communicator> collectives) {
  MLAMOE_CHECK(world->size() == shape.world, "mesh: the world has " << world->size() << " ranks, the layout " << shape.world);
  Mesh m;
  m.shape = shape;
  m.rank = world->rank();
  m.pp_rank = m.rank / shape.dp;
  m.dp_rank = m.rank % shape.dp;
  m.ep_rank = m.dp_rank % shape.ep;
  m.edp_rank = m.dp_rank / shape.ep;
  int r = static_cast<int>(m.rank);
  Communicator& coll = collectives ? *collectives : *world;
  MLAMOE_CHECK(coll.size() == world->size() && coll.rank() == world->rank(),
               "mesh: the collectives' communicator is not the world's");
  m.dp = coll.split(static_cast<int>(m.pp_rank), r);
  m.ep = coll.split(static_cast<int>(m.pp_rank * shape.edp() + m.edp_rank), r);
  m.edp = coll.split(static_cast<int>(m.pp_rank * shape.ep + m.ep_rank), r);
  m.pp = coll.split(static_cast<int>(m.dp_rank), r);
  // The embedding is used on the first stage (input) and the last (MTP); other ranks get a group of their own.
  bool ends = m.first_stage() || m.last_stage();
  m.embed = coll.split(ends ? static_cast<int>(m.dp_rank) : static_cast<int>(shape.dp + m.rank), r);
  m.world = std::move(world);
  m.world->set_name("world");
  m.dp->set_name("dp");
  m.ep->set_name("ep");
  m.edp->set_name("edp");
  m.pp->set_name("pp");
  m.embed->set_name("embed");
  return m;
}

}  // namespace mlamoe
