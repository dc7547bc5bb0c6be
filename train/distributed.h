// The trainer's side of the distributed runtime: how the ranks agree on a set-up failure, which
// part of the model a rank builds, its ZeRO-1 groups, and the global view of per-layer expert
// statistics for the logs (every MoE layer, whatever stage holds it).
#pragma once
#include <string>
#include <vector>

#include "model/modules/deepseek_model.h"
#include "parallel/mesh.h"
#include "parallel/mpi_runtime.h"
#include "train/optimizer.h"

namespace mlamoe {

// Set-up errors (config, data, run directory, layout) happen before any rank waits in a
// collective: every rank learns whether any failed (one all-reduce over `world`; null: a single
// process), the lowest failing rank prints its one line "mlamoe: error: ..." on stderr, and all of
// them return true, to exit 1 together. err: this rank's error, "" when it has none.
bool any_rank_failed(Communicator* world, const std::string& err);

// The job's ranks on this node, from the launcher (Open MPI, MPICH/Hydra, Slurm); `world` when
// none says.
int64_t ranks_on_this_node(int64_t world);

// This rank's CUDA device, made current (cuda::set_device): the device numbered by its node-local
// rank, modulo the devices it sees (all of a node's GPUs: one each in local-rank order; one
// visible GPU per rank, as Slurm's --gpus-per-task=1 gives: that one). Ranks of a node whose
// devices are the same physical one (cuda::device_identity, gathered over the node) are an error
// naming how many share which device, unless MLAMOE_CUDA_SHARE_DEVICES=1 allows it (tests on one
// GPU: the MPI communicator stages device buffers through the host, parallel/host_staging.h).
// mpi null: one process, device 0. Collective over the node.
struct CudaBinding {
  Device device = Device::cuda(0);
  bool shared = false;  // another rank of the node uses the same device
};
CudaBinding bind_cuda_device(const MpiRuntime* mpi);

// The communicator the mesh's groups (dp, ep, edp, pp, embed) run on for ranks on
// `device`: NCCL (nccl_world_communicator; its MPI stand-in in the SIMT emulator) for ranks with
// a CUDA device each; null — the MPI communicator, staging device buffers through the host — on
// the CPU, for ranks sharing a device (NCCL refuses two ranks on one GPU), or with
// MLAMOE_COMM=mpi. Collective over the world.
std::unique_ptr<Communicator> collectives_communicator(Device device, bool shared_device);

// Stage layers from the cost split, this rank's ep experts (dispatcher over mesh.ep; overlap_ep:
// parallel.overlap_moe_expert_parallel_comm).
ModelShard shard_for(const ModelConfig& c, Mesh& mesh, bool overlap_ep = true);

// "model.layers.{l}.mlp" of every MoE layer of the whole model, main then MTP.
std::vector<std::string> all_moe_layer_names(const ModelConfig& c);

// Per MoE layer of the whole model: counts (already summed over dp) and biases, assembled on
// every rank from the stages that hold them. `counts` are this stage's, in model.moe_layer_names() order.
struct ExpertView {
  std::vector<std::vector<int64_t>> counts;
  std::vector<std::vector<double>> bias;  // empty vector for a layer without a correction bias
  std::vector<double> balance;            // the layer's balance loss this step
};
ExpertView global_expert_view(const DeepSeekModel& model, Mesh* mesh, const std::vector<std::vector<int64_t>>& counts,
                              const std::vector<double>& layer_balance);

// ZeRO-1 groups for AdamW: experts over edp, everything else over dp.
ShardGroupFn zero1_groups(Mesh& mesh);

}  // namespace mlamoe
