// The trainer's side of the distributed runtime: which part of the model a rank builds, its
// ZeRO-1 groups, and the global view of per-layer expert statistics for the logs (every MoE
// layer, whatever stage holds it).
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
  std::vector<double> balance;            // the layer's balance loss this step
};
ExpertView global_expert_view(const DeepSeekModel& model, Mesh* mesh, const std::vector<std::vector<int64_t>>& counts,
                              const std::vector<double>& layer_balance);

// ZeRO-1 groups for AdamW: experts over edp, everything else over dp.
ShardGroupFn zero1_groups(Mesh& mesh);

}  // namespace mlamoe
