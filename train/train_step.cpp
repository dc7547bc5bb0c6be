#include "train/train_step.h"

#include <chrono>
#include <cmath>
#include <limits>

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

StepStats train_step(DeepSeekModel& model, AdamW& opt, const std::vector<Tensor>& micro_batches, const StepSettings& s,
                     const ParallelContext& par) {
  MLAMOE_CHECK(!micro_batches.empty(), "train_step: no micro-batches");
  Mesh* mesh = par.mesh;
  int64_t dp = mesh ? mesh->shape.dp : 1;
  std::vector<Tensor> params = model.params.trainable();
  for (auto& p : params) p.zero_grad();
  StepStats st;
  // Every micro-batch of the global step weighs 1 / (micro-batches per rank · dp), so summed
  // gradients are those of the mean over the whole global batch.
  double loss_scale = 1.0 / static_cast<double>(micro_batches.size() * dp);
  double lm = 0, mtp = 0, bal = 0;
  // Tests: a NaN injected into this rank's backward (as an overflow would), losses left finite.
  double backward_factor = s.inject_nan ? std::numeric_limits<double>::quiet_NaN() : 1.0;
  using Clock = std::chrono::steady_clock;
  auto since = [](Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); };
  auto t0 = Clock::now();
  if (mesh && mesh->shape.pp > 1) {
    StageSums sums = run_pipeline(model, *mesh, micro_batches, loss_scale, par.sync, backward_factor);
    st.t_pipeline = since(t0);
    lm = sums.lm, mtp = sums.mtp, bal = sums.balance;
    st.counts = std::move(sums.counts);
    st.layer_balance = std::move(sums.layer_balance);
  } else {
    for (size_t i = 0; i < micro_batches.size(); ++i) {
      if (par.sync && i + 1 == micro_batches.size()) par.sync->begin_last_backward();
      auto tf = Clock::now();
      forward_profile_begin();
      ModelOutput out = model.forward(micro_batches[i]);
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
  for (const Tensor& w : micro_batches) st.tokens += w.size(0) * (w.size(1) - 1);
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
    st.tokens *= dp;
  } else {
    st.grad_norm = clip_grad_norm(params, s.grad_clip);
  }
  st.t_sync = since(ts);
  st.lm_loss = lm, st.mtp_loss = mtp, st.balance_loss = bal;
  st.loss = lm + model.cfg.mtp_loss_weight * mtp + bal;
  st.lr = s.lr;
  st.gamma = s.gamma;
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
  model.update_biases(st.counts, s.gamma);
  st.t_optimizer = since(to);
  return st;
}

}  // namespace mlamoe
