// The trainer's side of the distributed runtime: which part of the model a rank builds, the
// global view of per-layer expert statistics for the logs (every MoE layer, whatever stage holds
// it), and the final weights gathered onto rank 0 for the weights file.
#pragma once
#include <string>
#include <vector>

#include "model/modules/deepseek_model.h"
#include "parallel/mesh.h"
#include "train/optimizer.h"

namespace mlamoe {

// Stage layers from the cost split, this rank's ep experts (dispatcher over mesh.ep).
ModelShard shard_for(const ModelConfig& c, Mesh& mesh);

// "model.layers.{l}.mlp" of every MoE layer of the whole model, main then MTP.
std::vector<std::string> all_moe_layer_names(const ModelConfig& c);

// Per MoE layer of the whole model: counts (already summed over dp) and biases, assembled on
// every rank from the stages that hold them. `counts` are this stage's, in model.moe_layer_names() order.
struct ExpertView {
  std::vector<std::vector<int64_t>> counts;
  std::vector<std::vector<double>> bias;  // empty vector for a layer without a correction bias
};
ExpertView global_expert_view(const DeepSeekModel& model, Mesh* mesh, const std::vector<std::vector<int64_t>>& counts);

// ZeRO-1 groups for AdamW: experts over edp, everything else over dp.
ShardGroupFn zero1_groups(Mesh& mesh);

// Copies every parameter of the whole model into `full` (a complete single-process model, on
// rank 0 only; other ranks pass null): each tensor is sent by one owner (dp rank 0 of its stage,
// edp rank 0 for experts). Fine for the model sizes a weights file is meant for; sharded
// checkpoints of large models are written per rank by the checkpoint code.
void gather_weights_to_root(const DeepSeekModel& model, Mesh& mesh, DeepSeekModel* full);

}  // namespace mlamoe
