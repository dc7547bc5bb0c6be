// Pipeline parallelism (parallel/README.md "Parallelism semantics", PP): the 1F1B schedule of one stage
// over the step's micro-batches. Stage s first runs min(P−s−1, M) forwards (warm-up), then
// alternates one forward and one backward, then drains the remaining backwards, so at most P−s
// micro-batches keep their activations. Activations go to the next stage and their gradients back
// by point-to-point messages; sends are non-blocking (a stage never waits for its neighbour to
// receive), receives block, and tags carry the micro-batch and direction.
//
// Also the layer split: contiguous layers per stage, balanced by estimated cost, with the
// embedding on the first stage and the final norm, head and MTP on the last.
#pragma once
#include <vector>

#include "model/modules/deepseek_model.h"
#include "parallel/grad_sync.h"
#include "parallel/mesh.h"

namespace mlamoe {

// Main layers [begin[s], begin[s+1]) on stage s; begin has pp+1 entries. Costs: matmul FLOPs per
// token of each layer (attention, dense FFN or the active MoE path), the head and MTP counted on
// the last stage.
std::vector<int64_t> split_layers(const ModelConfig& c, int64_t pp);

// What one stage's share of a step adds up to (sums over its micro-batches, already scaled by
// loss_scale): lm and MTP losses on the last stage, balance losses of this stage's MoE layers.
struct StageSums {
  double lm = 0, mtp = 0, balance = 0;
  std::vector<std::vector<int64_t>> counts;  // per MoE layer of this stage
  std::vector<double> layer_balance;         // per MoE layer of this stage, scaled like the losses
};

// Runs forward and backward of every micro-batch through this rank's stage with the 1F1B order;
// gradients accumulate into the parameters. Every loss is multiplied by loss_scale (1 / global
// micro-batch count), the token-mean losses of micro-batch i also by weights[i] (LossWeights;
// one per micro-batch, used on the last stage). sync (may be null) is told before the last
// backward. backward_factor multiplies the backward only (1; NaN in fault-injection tests).
StageSums run_pipeline(const DeepSeekModel& model, Mesh& mesh, const std::vector<Tensor>& micro_batches,
                       const std::vector<LossWeights>& weights, double loss_scale, GradSync* sync, double backward_factor = 1.0);

// Forward only (evaluation, no autograd): the main lm loss (token mean) of each micro-batch, on
// the last stage (empty elsewhere).
std::vector<double> eval_pipeline(const DeepSeekModel& model, Mesh& mesh, const std::vector<Tensor>& micro_batches);

}  // namespace mlamoe
