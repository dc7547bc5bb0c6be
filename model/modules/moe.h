// The DeepSeekMoE layer (model/README.md §3): router, routed experts computed only on the tokens routed
// to them, shared experts, and the complementary sequence-wise balance loss (§4.2).
//
// Dimension legend of the MoE path, defined here once (expert_dispatch.h, parallel/ep_dispatcher.h
// and model/ops/{experts,router,topk,index}.h use these letters and point here):
//   B          sequences in a micro-batch
//   T          tokens per sequence
//   S = B·T    tokens
//   D          hidden size (hidden_size)
//   H          attention heads (num_attention_heads)
//   E          routed experts (n_routed_experts)
//   K          experts per token, the top-k (num_experts_per_tok)
//   N = S·K    (token, slot) assignments on this rank
//   R          rows received by this rank for its local experts (R = N without expert parallelism)
//   I          expert intermediate width (moe_intermediate_size)
//   G          expert groups of the router (n_group)
//   E_local    = E / ep, the routed experts on this rank
// Ranks: ep, dp, pp are group sizes (edp = dp / ep for the expert parameters' data
// parallelism); ep_rank, dp_rank, pp_rank a rank's place in its group.
// A local holding a tensor or an array carries its shape as a suffix: x_SD [S, D], idx_SK,
// w_SK, xp_ND, rows_RD, counts_E.
//
// Routed experts run in three local steps, the single-process form of the expert-parallel
// dispatch (CONTRIBUTING.md "Code habits" item 7): permute (gather each assignment's token row, grouped by expert),
// one SwiGLU per expert on its contiguous rows, un-permute (scale by the routing weight and add
// back into the token rows). Under expert parallelism the dispatcher's phases
// (expert_dispatch.h) move the permuted rows to the experts' ranks and back in between.
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/modules/expert_dispatch.h"
#include "model/modules/mlp.h"

namespace mlamoe {

struct MoeOutput {
  Tensor y;                     // [B, T, D] routed + shared experts (no residual)
  Tensor balance_loss;          // scalar, α·mean_b Σ_i f_i P_i; undefined when α = 0
  std::vector<int64_t> counts;  // [E] assignments per expert (the biased, group-limited selection)
};

struct MoeLayer {
  // Holds the routed experts of `dispatcher`'s ep rank only (E_local of them, named by their
  // global index); the router and shared experts are replicated.
  MoeLayer(ParamInit& init, const std::string& prefix, const ModelConfig& c,
           std::shared_ptr<ExpertDispatcher> dispatcher = nullptr);

  MoeOutput forward(const Tensor& u) const;  // u [B, T, D]
  // b_i += γ·sign(mean(c) − c_i) from the counts of a whole step (§4.1). No-op without a bias.
  void update_bias(const std::vector<int64_t>& counts_E, double gamma);

  const ModelConfig& cfg;
  Tensor gate_weight;              // [E, D]  mlp.gate.weight
  Tensor e_score_correction_bias;  // [E]     fp32 state, selection only (noaux_tc); undefined otherwise
  std::shared_ptr<ExpertDispatcher> dispatcher;
  int64_t first_expert = 0;        // global index of experts[0]
  std::vector<SwiGluMlp> experts;  // E_local × ([I, D], [I, D], [D, I]): this rank's experts
  SwiGluMlp shared_experts;        // ([n_shared_experts·I, D], ...); undefined when n_shared_experts = 0
};

}  // namespace mlamoe
