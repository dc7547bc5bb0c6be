#include "train/distributed.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "model/tensor/cuda/backend.h"
#include "parallel/ep_dispatcher.h"
#include "parallel/grad_sync.h"
#include "parallel/mpi_runtime.h"
#include "parallel/pipeline.h"

namespace mlamoe {

bool any_rank_failed(Communicator* world, const std::string& err) {
  if (!world) {
    if (!err.empty()) std::fprintf(stderr, "mlamoe: error: %s\n", err.c_str());
    return !err.empty();
  }
  int64_t neg_rank = err.empty() ? INT64_MIN : -static_cast<int64_t>(world->rank());  // max of −rank = the lowest failing rank
  world->all_reduce(&neg_rank, 1, DType::I64, ReduceOp::Max);
  if (neg_rank == INT64_MIN) return false;
  if (-neg_rank == world->rank()) std::fprintf(stderr, "mlamoe: error: %s\n", err.c_str());
  return true;
}

int64_t ranks_on_this_node(int64_t world) {
  for (const char* v : {"OMPI_COMM_WORLD_LOCAL_SIZE", "MPI_LOCALNRANKS", "SLURM_NTASKS_PER_NODE"})
    if (const char* s = std::getenv(v)) {
      long long n = std::atoll(s);
      if (n >= 1) return n;
    }
  return world;
}

CudaBinding bind_cuda_device(const MpiRuntime* mpi) {
  int n = cuda_device_count();
  MLAMOE_CHECK(n > 0, "no CUDA device is usable (backend " << cuda::backend_name(cuda::backend()) << ")");
  CudaBinding b;
  b.device = Device::cuda(mpi ? mpi->local_rank() % n : 0);
  std::string mine = cuda::device_identity(b.device.index);
  std::vector<std::string> all = mpi ? mpi->node_all_gather(mine) : std::vector<std::string>{mine};
  int64_t same = std::count(all.begin(), all.end(), mine);
  b.shared = same > 1;
  const char* share = std::getenv("MLAMOE_CUDA_SHARE_DEVICES");
  MLAMOE_CHECK(!b.shared || (share && std::string(share) == "1"),
               same << " of the " << all.size() << " ranks on this node use the same CUDA device (" << mine << "; " << n
                    << " visible, backend " << cuda::backend_name(cuda::backend())
                    << "): start one rank per GPU, or set MLAMOE_CUDA_SHARE_DEVICES=1 to let ranks share it");
  cuda::set_device(b.device.index);
  return b;
}

std::unique_ptr<Communicator> collectives_communicator(Device device, bool shared_device) {
  const char* env = std::getenv("MLAMOE_COMM");
  std::string want = env ? env : "";
  MLAMOE_CHECK(want.empty() || want == "mpi" || want == "nccl", "MLAMOE_COMM must be 'mpi' or 'nccl', got '" << want << "'");
  if (!device.is_cuda() || want == "mpi") return nullptr;
  MLAMOE_CHECK(!(shared_device && want == "nccl"),
               "MLAMOE_COMM=nccl, but ranks share CUDA devices (MLAMOE_CUDA_SHARE_DEVICES=1): NCCL needs one device per rank");
  if (shared_device) return nullptr;
  return nccl_world_communicator(device);
}

ModelShard shard_for(const ModelConfig& c, Mesh& mesh, bool overlap_ep) {
  std::vector<int64_t> begin = split_layers(c, mesh.shape.pp);
  ModelShard s;
  if (mesh.shape.ep > 1) s.dispatcher = std::make_shared<EpDispatcher>(*mesh.ep, c.n_routed_experts, overlap_ep);
  s.first_layer = begin[mesh.pp_rank];
  s.end_layer = begin[mesh.pp_rank + 1];
  s.first_stage = mesh.first_stage();
  s.last_stage = mesh.last_stage();
  return s;
}

ShardGroupFn zero1_groups(Mesh& mesh) {
  return [&mesh](const std::string& name) { return GradSync::is_expert_param(name) ? mesh.edp.get() : mesh.dp.get(); };
}

std::vector<std::string> all_moe_layer_names(const ModelConfig& c) {
  std::vector<std::string> out;
  for (int64_t l = 0; l < c.num_hidden_layers + c.num_nextn_predict_layers; ++l)
    if (c.is_moe_layer(l)) out.push_back("model.layers." + std::to_string(l) + ".mlp");
  return out;
}

ExpertView global_expert_view(const DeepSeekModel& model, Mesh* mesh, const std::vector<std::vector<int64_t>>& counts,
                              const std::vector<double>& layer_balance) {
  std::vector<std::string> names = all_moe_layer_names(model.cfg);
  int64_t n = model.cfg.n_routed_experts;
  std::map<std::string, size_t> slot;
  for (size_t i = 0; i < names.size(); ++i) slot[names[i]] = i;
  // Flat buffers over all layers; each stage fills its own layers, the pp sum assembles them.
  std::vector<int64_t> c(names.size() * n, 0);
  std::vector<double> b(names.size() * n, 0.0);
  std::vector<int64_t> has_bias(names.size(), 0);
  std::vector<double> bal(names.size(), 0.0);
  std::vector<Tensor> biases = model.correction_biases();
  for (size_t l = 0; l < model.moe_layer_names().size(); ++l) {
    size_t i = slot.at(model.moe_layer_names()[l]);
    for (int64_t e = 0; e < n; ++e) c[i * n + e] = counts[l][e];
    if (l < layer_balance.size()) bal[i] = layer_balance[l];
    if (biases[l].defined()) {
      has_bias[i] = 1;
      auto v = biases[l].to_vector<double>();
      for (int64_t e = 0; e < n; ++e) b[i * n + e] = v[e];
    }
  }
  if (mesh && mesh->shape.pp > 1) {
    mesh->pp->all_reduce_sum(c);
    mesh->pp->all_reduce_sum(b);
    mesh->pp->all_reduce_sum(has_bias);
    mesh->pp->all_reduce_sum(bal);
  }
  ExpertView v;
  v.balance = bal;
  for (size_t i = 0; i < names.size(); ++i) {
    v.counts.emplace_back(c.begin() + i * n, c.begin() + (i + 1) * n);
    v.bias.push_back(has_bias[i] ? std::vector<double>(b.begin() + i * n, b.begin() + (i + 1) * n) : std::vector<double>{});
  }
  return v;
}

}  // namespace mlamoe
