#include "model/modules/moe.h"

#include <cmath>

#include "model/ops/op_common.h"
#include "model/ops/ops.h"

namespace mlamoe {

MoeLayer::MoeLayer(ParamInit& init, const std::string& p, const ModelConfig& c, std::shared_ptr<ExpertDispatcher> disp)
    : cfg(c), dispatcher(disp ? std::move(disp) : std::make_shared<LocalDispatcher>()) {
  int64_t d = c.hidden_size;
  gate_weight = init.matrix(p + "gate.weight", c.n_routed_experts, d);
  if (c.topk_method == "noaux_tc") e_score_correction_bias = init.state(p + "gate.e_score_correction_bias", c.n_routed_experts);
  int64_t e_local = c.n_routed_experts / dispatcher->ep_size();
  first_expert = dispatcher->ep_rank() * e_local;
  experts.reserve(e_local);
  for (int64_t e = first_expert; e < first_expert + e_local; ++e)
    experts.emplace_back(init, p + "experts." + std::to_string(e) + ".", d, c.moe_intermediate_size);
  if (c.n_shared_experts > 0)
    shared_experts = SwiGluMlp(init, p + "shared_experts.", d, c.n_shared_experts * c.moe_intermediate_size);
}

namespace {

// α·mean_b Σ_i f_{b,i} P_{b,i} (model/README.md §4.2 / §4.3): per sequence b of length T, the load
// fraction f_i = E/(K·T)·#{t : i ∈ sel_t} (a constant) times the mean normalised score P_i.
// scores_BTE [B, T, E], sel_BTK [B, T, K] (i64).
Tensor balance_loss(const Tensor& scores_BTE, const Tensor& sel_BTK, bool normalise, double alpha) {
  int64_t b = scores_BTE.size(0), t = scores_BTE.size(1), n_experts = scores_BTE.size(2), k = sel_BTK.size(2);
  Tensor sc_BTE = normalise ? normalize_rows(scores_BTE) : scores_BTE;
  Tensor p_BE = mean(sc_BTE, 1);
  std::vector<double> f_BE(b * n_experts, 0.0);
  Tensor sel = sel_BTK.contiguous().to(Device::cpu());
  const int64_t* s = sel.data<int64_t>();
  for (int64_t i = 0; i < b * t * k; ++i) f_BE[(i / (t * k)) * n_experts + s[i]] += static_cast<double>(n_experts) / (k * t);
  Tensor ft_BE = Tensor::from_vector(f_BE, {b, n_experts}).to(scores_BTE.dtype()).to(scores_BTE.device());
  return scale(sum(mul(ft_BE, p_BE)), alpha / b);
}

}  // namespace

MoeOutput MoeLayer::forward(const Tensor& u) const {
  int64_t b = u.size(0), t = u.size(1), d = u.size(2), n_experts = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  int64_t s_tok = b * t;
  bool sigmoid_scores = cfg.scoring_func == "sigmoid";
  Tensor x_SD = u.reshape({s_tok, d});

  // ---- router: scores, selection (bias and groups), weights from the unbiased scores ----
  Tensor logits_SE;
  {
    AutocastBf16 f32_router(false);  // the router stays f32 under autocast (model/README.md §6)
    logits_SE = linear(x_SD, gate_weight);
  }
  Tensor scores_SE = sigmoid_scores ? sigmoid(logits_SE) : softmax(logits_SE);  // affinities
  RouteSpec spec{k, cfg.n_group, cfg.topk_group, sigmoid_scores ? GroupScore::Top2Sum : GroupScore::Max};
  Tensor idx_SK = route_select(scores_SE.detach(), e_score_correction_bias, spec);
  Tensor g_SK = gather(scores_SE, idx_SK);
  Tensor w_SK = scale(cfg.norm_topk_prob ? normalize_rows(g_SK) : g_SK, cfg.routed_scaling_factor);

  // ---- routed experts on their tokens only: permute, dispatch to the experts' ranks, the local
  // experts' SwiGLUs as one grouped op, combine back, weighted un-permute ----
  Permutation perm = permute_by_expert(idx_SK, n_experts);  // on idx_SK's device (x_SD's)
  Tensor xp_ND = index_select(x_SD, perm.token);            // grouped by expert
  std::vector<int64_t> counts_E(n_experts);
  for (int64_t e = 0; e < n_experts; ++e) counts_E[e] = perm.offsets[e + 1] - perm.offsets[e];
  // Dispatch in its three phases (model/modules/expert_dispatch.h): only the middle one communicates.
  DispatchPlan plan;
  Tensor send_ND = dispatcher->dispatch_preprocess(xp_ND, counts_E, plan);
  RowsInFlight recv_RD = dispatcher->dispatch_all_to_all(send_ND, plan);
  // While the rows travel, the shared experts run: they need only the layer input.
  Tensor shared_SD = shared_experts.defined() ? shared_experts.forward(x_SD) : Tensor();
  Tensor rows_RD = dispatcher->dispatch_postprocess(recv_RD.wait(), plan);  // grouped by local expert
  std::vector<int64_t> active_counts;
  std::vector<Tensor> gate, up, down;
  for (size_t e = 0; e < experts.size(); ++e) {
    if (plan.local_counts[e] == 0) continue;  // an expert with no rows takes no part in the step
    active_counts.push_back(plan.local_counts[e]);
    gate.push_back(experts[e].gate_proj);
    up.push_back(experts[e].up_proj);
    down.push_back(experts[e].down_proj);
  }
  // A rank whose experts received no rows still takes part in the combine exchange.
  Tensor y_RD = active_counts.empty() ? scale(rows_RD, 0.0) : expert_swiglu(rows_RD, active_counts, gate, up, down);
  // Combine in its three phases.
  Tensor back_RD = dispatcher->combine_preprocess(y_RD, plan);
  Tensor yp_ND = dispatcher->combine_all_to_all(back_RD, plan).wait();  // in xp_ND's order
  yp_ND = dispatcher->combine_postprocess(yp_ND, plan);
  Tensor y_SD = moe_combine(yp_ND, w_SK, perm.slot);
  // shared + routed, in that order: the backward then reaches the routed path first, starts the
  // exchange of its gradients, and runs the shared experts' backward while they travel.
  if (shared_experts.defined()) y_SD = add(shared_SD, y_SD);

  MoeOutput out;
  out.y = y_SD.reshape({b, t, d});
  out.counts = counts_E;  // the permutation's group sizes: the routing indices are read once, on the host

  // ---- balance losses ----
  Tensor scores_BTE = scores_SE.reshape({b, t, n_experts});
  if (cfg.seq_aux_alpha > 0) {
    // V3 complementary sequence-wise loss: f from the plain top-K of the unbiased scores (no bias,
    // no group limit), as the paper's formula and Megatron have it; scores normalised over experts.
    Tensor plain_BTK = route_select(scores_SE.detach(), Tensor(), RouteSpec{k, 1, 1, GroupScore::Max}).reshape({b, t, k});
    out.balance_loss = balance_loss(scores_BTE, plain_BTK, true, cfg.seq_aux_alpha);
  }
  if (!sigmoid_scores && cfg.aux_loss_alpha > 0) {
    // V2 expert-level loss ([HF-remote] MoEGate): softmax probabilities, the actual selection;
    // per sequence with seq_aux, else over all tokens of the batch as one sequence.
    Tensor sel_BTK = idx_SK.reshape({b, t, k});
    Tensor l = cfg.seq_aux ? balance_loss(scores_BTE, sel_BTK, false, cfg.aux_loss_alpha)
                           : balance_loss(scores_BTE.reshape({1, s_tok, n_experts}), sel_BTK.reshape({1, s_tok, k}), false,
                                          cfg.aux_loss_alpha);
    out.balance_loss = out.balance_loss.defined() ? add(out.balance_loss, l) : l;
  }
  return out;
}

void MoeLayer::update_bias(const std::vector<int64_t>& counts_E, double gamma) {
  if (!e_score_correction_bias.defined() || gamma == 0.0) return;
  MLAMOE_CHECK(static_cast<int64_t>(counts_E.size()) == cfg.n_routed_experts,
               "update_bias: " << counts_E.size() << " counts for " << cfg.n_routed_experts << " experts");
  double total = 0;
  for (int64_t c : counts_E) total += static_cast<double>(c);
  double mean_load = total / cfg.n_routed_experts;
  // E values, updated on the host (and copied back where the bias lives on a GPU).
  Tensor host = e_score_correction_bias.to(Device::cpu());  // itself on the CPU
  dispatch_float(host.dtype(), "update_bias", [&](auto tag) {
    using T = decltype(tag);
    T* b = host.data<T>();
    for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
      double err = mean_load - static_cast<double>(counts_E[e]);
      b[e] += static_cast<T>(gamma * ((err > 0) - (err < 0)));
    }
  });
  if (host.impl() != e_score_correction_bias.impl()) e_score_correction_bias.copy_(host);
}

}  // namespace mlamoe
