#include "model/modules/moe.h"

#include <cmath>

#include "model/ops/op_common.h"
#include "model/ops/ops.h"

namespace mlamoe {

Permutation permute_by_expert(const Tensor& indices, int64_t n_experts) {
  Tensor ic = indices.contiguous();
  const int64_t* idx = ic.data<int64_t>();
  int64_t a = ic.numel(), k = ic.size(-1);
  Permutation p;
  p.offsets.assign(n_experts + 1, 0);
  for (int64_t i = 0; i < a; ++i) ++p.offsets[idx[i] + 1];
  for (int64_t e = 0; e < n_experts; ++e) p.offsets[e + 1] += p.offsets[e];
  std::vector<int64_t> fill(p.offsets.begin(), p.offsets.end() - 1);
  p.token.resize(a);
  p.slot.resize(a);
  for (int64_t i = 0; i < a; ++i) {
    int64_t row = fill[idx[i]]++;
    p.token[row] = i / k;
    p.slot[row] = i;
  }
  return p;
}

MoeLayer::MoeLayer(ParamInit& init, const std::string& p, const ModelConfig& c, std::shared_ptr<ExpertDispatcher> disp)
    : cfg(c), dispatcher(disp ? std::move(disp) : std::make_shared<LocalDispatcher>()) {
  int64_t d = c.hidden_size;
  gate_weight = init.matrix(p + "gate.weight", c.n_routed_experts, d);
  if (c.topk_method == "noaux_tc") e_score_correction_bias = init.state(p + "gate.e_score_correction_bias", c.n_routed_experts);
  int64_t local = c.n_routed_experts / dispatcher->ep_size();
  first_expert = dispatcher->ep_rank() * local;
  experts.reserve(local);
  for (int64_t e = first_expert; e < first_expert + local; ++e)
    experts.emplace_back(init, p + "experts." + std::to_string(e) + ".", d, c.moe_intermediate_size);
  if (c.n_shared_experts > 0)
    shared_experts = SwiGluMlp(init, p + "shared_experts.", d, c.n_shared_experts * c.moe_intermediate_size);
}

namespace {

// α·mean_b Σ_i f_{b,i} P_{b,i} (MODEL_SPEC §4.2 / §4.3): per sequence b of length T, the load
// fraction f_i = N/(K·T)·#{t : i ∈ sel_t} (a constant) times the mean normalised score P_i.
// scores [B, T, N], sel [B, T, K] (i64).
Tensor balance_loss(const Tensor& scores, const Tensor& sel, bool normalise, double alpha) {
  int64_t b = scores.size(0), t = scores.size(1), n = scores.size(2), k = sel.size(2);
  Tensor sc = normalise ? normalize_rows(scores) : scores;
  Tensor p = mean(sc, 1);  // [B, N]
  std::vector<double> f(b * n, 0.0);
  Tensor selc = sel.contiguous();
  const int64_t* s = selc.data<int64_t>();
  for (int64_t i = 0; i < b * t * k; ++i) f[(i / (t * k)) * n + s[i]] += static_cast<double>(n) / (k * t);
  Tensor ft = Tensor::from_vector(f, {b, n}).to(scores.dtype());
  return scale(sum(mul(ft, p)), alpha / b);
}

}  // namespace

MoeOutput MoeLayer::forward(const Tensor& u) const {
  int64_t b = u.size(0), t = u.size(1), d = u.size(2), n = cfg.n_routed_experts, k = cfg.num_experts_per_tok;
  int64_t s_tok = b * t;
  bool sigmoid_scores = cfg.scoring_func == "sigmoid";
  Tensor u2 = u.reshape({s_tok, d});

  // ---- router: scores, selection (bias and groups), weights from the unbiased scores ----
  Tensor z = linear(u2, gate_weight);                   // [S, N]
  Tensor s = sigmoid_scores ? sigmoid(z) : softmax(z);  // affinities
  RouteSpec spec{k, cfg.n_group, cfg.topk_group, sigmoid_scores ? GroupScore::Top2Sum : GroupScore::Max};
  Tensor idx = route_select(s.detach(), e_score_correction_bias, spec);  // [S, K]
  Tensor g = gather(s, idx);                                             // [S, K]
  Tensor w = scale(cfg.norm_topk_prob ? normalize_rows(g) : g, cfg.routed_scaling_factor);

  // ---- routed experts on their tokens only: permute, dispatch to the experts' ranks, the local
  // experts' SwiGLUs as one grouped op, combine back, weighted un-permute ----
  Permutation perm = permute_by_expert(idx, n);
  Tensor tok = Tensor::from_vector(perm.token, {static_cast<int64_t>(perm.token.size())});
  Tensor xp = index_select(u2, tok);  // [A, d], grouped by expert
  std::vector<int64_t> counts(n);
  for (int64_t e = 0; e < n; ++e) counts[e] = perm.offsets[e + 1] - perm.offsets[e];
  // Dispatch in its three phases (model/modules/expert_dispatch.h): only the middle one communicates.
  DispatchPlan plan;
  Tensor send = dispatcher->dispatch_preprocess(xp, counts, plan);
  Tensor recv = dispatcher->dispatch_all_to_all(send, plan);
  Tensor rows = dispatcher->dispatch_postprocess(recv, plan);  // [R, d] for this rank's experts
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
  Tensor y_local = active_counts.empty() ? scale(rows, 0.0) : expert_swiglu(rows, active_counts, gate, up, down);
  // Combine in its three phases.
  Tensor back = dispatcher->combine_preprocess(y_local, plan);
  Tensor yp = dispatcher->combine_all_to_all(back, plan);  // [A, d]
  yp = dispatcher->combine_postprocess(yp, plan);
  Tensor y = moe_combine(yp, w, Tensor::from_vector(perm.slot, {static_cast<int64_t>(perm.slot.size())}));
  if (shared_experts.defined()) y = add(y, shared_experts.forward(u2));

  MoeOutput out;
  out.y = y.reshape({b, t, d});
  out.counts = expert_counts(idx, n);

  // ---- balance losses ----
  Tensor s3 = s.reshape({b, t, n});
  if (cfg.seq_aux_alpha > 0) {
    // V3 complementary sequence-wise loss: f from the plain top-K of the unbiased scores (no bias,
    // no group limit), as the paper's formula and Megatron have it; scores normalised over experts.
    Tensor plain = route_select(s.detach(), Tensor(), RouteSpec{k, 1, 1, GroupScore::Max}).reshape({b, t, k});
    out.balance_loss = balance_loss(s3, plain, true, cfg.seq_aux_alpha);
  }
  if (!sigmoid_scores && cfg.aux_loss_alpha > 0) {
    // V2 expert-level loss ([HF-remote] MoEGate): softmax probabilities, the actual selection;
    // per sequence with seq_aux, else over all tokens of the batch as one sequence.
    Tensor sel = idx.reshape({b, t, k});
    Tensor l = cfg.seq_aux ? balance_loss(s3, sel, false, cfg.aux_loss_alpha)
                           : balance_loss(s3.reshape({1, s_tok, n}), sel.reshape({1, s_tok, k}), false, cfg.aux_loss_alpha);
    out.balance_loss = out.balance_loss.defined() ? add(out.balance_loss, l) : l;
  }
  return out;
}

void MoeLayer::update_bias(const std::vector<int64_t>& counts, double gamma) {
  if (!e_score_correction_bias.defined() || gamma == 0.0) return;
  MLAMOE_CHECK(static_cast<int64_t>(counts.size()) == cfg.n_routed_experts,
               "update_bias: " << counts.size() << " counts for " << cfg.n_routed_experts << " experts");
  double total = 0;
  for (int64_t c : counts) total += static_cast<double>(c);
  double mean_load = total / cfg.n_routed_experts;
  dispatch_float(e_score_correction_bias.dtype(), "update_bias", [&](auto tag) {
    using T = decltype(tag);
    T* b = e_score_correction_bias.data<T>();
    for (int64_t e = 0; e < cfg.n_routed_experts; ++e) {
      double err = mean_load - static_cast<double>(counts[e]);
      b[e] += static_cast<T>(gamma * ((err > 0) - (err < 0)));
    }
  });
}

}  // namespace mlamoe
