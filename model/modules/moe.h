// The DeepSeekMoE layer (MODEL_SPEC §3): router, routed experts computed only on the tokens routed
// to them, shared experts, and the complementary sequence-wise balance loss (§4.2).
//
// Dimension letters: B sequences, T tokens per sequence, S = B·T tokens, d hidden, N routed
// experts, K experts per token, A = S·K (token, slot) assignments.
//
// Routed experts run in three local steps, the single-process form of the expert-parallel
// dispatch (STYLE.md item 7): permute (gather each assignment's token row, grouped by expert),
// one SwiGLU per expert on its contiguous rows, un-permute (scale by the routing weight and add
// back into the token rows).
#pragma once
#include <string>
#include <vector>

#include "model/config.h"
#include "model/modules/expert_dispatch.h"
#include "model/modules/mlp.h"

namespace mlamoe {

struct MoeOutput {
  Tensor y;                     // [B, T, d] routed + shared experts (no residual)
  Tensor balance_loss;          // scalar, α·mean_b Σ_i f_i P_i; undefined when α = 0
  std::vector<int64_t> counts;  // [N] assignments per expert (the biased, group-limited selection)
};

// The grouping of assignments by expert: rows of the permuted buffer in expert order.
struct Permutation {
  std::vector<int64_t> token;    // [A] source token of each permuted row
  std::vector<int64_t> slot;     // [A] flat (token·K + k) slot of each permuted row
  std::vector<int64_t> offsets;  // [N + 1] expert e owns rows offsets[e] .. offsets[e+1]-1
};
// Stable counting sort of the indices [S, K] by expert: within an expert, tokens keep their order.
Permutation permute_by_expert(const Tensor& indices, int64_t n_experts);

struct MoeLayer {
  // Holds the routed experts of `dispatcher`'s ep rank only (N / ep of them, named by their global
  // index); the router and shared experts are replicated.
  MoeLayer(ParamInit& init, const std::string& prefix, const ModelConfig& c, std::shared_ptr<ExpertDispatcher> dispatcher = nullptr);

  MoeOutput forward(const Tensor& u) const;  // u [B, T, d]
  // b_i += γ·sign(mean(c) − c_i) from the counts of a whole step (§4.1). No-op without a bias.
  void update_bias(const std::vector<int64_t>& counts, double gamma);

  const ModelConfig& cfg;
  Tensor gate_weight;              // [N, d]  mlp.gate.weight
  Tensor e_score_correction_bias;  // [N]     fp32 state, selection only (noaux_tc); undefined otherwise
  std::shared_ptr<ExpertDispatcher> dispatcher;
  int64_t first_expert = 0;        // global index of experts[0]
  std::vector<SwiGluMlp> experts;  // N/ep × ([I_m, d], [I_m, d], [d, I_m]): this rank's experts
  SwiGluMlp shared_experts;        // [N_s·I_m, d] ...; undefined when N_s = 0
};

}  // namespace mlamoe
