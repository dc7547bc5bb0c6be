#include "train/train_step.h"

#include <chrono>
#include <cmath>
#include <limits>

#include "model/autograd/autocast.h"
#include "model/ops/ops.h"
#include "parallel/pipeline.h"

namespace mlamoe {

void add_counts(std::vector<std::vector<int64_t>>& into, const std::vector<std::vector<int64_t>>& add) {
  if (into.empty()) {
    into = add;
    return;
  }
  MLAMOE_CHECK(into.size() == add.size(), "add_counts: " << into.size() << " vs " << add.size() << " MoE layers");
  for (size_t l = 0; l < add.size(); ++l)
    for (size_t e = 0; e < add[l].size(); ++e) into[l][e] += add[l][e];
}

namespace {

// The loss weights of each of this rank's micro-batches (LossWeights) and the global target counts
// per loss (index 0: lm, k: MTP depth k), from one all-reduce over dp. Every rank of a pipeline
// holds the same windows, so every stage derives the same weights.
std::vector<LossWeights> loss_weights(const DeepSeekModel& model, const std::vector<Tensor>& micro_batches, Mesh* mesh,
                                      std::vector<int64_t>& total) {
  const int64_t depths = model.cfg.num_nextn_predict_layers, m = static_cast<int64_t>(micro_batches.size());
  const int64_t shares = m * (mesh ? mesh->shape.dp : 1);
  std::vector<std::vector<int64_t>> n(m, std::vector<int64_t>(depths + 1));
  total.assign(depths + 1, 0);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k <= depths; ++k) total[k] += n[i][k] = DeepSeekModel::count_targets(micro_batches[i], k);
  if (mesh) mesh->dp->all_reduce_sum(total);
  // mtp_loss is the mean over the depths: a depth without any target drops out of that mean.
  int64_t live = 0;
  for (int64_t k = 1; k <= depths; ++k) live += total[k] > 0;
  double depth_factor = live > 0 ? static_cast<double>(depths) / static_cast<double>(live) : 0.0;
  std::vector<LossWeights> w(m);
  for (int64_t i = 0; i < m; ++i) {
    w[i].lm = LossWeights::share(n[i][0], shares, total[0]);
    for (int64_t k = 1; k <= depths; ++k) w[i].mtp.push_back(LossWeights::share(n[i][k], shares, total[k]) * depth_factor);
  }
  return w;
}

}  // namespace

StepStats train_step(DeepSeekModel& model, AdamW& opt, const std::vector<Tensor>& micro_batches, const StepSettings& s,
                     const ParallelContext& par) {
  MLAMOE_CHECK(!micro_batches.empty(), "train_step: no micro-batches");
  Mesh* mesh = par.mesh;
  int64_t dp = mesh ? mesh->shape.dp : 1;
  std::vector<Tensor> params = model.params.trainable();
  for (auto& p : params) p.zero_grad();
  StepStats st;
  for (const Tensor& w : micro_batches) st.tokens += w.size(0) * (w.size(1) - 1);
  if (mesh) st.tokens *= dp;
  st.lr = s.lr;
  st.gamma = s.gamma;
  std::vector<int64_t> targets;
  std::vector<LossWeights> weights = loss_weights(model, micro_batches, mesh, targets);
  st.lm_targets = targets[0];
  for (size_t k = 1; k < targets.size(); ++k) st.mtp_targets += targets[k];
  st.has_mtp = st.mtp_targets > 0;
  if (st.lm_targets == 0) {  // every rank sees the same global count, so every rank skips alike
    st.skipped = st.no_targets = true;
    st.skip_reason = "no target token in the global batch (every window's loss mask is 0)";
    return st;
  }
  // Every micro-batch of the global step weighs 1 / (micro-batches per rank · dp), times its
  // LossWeights on the token-mean losses, so summed gradients are those of the global batch.
  double loss_scale = 1.0 / static_cast<double>(micro_batches.size() * dp);
  double lm = 0, mtp = 0, bal = 0;
  // Tests: a NaN injected into this rank's backward (as an overflow would), losses left finite.
  double backward_factor = s.inject_nan ? std::numeric_limits<double>::quiet_NaN() : 1.0;
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  auto t0 = Clock::now();
  if (mesh && mesh->shape.pp > 1) {
    StageSums sums = run_pipeline(model, *mesh, micro_batches, weights, loss_scale, par.sync, backward_factor);
    st.t_pipeline = since(t0);
    lm = sums.lm, mtp = sums.mtp, bal = sums.balance;
    st.counts = std::move(sums.counts);
    st.layer_balance = std::move(sums.layer_balance);
  } else {
    for (size_t i = 0; i < micro_batches.size(); ++i) {
      if (par.sync && i + 1 == micro_batches.size()) par.sync->begin_last_backward();
      auto tf = Clock::now();
      forward_profile_begin();
      ModelOutput out = model.forward(micro_batches[i], false, weights[i]);
      forward_profile_end();
      st.t_forward += since(tf);
      auto tb = Clock::now();
      scale(out.loss, loss_scale * backward_factor).backward();
      st.t_backward += since(tb);
      lm += out.lm_loss.item() * loss_scale;
      if (out.mtp_loss.defined()) mtp += out.mtp_loss.item() * loss_scale;
      if (out.balance_loss.defined()) bal += out.balance_loss.item() * loss_scale;
      st.layer_balance.resize(out.layer_balance.size(), 0.0);
      for (size_t l = 0; l < out.layer_balance.size(); ++l) st.layer_balance[l] += out.layer_balance[l] * loss_scale;
      add_counts(st.counts, out.counts);
    }
  }
  auto ts = Clock::now();
  if (mesh) {
    par.sync->finish();
    st.grad_norm = par.sync->global_grad_norm();
    clip_grads_to(params, st.grad_norm, s.grad_clip);
    // Loss parts: every (stage, dp rank) holds a distinct share; counts: summed over dp.
    std::vector<double> parts = {lm, mtp, bal};
    mesh->world->all_reduce_sum(parts);
    lm = parts[0], mtp = parts[1], bal = parts[2];
    for (auto& c : st.counts) mesh->dp->all_reduce_sum(c);
    if (!st.layer_balance.empty()) mesh->dp->all_reduce_sum(st.layer_balance);
  } else {
    st.grad_norm = clip_grad_norm(params, s.grad_clip);
  }
  st.t_sync = since(ts);
  st.lm_loss = lm, st.mtp_loss = mtp, st.balance_loss = bal;
  st.loss = lm + model.cfg.mtp_loss_weight * mtp + bal;
  if (!std::isfinite(st.loss) || !std::isfinite(st.grad_norm)) {
    st.skipped = true;
    st.skip_reason = !std::isfinite(st.loss) ? "the loss is not finite" : "the gradient norm is not finite";
  } else if (s.judge) {
    st.skip_reason = s.judge(st.loss);
    st.skipped = !st.skip_reason.empty();
  }
  if (st.skipped) return st;
  auto to = Clock::now();
  opt.step(s.lr);
  refresh_bf16_weights();  // the bf16 copies the next step's GEMMs read (train.precision = bf16)
  model.update_biases(st.counts, s.gamma);
  st.t_optimizer = since(to);
  return st;
}

}  // namespace mlamoe
