// Expert selection of the MoE router (model/README.md §3.2-3.3): the discrete half of routing. It takes
// the affinity scores s [S, E] (sigmoid or softmax of the router logits, computed by ordinary
// differentiable ops), adds the correction bias b (selection only), keeps the best `topk_group`
// of `n_group` contiguous expert groups (masking the others with −inf, never 0: biased scores can
// be negative), and returns the top-K expert indices per token. Nothing here is differentiable:
// the weights are gathered from the unbiased s afterwards, so gradients flow through s alone.
//
// Dimension letters: the MoE legend in model/modules/moe.h (S tokens, E routed experts, K experts
// per token, G expert groups).
#pragma once
#include <cstdint>
#include <vector>

#include "model/tensor/tensor.h"

namespace mlamoe {

enum class GroupScore {
  Top2Sum,  // sigmoid scoring (V3, noaux_tc): sum of the 2 largest biased scores of the group
  Max,      // softmax scoring (V2, group_limited_greedy): the largest score of the group
};

struct RouteSpec {
  int64_t top_k = 0;       // K, e.g. 8
  int64_t n_group = 1;     // G, e.g. 8; 1 skips the group step
  int64_t topk_group = 1;  // groups kept, e.g. 4
  GroupScore group_score = GroupScore::Top2Sum;
};

// scores [S, E] (f32/f64), bias [E] of the same dtype and device or undefined -> indices [S, K] (i64), each
// row in descending order of biased score, ties to the lower index (groups likewise).
Tensor route_select(const Tensor& scores, const Tensor& bias, const RouteSpec& spec);

// Tokens per expert: counts [E], counts[e] = #{(s, k) : indices[s, k] == e} for an i64 index tensor.
std::vector<int64_t> expert_counts(const Tensor& indices, int64_t n_experts);

}  // namespace mlamoe
